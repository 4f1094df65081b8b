import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { AIP, aip, freePort, waitForLine } from './helpers/cli.js';
import { tempDir, PASSWORD, OTHER_PASSWORD } from './helpers/temp.js';

/**
 * The operator's CLI against a running `aip start`, as a new user meets it:
 * data directories learnt from the gateway, stops that need no password,
 * and a gateway that always stops.
 */

type Gateway = ChildProcessByStdio<Writable, Readable, Readable> & { url: string; errors: () => string };

async function startAip(dataDir: string, home: string): Promise<Gateway> {
  const port = await freePort();
  const child = spawn(process.execPath, [AIP, 'start', '--data-dir', dataDir, '--port', String(port)], {
    env: { PATH: process.env.PATH ?? '', HOME: home },
    stdio: ['pipe', 'pipe', 'pipe'],
  }) as ChildProcessByStdio<Writable, Readable, Readable>;
  let errors = '';
  child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  const url = (await waitForLine(child, /listening on (http:\/\/\S+)/))[1]!;
  return Object.assign(child, { url, errors: () => errors });
}

function exited(child: Gateway, timeoutMs: number): Promise<{ code: number | null; signal: string | null } | 'timeout'> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

let dir: string;
let cleanup: () => Promise<void>;
let home: string;
let dataDir: string;
let gateway: Gateway;
const env = () => ({ HOME: home });
const pw = `${PASSWORD}\n`;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('aip-cliop-'));
  home = join(dir, 'home');
  dataDir = join(dir, 'elsewhere', 'data');
  await mkdir(home, { recursive: true });
  gateway = await startAip(dataDir, home);
}, 30_000);

afterAll(async () => {
  if (gateway && gateway.exitCode === null) {
    gateway.kill('SIGKILL');
    await exited(gateway, 5_000);
  }
  await cleanup();
});

describe('operator commands learn the data directory from the gateway', () => {
  it('aip db create goes to the gateway\'s data directory, not ~/.aipermission, and unlocks it there', async () => {
    const created = await aip(['db', 'create', 'main', '--url', gateway.url, '--password-stdin'], { stdin: pw, env: env() });
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).toContain(`data directory ${dataDir} (the gateway at ${gateway.url} uses it)`);
    expect(existsSync(join(dataDir, 'databases', 'main.aipdb'))).toBe(true);
    expect(existsSync(join(home, '.aipermission'))).toBe(false);
    const status = JSON.parse((await aip(['status', '--url', gateway.url, '--json'], { env: env() })).stdout);
    expect(status.databases).toMatchObject([{ name: 'main', unlocked: true }]);
  });

  it('aip status shows the data directory and that the gateway is hardened', async () => {
    const status = await aip(['status', '--url', gateway.url], { env: env() });
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`Data directory: ${dataDir}`);
    expect(status.stdout).toMatch(/Gateway process \d+: hardened/);
  });

  it('adding a second database through the gateway asks for an existing database\'s password first', async () => {
    const refused = await aip(['db', 'create', 'second', '--url', gateway.url, '--password-stdin'], { stdin: `Wrong-Password-123x\n${OTHER_PASSWORD}\n`, env: env() });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/does not open database "main"/);
    const created = await aip(['db', 'create', 'second', '--url', gateway.url, '--password-stdin'], { stdin: `${PASSWORD}\n${OTHER_PASSWORD}\n`, env: env() });
    expect(created.code, created.stderr).toBe(0);
    const listed = await aip(['db', 'list', '--url', gateway.url], { env: env() });
    expect(listed.stdout).toMatch(/main \(default\)\s+unlocked/);
    expect(listed.stdout).toMatch(/second\s+unlocked/);
  });

  it('commands pick the first database created when several exist, and say so', async () => {
    const result = await aip(['token', 'list', '--url', gateway.url, '--password-stdin'], { stdin: pw, env: env() });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/using database "main", the first one created/);
  });
});

describe('stopping needs no password, even while an agent sprays wrong ones', () => {
  it('aip switch off and aip lock work with no password and no terminal', async () => {
    const guesses = Array.from({ length: 6 }, (_, i) => aip(['token', 'list', '--db', 'main', '--url', gateway.url, '--password-stdin'], { stdin: `Wrong-Guess-${i}-xxxxx\n`, env: env() }));
    expect((await aip(['switch', 'on', '--db', 'main', '--url', gateway.url, '--password-stdin'], { stdin: pw, env: env() })).code).toBe(0);
    const off = await aip(['switch', 'off', '--url', gateway.url], { env: env(), detached: true });
    expect(off.code, off.stderr).toBe(0);
    expect(off.stdout).toMatch(/MCP switch off for "main", "second"/);
    const status = JSON.parse((await aip(['status', '--url', gateway.url, '--json'], { env: env() })).stdout);
    expect(status.databases.every((d: { mcpRunning: boolean }) => !d.mcpRunning)).toBe(true);
    const locked = await aip(['lock', '--db', 'second', '--url', gateway.url], { env: env(), detached: true });
    expect(locked.code, locked.stderr).toBe(0);
    const all = await aip(['lock', '--url', gateway.url], { env: env(), detached: true });
    expect(all.stdout).toMatch(/Locked "main"/);
    await Promise.all(guesses);
  });
});

describe('one gateway per data directory', () => {
  it('a second aip start on the same data directory exits, naming the first one', async () => {
    const port = await freePort();
    const second = await aip(['start', '--data-dir', dataDir, '--port', String(port)], { env: env() });
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`Another gateway (pid ${gateway.pid}, ${gateway.url}`);
    expect(second.stderr).toContain('is already using the data directory');
  });
});

describe('the gateway always stops', () => {
  it('stops on SIGTERM after its data directory vanished under it', async () => {
    const { dir: other, cleanup: clean } = await tempDir('aip-vanish-');
    try {
      const data = join(other, 'data');
      expect((await aip(['db', 'create', 'main', '--data-dir', data, '--url', 'http://127.0.0.1:1', '--password-stdin'], { stdin: pw, env: env() })).code).toBe(0);
      const gw = await startAip(data, home);
      expect((await aip(['unlock', '--url', gw.url, '--password-stdin'], { stdin: pw, env: env() })).code).toBe(0);
      await rm(data, { recursive: true, force: true });
      // Something writes after the files are gone (an audited token list).
      await aip(['token', 'list', '--url', gw.url, '--password-stdin'], { stdin: pw, env: env() });
      gw.kill('SIGTERM');
      const result = await exited(gw, 20_000);
      expect(result).not.toBe('timeout');
    } finally {
      await clean();
    }
  });

  it('releases the data directory when killed with SIGKILL, so the next start works', async () => {
    const { dir: other, cleanup: clean } = await tempDir('aip-kill9-');
    try {
      const data = join(other, 'data');
      const first = await startAip(data, home);
      first.kill('SIGKILL');
      await exited(first, 5_000);
      const next = await startAip(data, home);
      expect(next.url).toMatch(/^http:/);
      next.kill('SIGTERM');
      expect(await exited(next, 20_000)).toMatchObject({ code: 0 });
    } finally {
      await clean();
    }
  });
});

describe('aip on PATH', () => {
  it('npm run install-cli writes a launcher that runs this checkout from any directory', async () => {
    const prefix = join(dir, 'prefix');
    const script = fileURLToPath(new URL('../scripts/install-cli.mjs', import.meta.url));
    const install = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, [script, '--prefix', prefix], { env: { PATH: '/usr/bin:/bin', HOME: home } });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      child.on('close', (code) => resolve({ code, out }));
    });
    expect(install.code).toBe(0);
    expect(install.out).toMatch(/is not on your PATH yet/);
    expect(await readdir(join(prefix, 'bin'))).toEqual(['aip']);
    const version = await new Promise<string>((resolve) => {
      const child = spawn(join(prefix, 'bin', 'aip'), ['--version'], { cwd: home, env: { PATH: '/usr/bin:/bin', HOME: home } });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      child.on('close', () => resolve(out.trim()));
    });
    expect(version).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

describe('aip doctor', () => {
  it('checks this machine and the running gateway and says what to do', async () => {
    const result = await aip(['doctor', '--url', gateway.url, '--json'], { env: env() });
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as { dataDir: string; checks: Array<{ name: string; level: string; fix?: string }> };
    expect(report.dataDir).toBe(dataDir);
    const byName = new Map(report.checks.map((check) => [check.name, check]));
    for (const name of ['aip process', 'gateway', 'code', 'ptrace', 'sandbox', 'plugin limits', 'data directory', 'same account']) expect(byName.has(name), name).toBe(true);
    expect(byName.get('gateway')!.level).toBe('ok');
    expect(byName.get('aip process')!.level).toBe('ok');
    // What bounds a plugin process (prlimit is on this machine): its memory and scratch, and who it runs as.
    expect(byName.get('plugin limits')).toMatchObject({ level: 'ok', detail: expect.stringMatching(/^plugins run as .*, with at most 1536 MiB of address space and a 64 MiB scratch/) });
    for (const check of report.checks.filter((c) => c.level === 'warn')) expect(check.fix, check.name).toBeTruthy();
    const text = await aip(['doctor', '--url', gateway.url], { env: env() });
    expect(text.stdout).toMatch(/^OK {4}gateway: /m);
  });
});
