import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcessByStdio } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { AIP, aip, freePort, waitForLine } from './helpers/cli.js';
import { startSshd, type Sshd } from './helpers/sshd.js';
import { tempDir, PASSWORD } from './helpers/temp.js';

/**
 * `aip ssh key ...` and `aip ssh hostkey ...` against a running `aip start`
 * and a real sshd: what the operator sees, and that no private material is
 * ever printed.
 */
type Gateway = ChildProcessByStdio<Writable, Readable, Readable> & { url: string };

let dir: string;
let cleanup: () => Promise<void>;
let gateway: Gateway;
let sshd: Sshd;
const env = () => ({ HOME: join(dir, 'home') });
const pw = `${PASSWORD}\n`;
const run = (args: string[], stdin = pw) => aip([...args, '--url', gateway.url, '--password-stdin'], { stdin, env: env() });

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('aip-clissh-'));
  await mkdir(join(dir, 'home'), { recursive: true });
  const port = await freePort();
  gateway = spawn(process.execPath, [AIP, 'start', '--data-dir', join(dir, 'data'), '--port', String(port)], {
    env: { PATH: process.env.PATH ?? '', HOME: join(dir, 'home') },
    stdio: ['pipe', 'pipe', 'pipe'],
  }) as Gateway;
  gateway.url = (await waitForLine(gateway, /listening on (http:\/\/\S+)/))[1]!;
  expect((await aip(['db', 'create', 'main', '--url', gateway.url, '--password-stdin'], { stdin: pw, env: env() })).code).toBe(0);
  sshd = await startSshd();
}, 60_000);

afterAll(async () => {
  gateway?.kill('SIGKILL');
  await sshd?.stop();
  await cleanup();
});

describe('aip ssh key', () => {
  it('generate prints the public key, fingerprint and install command, never private material; show and list agree', async () => {
    const generated = await run(['ssh', 'key', 'generate', '--name', 'deploy']);
    expect(generated.code, generated.stderr).toBe(0);
    expect(generated.stdout).toMatch(/fingerprint: SHA256:[A-Za-z0-9+/]{43}/);
    expect(generated.stdout).toMatch(/^ssh-ed25519 AAAA\S+ aipermission:deploy$/m);
    expect(generated.stdout).toContain('authorized_keys');
    const shown = await run(['ssh', 'key', 'show', 'deploy']);
    const listed = await run(['ssh', 'key', 'list', '--json']);
    for (const out of [generated, shown, listed]) expect(out.stdout + out.stderr).not.toMatch(/PRIVATE KEY|BEGIN/);
    expect(JSON.parse(listed.stdout)).toMatchObject([{ name: 'deploy', keyType: 'ssh-ed25519' }]);
    const dup = await run(['ssh', 'key', 'generate', '--name', 'deploy']);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/already exists.*aip ssh key remove deploy/);
  });

  it('import of an encrypted key reads its passphrase from line 2 of --password-stdin; the install command it prints works against sshd', async () => {
    const file = join(dir, 'id_ecdsa');
    execFileSync('ssh-keygen', ['-q', '-t', 'ecdsa', '-N', 'secret pass 7', '-f', file]);
    const imported = await run(['ssh', 'key', 'import', '--name', 'laptop', file], `${PASSWORD}\nsecret pass 7\n`);
    expect(imported.code, imported.stderr).toBe(0);
    const expected = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${file}.pub`]).toString().split(' ')[1]!;
    expect(imported.stdout).toContain(`fingerprint: ${expected}`);
    const wrong = await run(['ssh', 'key', 'import', '--name', 'laptop2', file], `${PASSWORD}\nnot it\n`);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/passphrase does not open/);

    const install = imported.stdout.split('\n').find((l) => l.startsWith('umask 077'))!;
    execFileSync('sh', ['-c', install], { env: { ...process.env, HOME: sshd.home } });
    execFileSync('sh', ['-c', install], { env: { ...process.env, HOME: sshd.home } });
    expect(readFileSync(sshd.authorizedKeysFile, 'utf8').trim().split('\n')).toHaveLength(1);
    // OpenSSH's own client logs in with (a decrypted copy of) the original key file: the installed line is right.
    const plain = join(dir, 'id_ecdsa_plain');
    execFileSync('cp', [file, plain]);
    execFileSync('ssh-keygen', ['-q', '-p', '-P', 'secret pass 7', '-N', '', '-f', plain]);
    const out = execFileSync('ssh', ['-i', plain, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', `UserKnownHostsFile=${join(dir, 'kh')}`, '-p', String(sshd.port), `${sshd.user}@127.0.0.1`, 'echo in'], {
      env: { ...process.env, SSH_ASKPASS: '/bin/false' },
      input: '',
    }).toString();
    expect(out.trim()).toBe('in');
  });

  it('remove deletes the key', async () => {
    expect((await run(['ssh', 'key', 'remove', 'laptop'])).code).toBe(0);
    const shown = await run(['ssh', 'key', 'show', 'laptop']);
    expect(shown.code).toBe(1);
    expect(shown.stderr).toMatch(/does not exist/);
  });
});

describe('aip ssh hostkey', () => {
  it('scan leaves an approval for an unknown key; approve pins it; a changed key needs --replace', async () => {
    const scanned = await run(['ssh', 'hostkey', 'scan', `127.0.0.1:${sshd.port}`]);
    expect(scanned.code, scanned.stderr).toBe(1);
    expect(scanned.stdout, scanned.stderr).toContain(sshd.hostFingerprint);
    expect(scanned.stdout).toMatch(/not known yet.*aip ssh hostkey approve hka_/);
    const listed = JSON.parse((await run(['ssh', 'hostkey', 'list', '--status', 'pending', '--json'])).stdout);
    const approval = listed.approvals[0];
    expect(approval).toMatchObject({ host: '127.0.0.1', port: sshd.port, keyType: 'ssh-ed25519', fingerprint: sshd.hostFingerprint, reason: 'unknown' });
    const approved = await run(['ssh', 'hostkey', 'approve', approval.id]);
    expect(approved.code, approved.stderr).toBe(0);
    expect((await run(['ssh', 'hostkey', 'scan', `127.0.0.1:${sshd.port}`])).code).toBe(0);

    const port = sshd.port;
    const first = sshd.hostFingerprint;
    await sshd.stop();
    sshd = await startSshd({ port });
    const changed = await run(['ssh', 'hostkey', 'scan', `127.0.0.1:${port}`]);
    expect(changed.code).toBe(1);
    expect(changed.stdout).toMatch(/CHANGED/);
    const pending = JSON.parse((await run(['ssh', 'hostkey', 'list', '--status', 'pending', '--json'])).stdout).approvals[0];
    expect(pending).toMatchObject({ reason: 'changed', pinnedFingerprint: first });
    const plain = await run(['ssh', 'hostkey', 'approve', pending.id]);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(/--replace/);
    expect((await run(['ssh', 'hostkey', 'approve', pending.id, '--replace'])).code).toBe(0);
    expect((await run(['ssh', 'hostkey', 'scan', `127.0.0.1:${port}`])).code).toBe(0);
    const audit = await run(['audit', 'search', '--event', 'host_key.replaced', '--json']);
    expect(audit.stdout).toContain('host_key.replaced');
  });
});
