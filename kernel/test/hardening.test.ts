import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { chown, mkdir } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { AIP, freePort, waitForLine } from './helpers/cli.js';
import { tempDir, PASSWORD } from './helpers/temp.js';
import { letOthersTraverseCheckout } from './helpers/traversable.js';

/**
 * Invariant 8 against an agent with a shell as the same OS user: it must not
 * open a debugger in, or read the memory of, any process that holds a
 * password, a session or a token (the gateway, `aip approvals watch`, the
 * `aip mcp` bridge, every other aip command).
 */

const isRoot = process.getuid?.() === 0;
/** When the tests run as root they act as an ordinary user (nobody), since root may read any process anyway. */
const AGENT_UID = 65534;
/**
 * As root, the processes run as `nobody` with CAP_DAC_READ_SEARCH only so
 * they can read this checkout wherever it lives (a CI clone may sit under a
 * 0700 directory). Both sides hold the same capability, so the kernel's
 * ptrace check comes down to the dumpable flag, exactly as for a same-user
 * agent without capabilities.
 */
const AS_AGENT = isRoot
  ? ['setpriv', `--reuid=${AGENT_UID}`, `--regid=${AGENT_UID}`, '--clear-groups', '--inh-caps=+dac_read_search', '--ambient-caps=+dac_read_search']
  : [];

function asAgent(command: string, args: string[]): [string, string[]] {
  return AS_AGENT.length ? [AS_AGENT[0]!, [...AS_AGENT.slice(1), command, ...args]] : [command, args];
}

/** What another process of the same user gets when it opens a file of `pid` under /proc. */
function readProcAsSameUser(pid: number, file: 'mem' | 'environ' | 'fd'): { ok: boolean; error: string } {
  // For fd: whether any of its first 64 open files (databases, sockets) can be opened through /proc.
  const open =
    file === 'fd'
      ? `let n = 0, last; for (let fd = 0; fd < 64; fd++) { try { require('fs').closeSync(require('fs').openSync('/proc/${pid}/fd/' + fd, 'r')); n++ } catch (e) { last = e } } if (!n) throw last`
      : `require('fs').closeSync(require('fs').openSync('/proc/${pid}/${file}', 'r'))`;
  const script = `try { ${open}; console.log('OPENED') } catch (e) { console.log(e.code) }`;
  const [command, args] = asAgent(process.execPath, ['-e', script]);
  const result = spawnSync(command, args, { encoding: 'utf8' });
  const out = result.stdout.trim();
  return { ok: out === 'OPENED', error: out || result.stderr };
}

function signalAndWait(pid: number, ms = 700): Promise<void> {
  process.kill(pid, 'SIGUSR1');
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

type Child = ChildProcessByStdio<Writable, Readable, Readable>;

function spawnTracked(command: string, args: string[], env: Record<string, string>): Child & { output: () => string; errors: () => string } {
  const child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'] }) as Child;
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  return Object.assign(child, { output: () => out, errors: () => err });
}

async function stop(child: Child): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

let dir: string;
let cleanup: () => Promise<void>;
let gateway: ReturnType<typeof spawnTracked>;
let url: string;
const children: Child[] = [];

beforeAll(async () => {
  letOthersTraverseCheckout();
  ({ dir, cleanup } = await tempDir('aip-harden-'));
  const dataDir = join(dir, 'data');
  await mkdir(dataDir, { mode: 0o700 });
  if (isRoot) {
    await chown(dir, AGENT_UID, AGENT_UID);
    await chown(dataDir, AGENT_UID, AGENT_UID);
  }
  const port = await freePort();
  const [command, args] = asAgent(process.execPath, [AIP, 'start', '--data-dir', dataDir, '--port', String(port)]);
  gateway = spawnTracked(command, args, { PATH: process.env.PATH ?? '', HOME: dir });
  children.push(gateway);
  url = (await waitForLine(gateway, /listening on (http:\/\/\S+)/))[1]!;
}, 30_000);

afterAll(async () => {
  for (const child of children) await stop(child);
  await cleanup();
});

describe('the gateway against a same-user agent', () => {
  it('is not dumpable: another process of the same user cannot open its /proc/<pid>/mem, environ or fd', () => {
    const mem = readProcAsSameUser(gateway.pid!, 'mem');
    expect(mem.ok, `opening /proc/${gateway.pid}/mem as the same user: ${mem.error}`).toBe(false);
    expect(mem.error).toMatch(/EACCES|EPERM/);
    expect(readProcAsSameUser(gateway.pid!, 'environ').ok).toBe(false);
    // Its open files (the SQLCipher databases, sockets) are not reachable through /proc either.
    expect(readProcAsSameUser(gateway.pid!, 'fd').ok).toBe(false);
  });

  it('the same check opens the memory of an ordinary node process (the test can tell)', async () => {
    const [command, args] = asAgent(process.execPath, ['-e', 'setInterval(() => {}, 1000); console.log("UP")']);
    const plain = spawnTracked(command, args, { PATH: process.env.PATH ?? '' });
    children.push(plain);
    await waitForLine(plain, /UP/);
    expect(readProcAsSameUser(plain.pid!, 'mem').ok).toBe(true);
    expect(readProcAsSameUser(plain.pid!, 'fd').ok).toBe(true);
    await stop(plain);
  });

  it('ignores SIGUSR1: no inspector opens, and it keeps serving', async () => {
    await signalAndWait(gateway.pid!);
    expect(gateway.exitCode).toBeNull();
    expect(gateway.errors()).not.toMatch(/Debugger listening|inspector/i);
    expect(await portAnswers(9229)).toBe(false);
    const status = await fetch(`${url}/api/status`);
    expect(status.status).toBe(200);
  });

  it('reports its hardening in the status, so aip doctor and aip status can show it', async () => {
    const status = (await (await fetch(`${url}/api/status`)).json()) as { process: { pid: number; dumpable: boolean | null; sigusr1Ignored: boolean; inspectorOpen: boolean } };
    expect(status.process).toMatchObject({ pid: gateway.pid, dumpable: false, sigusr1Ignored: true, inspectorOpen: false });
  });
});

describe('long-lived aip processes against a same-user agent', () => {
  it('aip approvals watch, waiting with a password, ignores SIGUSR1 and is not dumpable', async () => {
    const [command, args] = asAgent(process.execPath, [AIP, 'approvals', 'watch', '--url', url, '--db', 'main', '--password-stdin']);
    const watch = spawnTracked(command, args, { PATH: process.env.PATH ?? '', HOME: dir });
    children.push(watch);
    // The first stdin line is the password; it waits for it (and holds it) from here on.
    watch.stdin.write(PASSWORD.slice(0, 5));
    await new Promise((resolve) => setTimeout(resolve, 600));
    await signalAndWait(watch.pid!);
    expect(watch.exitCode).toBeNull();
    expect(watch.signalCode).toBeNull();
    expect(watch.errors()).not.toMatch(/Debugger listening/);
    expect(readProcAsSameUser(watch.pid!, 'mem').ok).toBe(false);
    await stop(watch);
  });

  it('the aip mcp bridge, holding a token, ignores SIGUSR1 and is not dumpable', async () => {
    const [command, args] = asAgent(process.execPath, [AIP, 'mcp']);
    // A well-formed token the gateway does not know: the bridge stays up answering errors until stdin ends.
    const bridge = spawnTracked(command, args, { PATH: process.env.PATH ?? '', AIP_URL: url, AIP_TOKEN: `aip_${'a'.repeat(43)}` });
    children.push(bridge);
    await new Promise((resolve) => setTimeout(resolve, 800));
    await signalAndWait(bridge.pid!);
    expect(bridge.exitCode).toBeNull();
    expect(bridge.errors()).not.toMatch(/Debugger listening/);
    expect(readProcAsSameUser(bridge.pid!, 'environ').ok).toBe(false);
    await stop(bridge);
  });
});

describe('an inspector asked for at start', () => {
  it('is closed before the gateway accepts a password', async () => {
    const inspectPort = await freePort();
    const port = await freePort();
    const { dir: other, cleanup: cleanOther } = await tempDir('aip-harden-inspect-');
    try {
      const child = spawnTracked(process.execPath, [`--inspect=127.0.0.1:${inspectPort}`, AIP, 'start', '--data-dir', join(other, 'data'), '--port', String(port)], {
        PATH: process.env.PATH ?? '',
        HOME: other,
      });
      children.push(child);
      await waitForLine(child, /listening on/);
      expect(await portAnswers(inspectPort)).toBe(false);
      await stop(child);
    } finally {
      await cleanOther();
    }
  });
});
