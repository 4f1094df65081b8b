import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, execFileSync, type ChildProcessByStdio } from 'node:child_process';
import { appendFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Readable, Writable } from 'node:stream';
import { aip, freePort, waitForLine } from './helpers/cli.js';
import { operator } from './helpers/mcp.js';
import { tempDir, PASSWORD } from './helpers/temp.js';

let dir: string;
let cleanup: () => Promise<void>;
let url: string;
let gateway: ChildProcessByStdio<Writable, Readable, null>;
let port: number;
/** The agent's token and target of the installed demo connector (set once it runs). */
let demoAgent: { token: string; targetRef: string };
const op = (...args: string[]) => aip([...args, '--url', url, '--password-stdin'], { stdin: `${PASSWORD}\n` });

async function agentCall(input: Record<string, unknown>): Promise<Record<string, any>> {
  const next = waitForLine(gateway, /RESULT (.*)\n/);
  gateway.stdin.write(`call ${JSON.stringify(input)}\n`);
  return JSON.parse((await next)[1]!);
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('aip-cli-plugins-'));
  port = await freePort();
  url = `http://127.0.0.1:${port}`;
  await aip(['db', 'create', 'main', '--data-dir', join(dir, 'data'), '--password-stdin'], { stdin: `${PASSWORD}\n` });
  await startGateway();
});

async function startGateway() {
  gateway = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/gateway-with-fake.mjs', import.meta.url)), join(dir, 'data'), String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
  await waitForLine(gateway, /LISTENING/);
  await aip(['unlock', '--url', url, '--password-stdin'], { stdin: `${PASSWORD}\n` });
  await op('switch', 'on');
}

/** Stops the gateway (waiting for it) and starts a new one on the same data directory and port: it loads the plugins again. */
async function restartGateway() {
  const exited = new Promise((resolve) => gateway.once('exit', resolve));
  gateway.kill('SIGTERM');
  await exited;
  await startGateway();
}
afterAll(async () => {
  // Wait for it to stop: locking writes into the data directory until the very end.
  if (gateway && gateway.exitCode === null && gateway.signalCode === null) {
    const exited = new Promise((resolve) => gateway.once('exit', resolve));
    gateway.kill('SIGTERM');
    await exited;
  }
  await cleanup();
});

describe('from scaffold to installed connector', () => {
  const demo = () => join(dir, 'demo');

  it('scaffolds a connector that builds and passes the conformance suite', async () => {
    const created = await aip(['plugin', 'new', 'demo', '--dir', demo()]);
    expect(created.code).toBe(0);
    expect((await readdir(demo())).sort()).toEqual(['.gitignore', 'README.md', 'build.mjs', 'package.json', 'src', 'test']);
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: demo(), stdio: 'ignore' });
    // eslint-disable-next-line no-control-regex
    const test = execFileSync('npm', ['test'], { cwd: demo(), encoding: 'utf8', env: { ...process.env, CI: 'true' } }).replace(/\u001b\[[0-9;]*m/g, '');
    expect(test).toMatch(/conformance\.test\.ts \(8 tests\)/);
    expect(test).toMatch(/Tests\s+9 passed/);
    const again = await aip(['plugin', 'new', 'demo', '--dir', demo()]);
    expect(again.code).toBe(2);
  }, 120_000);

  it('lists the built-in connectors with their sandbox level', async () => {
    const listed = await op('plugin', 'list', '--json');
    const { plugins, sandbox } = JSON.parse(listed.stdout);
    expect(plugins.find((p: { id: string }) => p.id === 'redis')).toMatchObject({ kind: 'builtin', approved: true });
    expect(sandbox.level).toMatch(/node-permission/);
    expect(sandbox.network).toBe(sandbox.bwrap ? 'none (endpoint only)' : 'host network (no bubblewrap)');
  });

  it('asks for consent, and without a terminal needs --yes', async () => {
    const refused = await op('plugin', 'install', demo());
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/demo 0\.1\.0/);
    expect(refused.stderr).toMatch(/token: user, token \(secret\)/);
    expect(refused.stderr).toMatch(/Re-run with --yes to confirm/);
    // What it will reach once approved, and that it already ran once (and how), before the question.
    expect(refused.stderr).toMatch(/^ {2}files: {5}reads its own approved package/m);
    // Scratch never outlives the process, and has a quota, at either sandbox level (issue 10 item 6).
    expect(refused.stderr).toMatch(/^ {2}scratch: {3}(\/scratch \(a tmpfs in memory\), tmpfs, gone with the process|\S+plugin-scratch\/demo, folder on disk, removed when the process stops), quota 64 MiB$/m);
    expect(refused.stderr).toMatch(/^ {2}memory: {4}at most 1536 MiB of address space for its whole process$/m);
    expect(refused.stderr).toMatch(/^ {2}runs as: {3}(nobody, in a user namespace of its own, no capabilities|the gateway's user, no capabilities|root, with every capability \(no bubblewrap\))$/m);
    expect(refused.stderr).toMatch(/^ {2}processes: none: it cannot start child processes or worker threads$/m);
    expect(refused.stderr).toMatch(/^ {2}inspected: it already ran once, to show this: network (none \(endpoint only\)|host network \(no bubblewrap\)); scratch (a throwaway tmpfs of 1 MiB, gone with the process|none: every write was refused); no endpoint; killed after 5 s at most$/m);
    const installed = await op('plugin', 'install', demo(), '--yes');
    expect(installed.code).toBe(0);
    expect(installed.stdout).toMatch(/Installed and approved demo 0\.1\.0/);
  });

  it('runs the installed connector for an agent, sandboxed', async () => {
    const target = JSON.parse((await op('target', 'add', '--kind', 'demo', '--name', 'greeter', '--config', '{"greeting":"Welcome"}', '--json')).stdout);
    const secretFile = join(dir, 'secret.json');
    await writeFile(secretFile, JSON.stringify({ token: 'Demo-Token-123' }));
    const profile = JSON.parse((await op('profile', 'add', '--target', target.id, '--label', 'default', '--config', '{"user":"ada"}', '--secret-file', secretFile, '--json')).stdout);
    const tokenOut = (await op('token', 'create', '--name', 'agent')).stdout.trim().split('\n');
    const token = tokenOut[tokenOut.length - 1]!;
    const tokens = JSON.parse((await op('token', 'list', '--json')).stdout);
    await op('grant', 'set', '--token', tokens[0].id, '--target', target.id, '--profile', profile.id, '--action', '*', '--rule', 'always_run');
    const result = await agentCall({ token, targetRef: `demo:${target.id}:${profile.id}`, action: 'greet', input: { name: 'Grace' } });
    demoAgent = { token, targetRef: `demo:${target.id}:${profile.id}` };
    expect(result.request).toMatchObject({ status: 'completed', output: { greeting: 'Welcome, Grace!', as: 'ada' } });
  });

  it('an install record edited after approval: verify says what differs at once; after a restart list says CHANGED: re-approve and nothing of it runs', async () => {
    const record = join(dir, 'data', 'plugins', 'demo', '0.1.0', '.aip-plugin.json');
    const original = await readFile(record, 'utf8');
    const edited = JSON.parse(original);
    edited.manifest.actions.push({ ...edited.manifest.actions[0], name: 'exfiltrate', title: 'Exfiltrate' });
    await writeFile(record, JSON.stringify(edited, null, 2));
    const verified = await op('plugin', 'verify', 'demo');
    expect(verified.code).toBe(1);
    expect(verified.stderr).toMatch(/demo 0\.1\.0: install record CHANGED since approval \(manifest \(sha256 [0-9a-f]{12}…, approved [0-9a-f]{12}…\)\)\. It will not start until re-approved/);
    await restartGateway();
    const listed = await op('plugin', 'list');
    expect(listed.stdout).toMatch(/^demo +0\.1\.0 +CHANGED: re-approve /m);
    expect(listed.stderr).toMatch(/demo 0\.1\.0: not approved: re-approve it with aip plugin install <its source>\. What is installed differs from what this database approved: manifest/);
    const rest = JSON.parse((await op('plugin', 'list', '--json')).stdout).plugins.find((p: { id: string }) => p.id === 'demo');
    expect(rest).toMatchObject({ approved: false, approvalProblem: expect.stringMatching(/^not approved: re-approve/) });
    const refused = await agentCall({ token: demoAgent.token, targetRef: demoAgent.targetRef, action: 'exfiltrate', input: {} });
    expect(refused.error?.message ?? JSON.stringify(refused)).toMatch(/No connector for "demo" is installed/);
    // Re-approving the package as it is puts it back (the edit was the record's, not the package's).
    expect((await op('plugin', 'install', demo(), '--yes')).code).toBe(0);
    const ok = await agentCall({ token: demoAgent.token, targetRef: demoAgent.targetRef, action: 'greet', input: { name: 'Ada' } });
    expect(ok.request).toMatchObject({ status: 'completed' });
  }, 60_000);

  it('verify exits 0 while the files are as approved and 1 after they change', async () => {
    expect((await op('plugin', 'verify', 'demo')).code).toBe(0);
    await appendFile(join(dir, 'data', 'plugins', 'demo', '0.1.0', 'dist', 'plugin.mjs'), '\n// changed\n');
    const changed = await op('plugin', 'verify', 'demo');
    expect(changed.code).toBe(1);
    expect(changed.stderr).toMatch(/files CHANGED since approval/);
  });

  it('checks a target connection with a typed result', async () => {
    const target = JSON.parse((await op('target', 'add', '--kind', 'redis', '--name', 'cache', '--config', '{"host":"127.0.0.1","port":6379}', '--json')).stdout);
    const profile = JSON.parse((await op('profile', 'add', '--target', target.id, '--label', 'open', '--credential-kind', 'none', '--json')).stdout);
    const ok = await op('target', 'check', target.id, '--profile', profile.id);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/OK: Redis answered PONG/);
    const port = await freePort();
    const down = JSON.parse((await op('target', 'add', '--kind', 'redis', '--name', 'down', '--config', `{"host":"127.0.0.1","port":${port}}`, '--json')).stdout);
    const downProfile = JSON.parse((await op('profile', 'add', '--target', down.id, '--label', 'open', '--credential-kind', 'none', '--json')).stdout);
    const failed = await op('target', 'check', down.id, '--profile', downProfile.id);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/FAILED \(network\)/);
  });

  it('removes it', async () => {
    expect((await op('plugin', 'remove', 'demo')).code).toBe(0);
    const { plugins } = JSON.parse((await op('plugin', 'list', '--json')).stdout);
    expect(plugins.map((p: { id: string }) => p.id)).not.toContain('demo');
  });
});

describe('what a new user trips over', () => {
  it('lists every installed kind with its credential kinds and their fields (aip target kinds)', async () => {
    const kinds = await op('target', 'kinds');
    expect(kinds.code).toBe(0);
    expect(kinds.stdout).toMatch(/^redis {2}Redis \S+/m);
    expect(kinds.stdout).toMatch(/^ {4}password {2}username, password \[secret, required\] {3}\(the default\)$/m);
    expect(kinds.stdout).toMatch(/^ {4}none {6}no fields$/m);
    const json = JSON.parse((await op('target', 'kinds', '--json')).stdout);
    expect(json.find((c: { id: string }) => c.id === 'redis').credentialKinds).toEqual([
      { kind: 'password', fields: ['username', 'password'], secret: ['password'], required: ['password'] },
      { kind: 'none', fields: [], secret: [], required: [] },
    ]);
    const help = await aip(['profile', '--help']);
    expect(help.stdout).toMatch(/none {7}a Redis without a password: no --secret-file/);
    expect(help.stdout).toMatch(/aip target kinds/);
  });

  it('refuses a target of a kind no connector provides, names the installed kinds and guesses the typo', async () => {
    const typo = await op('target', 'add', '--kind', 'redsi', '--name', 'typo', '--config', '{"host":"127.0.0.1"}');
    expect(typo.code).toBe(1);
    expect(typo.stderr).toMatch(/No installed connector provides the kind "redsi"\. Did you mean "redis"\? Installed kinds: fake, redis\./);
    const unknown = await op('target', 'add', '--kind', 'mongodb', '--name', 'typo');
    expect(unknown.stderr).toMatch(/the kind "mongodb"\. Installed kinds: fake, redis\. Install another with aip plugin install/);
    // The kernel refuses it, so the REST API (and the coming UI) cannot store one either.
    const rest = await operator(url);
    await expect(rest.call('POST', rest.db('/targets'), { kind: 'redsi', name: 'typo' })).rejects.toThrow(/Did you mean "redis"/);
    expect(JSON.parse((await op('target', 'list', '--json')).stdout).map((t: { name: string }) => t.name)).not.toContain('typo');
  });

  it('lists the credential kinds when a profile leaves the kind out or names one the connector lacks', async () => {
    const target = JSON.parse((await op('target', 'add', '--kind', 'redis', '--name', 'no-password', '--config', '{"host":"127.0.0.1","port":6379}', '--json')).stdout);
    // A Redis without a password: no kind and no secret file. The first kind (password) needs a password.
    const missing = await op('profile', 'add', '--target', target.id, '--label', 'default');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/No credential kind was given, so the first, "password", was used\./);
    expect(missing.stderr).toMatch(/credential kinds: password \(username, password \[secret, required\]\); none \(no fields\)\. Name one as credentialKind \(aip profile add --credential-kind KIND\)/);
    expect(missing.stderr).toMatch(/Every connector's credential kinds and fields: aip target kinds/);
    const wrong = await op('profile', 'add', '--target', target.id, '--label', 'default', '--credential-kind', 'nonee');
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/The redis connector has no credential kind "nonee"\. Did you mean "none"\? The redis connector's credential kinds: password/);
    const open = await op('profile', 'add', '--target', target.id, '--label', 'default', '--credential-kind', 'none');
    expect(open.code).toBe(0);
    expect(open.stdout).toMatch(/credential kind none; secret fields: none/);
  });

  it("warns that a grant a stricter '*' row overrides has no effect, and shows the effective rule in grant list", async () => {
    const target = JSON.parse((await op('target', 'add', '--kind', 'redis', '--name', 'grants', '--config', '{"host":"127.0.0.1","port":6379}', '--json')).stdout);
    const profile = JSON.parse((await op('profile', 'add', '--target', target.id, '--label', 'open', '--credential-kind', 'none', '--json')).stdout);
    const created = (await op('token', 'create', '--name', 'effective', '--json')).stdout;
    const tokenId = JSON.parse(created).token.id as string;
    const grant = (...args: string[]) => op('grant', 'set', '--token', tokenId, '--target', target.id, '--profile', profile.id, ...args);
    const star = await grant('--action', '*', '--rule', 'approval_required', '--json');
    const starId = JSON.parse(star.stdout).id as string;
    expect(star.stderr).toBe('');

    const ping = await grant('--action', 'ping', '--rule', 'always_run');
    expect(ping.code).toBe(0);
    expect(ping.stdout).toMatch(/ping -> always_run\./);
    expect(ping.stderr).toContain(`warning: ping is still approval_required: the stricter row ${starId} (action * -> approval_required) applies too, and the stricter rule wins.`);
    expect(ping.stderr).toContain(`aip grant remove ${starId}`);

    const listed = await op('grant', 'list', '--token', tokenId);
    expect(listed.stdout).toMatch(/ EFFECTIVE /);
    const pingRow = listed.stdout.split('\n').find((l) => / ping +always_run /.test(l));
    expect(pingRow).toContain(`approval_required (by * row ${starId})`);
    const listedJson = JSON.parse((await op('grant', 'list', '--token', tokenId, '--json')).stdout) as Array<{ action: string; effectiveRule: string; overriddenBy: { id: string } | null }>;
    expect(listedJson.find((g) => g.action === 'ping')).toMatchObject({ effectiveRule: 'approval_required', overriddenBy: { id: starId } });
    expect(listedJson.find((g) => g.action === '*')).toMatchObject({ effectiveRule: 'approval_required', overriddenBy: null });

    // A stricter action row is no override; a stricter '*' row says which rows it now overrides.
    expect((await grant('--action', 'delete_keys', '--rule', 'blocked')).stderr).toBe('');
    const tighter = await grant('--action', '*', '--rule', 'blocked');
    expect(tighter.stderr).toMatch(/note: ping \(row grt_\w+, always_run\) is now blocked: this stricter row overrides it\./);
    expect(tighter.stderr).not.toMatch(/delete_keys/);
    // The REST answer carries the effective rule, for the UI.
    const rest = await operator(url);
    const answer = await rest.call<{ effectiveRule: string; overriddenBy: { id: string } | null }>('PUT', rest.db('/grants'), {
      tokenId,
      targetId: target.id,
      profileId: profile.id,
      action: 'info',
      rule: 'always_run',
    });
    expect(answer).toMatchObject({ effectiveRule: 'blocked', overriddenBy: { id: starId, action: '*', rule: 'blocked' } });
  });
});
