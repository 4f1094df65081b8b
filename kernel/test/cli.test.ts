import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openSqlCipher } from '../src/vault/index.js';
import { aip, freePort, waitForLine } from './helpers/cli.js';
import { tempDir, PASSWORD, OTHER_PASSWORD } from './helpers/temp.js';

let dir: string;
let cleanup: () => Promise<void>;
let port: number;
let url: string;
let gateway: ChildProcessByStdio<Writable, Readable, null>;
const pw = `${PASSWORD}\n`;

/** Operator command against the test gateway, proving the password on stdin. */
const op = (...args: string[]) => aip([...args, '--url', url, '--password-stdin'], { stdin: pw });

async function agentCall(input: Record<string, unknown>): Promise<Record<string, any>> {
  const next = waitForLine(gateway, /RESULT (.*)\n/);
  gateway.stdin.write(`call ${JSON.stringify(input)}\n`);
  return JSON.parse((await next)[1]!);
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
  port = await freePort();
  url = `http://127.0.0.1:${port}`;
});
afterAll(async () => {
  // Wait for it to stop: locking writes into the data directory until the very end.
  if (gateway && gateway.exitCode === null && gateway.signalCode === null) {
    const exited = new Promise((resolve) => gateway.once('exit', resolve));
    gateway.kill('SIGTERM');
    await exited;
  }
  await cleanup();
});

describe('aip, offline database commands', () => {
  it('creates and lists a database with no gateway running', async () => {
    const created = await aip(['db', 'create', 'main', '--data-dir', dir, '--password-stdin'], { stdin: pw });
    expect(created).toMatchObject({ code: 0 });
    expect(created.stdout).toMatch(/Created encrypted database "main"/);
    const listed = await aip(['db', 'list', '--data-dir', dir, '--json']);
    expect(JSON.parse(listed.stdout).map((d: { name: string }) => d.name)).toEqual(['main']);
  });

  it('refuses a weak password and an existing name', async () => {
    const weak = await aip(['db', 'create', 'weak', '--data-dir', dir, '--password-stdin'], { stdin: 'short\n' });
    expect(weak.code).toBe(2);
    expect(weak.stderr).toMatch(/at least 14 characters/);
    const again = await aip(['db', 'create', 'main', '--data-dir', dir, '--password-stdin'], { stdin: pw });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists/);
  });

  it('never takes a password from argv or the environment', async () => {
    const argv = await aip(['db', 'create', 'x', '--data-dir', dir, '--password', PASSWORD]);
    expect(argv.code).toBe(2);
    expect(argv.stderr).toMatch(/never taken from the command line/);
    // No TTY and no --password-stdin: a clear error, and AIP_PASSWORD is not consulted.
    const env = await aip(['db', 'export', 'main', join(dir, 'x.aipdb'), '--data-dir', dir], { env: { AIP_PASSWORD: PASSWORD, AIP_DB_PASSWORD: PASSWORD } });
    expect(env.code).toBe(2);
    expect(env.stderr).toMatch(/No terminal to ask for the password on/);
  });
});

describe('aip against a running gateway', () => {
  let tokenSecret: string;
  let tokenId: string;
  let targetId: string;
  let profileId: string;

  it('starts the gateway in the foreground on loopback', async () => {
    gateway = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/gateway-with-fake.mjs', import.meta.url)), dir, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
    await waitForLine(gateway, /LISTENING/);
    const status = await aip(['status', '--url', url, '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ locked: true, databases: [{ name: 'main', unlocked: false }] });
  });

  it('refuses to start on a non-loopback address', async () => {
    const result = await aip(['start', '--data-dir', dir, '--host', '0.0.0.0', '--port', '0']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/Refusing to listen on "0.0.0.0": AIPermission is local-only/);
  });

  it('refuses to send a password to a non-loopback gateway URL', async () => {
    const result = await aip(['unlock', '--url', 'http://192.168.1.5:3210', '--password-stdin'], { stdin: pw });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/local-only/);
  });

  it('says the database is locked until unlocked, then unlocks with the password', async () => {
    const locked = await op('token', 'list');
    expect(locked.code).toBe(1);
    expect(locked.stderr).toMatch(/is locked/);
    const wrong = await aip(['unlock', '--url', url, '--password-stdin'], { stdin: `${OTHER_PASSWORD}\n` });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/does not open database "main"/);
    const unlocked = await aip(['unlock', '--url', url, '--password-stdin'], { stdin: pw });
    expect(unlocked.code).toBe(0);
    expect(unlocked.stdout).toMatch(/Unlocked "main"/);
  });

  it('adds a target and a profile whose secret comes from a file', async () => {
    const target = await op('target', 'add', '--kind', 'fake', '--name', 'box', '--config', '{"host":"box.internal"}', '--json');
    expect(target.code).toBe(0);
    targetId = JSON.parse(target.stdout).id;
    const secretFile = join(dir, 'secret.json');
    await writeFile(secretFile, JSON.stringify({ password: 'Profile-Secret-42' }), { mode: 0o600 });
    const profile = await op('profile', 'add', '--target', targetId, '--label', 'default', '--secret-file', secretFile, '--json');
    expect(profile.code).toBe(0);
    profileId = JSON.parse(profile.stdout).id;
    const list = await op('target', 'list');
    expect(list.stdout).toMatch(/box/);
    expect(list.stdout).not.toMatch(/Profile-Secret-42/);
    const bad = await op('target', 'add', '--kind', 'fake', '--name', 'x', '--config', 'not json');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--config must be a JSON object/);
  });

  it('creates a token and prints it alone on the last line', async () => {
    const created = await op('token', 'create', '--name', 'agent', '--expires', '30d');
    expect(created.code).toBe(0);
    const lines = created.stdout.trim().split('\n');
    tokenSecret = lines[lines.length - 1]!;
    expect(tokenSecret).toMatch(/^aip_[A-Za-z0-9_-]{43}$/);
    const listed = JSON.parse((await op('token', 'list', '--json')).stdout);
    expect(listed).toHaveLength(1);
    tokenId = listed[0].id;
    expect(JSON.stringify(listed)).not.toContain(tokenSecret);
  });

  it('sets and lists grants', async () => {
    const set = await op('grant', 'set', '--token', tokenId, '--target', targetId, '--profile', profileId, '--action', 'write_thing', '--rule', 'approval_required');
    expect(set.code).toBe(0);
    await op('grant', 'set', '--token', tokenId, '--target', targetId, '--profile', profileId, '--action', 'echo', '--rule', 'always_run', '--expires', '1h');
    const grants = JSON.parse((await op('grant', 'list', '--json')).stdout);
    expect(grants.map((g: { action: string; rule: string }) => `${g.action}:${g.rule}`).sort()).toEqual(['echo:always_run', 'write_thing:approval_required']);
    const bad = await op('grant', 'set', '--token', tokenId, '--target', targetId, '--profile', profileId, '--action', 'echo', '--rule', 'sometimes');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/"rule" must be one of/);
  });

  it('runs and declines approvals from the command line', async () => {
    const targetRef = `fake:${targetId}:${profileId}`;
    expect(await agentCall({ token: tokenSecret, targetRef, action: 'echo', input: { text: 'hi' } })).toMatchObject({ kind: 'stopped' });
    expect((await op('switch', 'on')).stdout).toMatch(/on/);
    const quick = await agentCall({ token: tokenSecret, targetRef, action: 'echo', input: { text: 'hi' } });
    expect(quick.request.status).toBe('completed');

    const first = await agentCall({ token: tokenSecret, targetRef, action: 'write_thing', input: { value: 'first\u202ebell\u200b' }, reason: 'ship it' });
    const second = await agentCall({ token: tokenSecret, targetRef, action: 'write_thing', input: { value: 'second' } });
    expect(first.request.status).toBe('approval_pending');
    const listed = await op('approvals', 'list');
    expect(listed.stdout).toContain(first.request.id);
    expect(listed.stdout).toContain('first\\u{202e}bell\\u{200b}');
    const run = await op('approvals', 'run', first.request.id, '--note', 'go ahead');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/completed/);
    const declined = await op('approvals', 'decline', second.request.id, '--note', 'not today');
    expect(declined.stdout).toMatch(/declined/);
    const all = JSON.parse((await op('approvals', 'list', '--all', '--json')).stdout);
    expect(all.map((r: { status: string }) => r.status).sort()).toEqual(['completed', 'completed', 'declined']);
  });

  it('searches the audit log and verifies the chain, failing with the first bad entry after tampering', async () => {
    const search = await op('audit', 'search', 'ship', '--json');
    expect(JSON.parse(search.stdout).length).toBeGreaterThan(0);
    // Pages: the first tells the cursor of the next, which starts below it.
    const page1 = await op('audit', 'search', '--limit', '2', '--json');
    const cursor = /--cursor (\S+)/.exec(page1.stderr)?.[1];
    expect(cursor).toBeDefined();
    const page2 = await op('audit', 'search', '--limit', '2', '--json', '--cursor', cursor!);
    expect(JSON.parse(page2.stdout)[0].seq).toBeLessThan(JSON.parse(page1.stdout)[1].seq);
    expect(JSON.parse((await op('audit', 'search', '--since', '2999-01-01', '--json')).stdout)).toEqual([]);
    expect(JSON.parse((await op('approvals', 'list', '--until', '2000-01-01', '--json')).stdout)).toEqual([]);
    const badTime = await op('audit', 'search', '--since', 'last tuesday');
    expect(badTime.code).not.toBe(0);
    expect(badTime.stderr).toMatch(/ISO-8601/);
    const verified = await op('audit', 'verify');
    expect(verified.code).toBe(0);
    expect(verified.stdout).toMatch(/Audit chain intact/);

    const raw = await openSqlCipher(join(dir, 'databases', 'main.aipdb'), { key: PASSWORD });
    await raw.run(`UPDATE audit_log SET payload = '{"forged":true}' WHERE seq = 5`);
    await raw.close();
    const broken = await op('audit', 'verify');
    expect(broken.code).toBe(3);
    expect(broken.stderr).toMatch(/BROKEN at entry seq 5/);
  });

  it('exports while the gateway runs and imports as a new database', async () => {
    const out = join(dir, 'backup.aipdb');
    const exported = await aip(['db', 'export', 'main', out, '--data-dir', dir, '--password-stdin'], { stdin: pw });
    expect(exported.code).toBe(0);
    // The gateway runs on this data directory, so the import goes through it and needs an existing database's password first.
    const imported = await aip(['db', 'import', out, '--name', 'copy', '--data-dir', dir, '--url', url, '--password-stdin'], { stdin: `${pw}${pw}` });
    expect(imported.code).toBe(0);
    const status = JSON.parse((await aip(['status', '--url', url, '--json'])).stdout);
    expect(status.databases.map((d: { name: string }) => d.name)).toEqual(['copy', 'main']);
    // Two databases now: commands use the first one created, and say so.
    const chosen = await aip(['unlock', '--url', url, '--password-stdin'], { stdin: pw });
    expect(chosen.code).toBe(0);
    expect(chosen.stderr).toMatch(/using database "main", the first one created .*choose with --db/);
  });

  it('locks the database', async () => {
    const locked = await op('lock', '--db', 'main');
    expect(locked.code).toBe(0);
    const after = await op('token', 'list', '--db', 'main');
    expect(after.code).toBe(1);
    expect(after.stderr).toMatch(/is locked/);
  });
});
