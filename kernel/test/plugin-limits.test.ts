// What a plugin process may hold and be (issue 10 items 6, 7 and 9), attacked
// for real at each sandbox level: memory outside the V8 heap, scratch on disk
// and in memory, root's capabilities, and signals to the gateway. Each
// sandbox level says what it enforces (SandboxLevel), and these tests hold
// it to that.
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chown, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pluginHarness, type PluginHarness } from './helpers/plugins.js';
import { freePort, waitForLine } from './helpers/cli.js';
import { detectBwrap } from '../src/plugin-host/index.js';
import { PLUGIN_ADDRESS_SPACE_BYTES, PLUGIN_SCRATCH_QUOTA_BYTES } from '../src/plugin-host/sandbox.js';
import { letOthersTraverseCheckout } from './helpers/traversable.js';

let h: PluginHarness | undefined;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

const FAST = { idleMs: 60_000, cancelGraceMs: 500, handshakeTimeoutMs: 5_000, restartBudget: { crashes: 5, windowMs: 60_000 } };
const HAS_BWRAP = detectBwrap() !== null;
const MODES = HAS_BWRAP ? (['off', 'auto'] as const) : (['off'] as const);
const IS_ROOT = process.getuid?.() === 0;
const statusOf = (id: string) => h!.host.list().find((p) => p.id === id)!.status;

async function until<T>(check: () => T | Promise<T>, timeoutMs = 5_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() - started > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The pid of the node process of a plugin (under bubblewrap a descendant of the pid the host spawned), from the host's /proc. */
function nodeProcessOf(pid: number): number {
  const children = (p: number) =>
    readFileSync(`/proc/${p}/task/${p}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('--max-old-space-size')) return p;
    queue.push(...children(p));
  }
  throw new Error(`no node process under ${pid}`);
}
/** Effective capabilities of a process, read by the host from /proc (the plugin itself may not read /proc). */
const capEffOf = (pid: number) => /^CapEff:\s*(\S+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1];

/** Every file under a plugin's scratch folders in the data directory (one folder per credential profile). */
const scratchFiles = (dir: string, id: string) => readdir(join(dir, 'plugin-scratch', id), { recursive: true }).catch(() => [] as string[]);

describe('memory of the whole plugin process', () => {
  for (const bwrap of MODES) {
    it(`refuses 1.1 GiB of Buffers (outside the V8 heap) and allows ordinary use (bwrap ${bwrap})`, async () => {
      h = await pluginHarness({ fixtures: ['mem-hog'], bwrap, supervisor: FAST });
      expect(h.host.sandbox.memoryLimitBytes).toBe(PLUGIN_ADDRESS_SPACE_BYTES);
      const t = await h.target('mem-hog');
      const hog = await h.call(t, 'hold', { mib: 1126 });
      // Refused: either the allocation fails inside it, or the process is ended for it; never 1.1 GiB held.
      if (hog.status === 'completed') {
        const output = hog.output as { heldMiB: number; refused: string | null };
        expect(output.heldMiB).toBeLessThan(1126);
        expect(output.refused).toMatch(/allocation failed/i);
      } else {
        expect(hog.status).toBe('outcome_unknown');
      }
      const fine = await h.call(t, 'hold', { mib: 128 });
      expect(fine).toMatchObject({ status: 'completed', output: { heldMiB: 128, refused: null } });
    }, 30_000);
  }
});

describe('scratch: a quota, and nothing kept after the process', () => {
  if (HAS_BWRAP) {
    it('under bubblewrap is a tmpfs of the quota: a big file and many small ones are refused, nothing reaches the data directory, and a restarted process finds nothing', async () => {
      h = await pluginHarness({ fixtures: ['scratch-filler'], bwrap: 'auto', supervisor: FAST });
      expect(h.host.sandbox.scratch).toBe('tmpfs, gone with the process');
      const t = await h.target('scratch-filler');
      // One big file meets RLIMIT_FSIZE (EFBIG) or the tmpfs size (ENOSPC), whichever comes first; many small ones meet the tmpfs size.
      const big = await h.call(t, 'one_file', { mib: 256 });
      expect(big).toMatchObject({ status: 'completed', output: { refused: expect.stringMatching(/^(EFBIG|ENOSPC)$/) } });
      expect((big.output as { writtenMiB: number }).writtenMiB).toBeLessThanOrEqual(PLUGIN_SCRATCH_QUOTA_BYTES / 1024 / 1024);
      await h.host.restart('scratch-filler');
      const many = await h.call(t, 'many_files', { files: 256, mibEach: 1 });
      expect(many).toMatchObject({ status: 'completed', output: { refused: 'ENOSPC' } });
      expect((many.output as { writtenMiB: number }).writtenMiB).toBeLessThanOrEqual(PLUGIN_SCRATCH_QUOTA_BYTES / 1024 / 1024);
      await h.host.restart('scratch-filler');
      expect(await h.call(t, 'mark')).toMatchObject({ status: 'completed', output: { scratch: '/scratch' } });
      expect(await h.call(t, 'look')).toMatchObject({ output: { kept: true } });
      // On the host's disk: nothing of it, ever.
      expect((await scratchFiles(h.dir, 'scratch-filler')).filter((f) => f.endsWith('.bin') || f.endsWith('kept-secret.txt'))).toEqual([]);
      await h.host.restart('scratch-filler');
      expect(await h.call(t, 'look')).toMatchObject({ status: 'completed', output: { kept: false, files: [] } });
    }, 30_000);
  }

  it('without bubblewrap: one file past the quota is refused (EFBIG, RLIMIT_FSIZE), many smaller ones get the plugin stopped by the host, and the folder is removed when the process stops', async () => {
    h = await pluginHarness({ fixtures: ['scratch-filler'], bwrap: 'off', supervisor: FAST });
    expect(h.host.sandbox.scratch).toBe('folder on disk, removed when the process stops');
    const t = await h.target('scratch-filler');
    const big = await h.call(t, 'one_file', { mib: 256 });
    expect(big).toMatchObject({ status: 'completed', output: { refused: 'EFBIG' } });
    expect((big.output as { writtenMiB: number }).writtenMiB).toBeLessThanOrEqual(PLUGIN_SCRATCH_QUOTA_BYTES / 1024 / 1024);
    const many = await h.call(t, 'many_files', { files: 256, mibEach: 1 });
    expect(many.status).toBe('outcome_unknown');
    expect(await until(() => statusOf('scratch-filler').lastError)).toMatch(/it wrote more than its scratch quota of 67108864 bytes/);
    // Gone from the disk once the process is.
    await until(async () => (await scratchFiles(h!.dir, 'scratch-filler')).length === 0);
    expect(await h.call(t, 'mark')).toMatchObject({ status: 'completed' });
    expect((await scratchFiles(h.dir, 'scratch-filler')).some((f) => f.endsWith('kept-secret.txt'))).toBe(true);
    await h.host.restart('scratch-filler');
    expect((await scratchFiles(h.dir, 'scratch-filler')).filter((f) => f.endsWith('kept-secret.txt'))).toEqual([]);
    expect(await h.call(t, 'look')).toMatchObject({ status: 'completed', output: { kept: false } });
  }, 30_000);
});

describe('capabilities and uid', () => {
  if (HAS_BWRAP) {
    it(`under bubblewrap the plugin is nobody with no capabilities, cannot bind port 1023 nor become root (the gateway runs as ${IS_ROOT ? 'root' : 'a normal user'})`, async () => {
      h = await pluginHarness({ fixtures: ['cap-probe'], bwrap: 'auto', supervisor: FAST });
      expect(h.host.sandbox).toMatchObject({ identity: 'nobody, in a user namespace of its own, no capabilities', noCapabilities: true });
      const t = await h.target('cap-probe');
      const probe = await h.call(t, 'probe');
      expect(probe.status).toBe('completed');
      expect(probe.output).toMatchObject({ myUid: 65534, myGid: 65534, bind1023: 'failed: EACCES', setuid: expect.stringMatching(/^failed: /) });
      // Node's permission model keeps /proc from the plugin itself; the host reads its status instead.
      expect(capEffOf(nodeProcessOf(statusOf('cap-probe').pid!))).toBe('0000000000000000');
    });
  }

  it('without bubblewrap the sandbox level says who the plugin runs as, and the probe agrees', async () => {
    h = await pluginHarness({ fixtures: ['cap-probe'], bwrap: 'off', supervisor: FAST });
    const t = await h.target('cap-probe');
    const probe = (await h.call(t, 'probe')).output as { myUid: number; bind1023: string };
    const capEff = capEffOf(nodeProcessOf(statusOf('cap-probe').pid!));
    if (IS_ROOT) {
      // The truth, said in `aip plugin list` and at install: run the gateway as a normal user, or get bubblewrap.
      expect(h.host.sandbox).toMatchObject({ identity: 'root, with every capability (no bubblewrap)', noCapabilities: false });
      expect(probe).toMatchObject({ myUid: 0, bind1023: 'SUCCEEDED' });
      expect(capEff).not.toBe('0000000000000000');
    } else {
      expect(h.host.sandbox).toMatchObject({ identity: "the gateway's user, no capabilities", noCapabilities: true });
      expect(probe).toMatchObject({ bind1023: 'failed: EACCES' });
      expect(capEff).toBe('0000000000000000');
    }
  });
});

/** A real gateway process with fixture plugins (fixtures/gateway-fixture-plugins.mjs), optionally run as another uid. */
async function fixtureGateway(bwrap: 'auto' | 'off', fixtures: string[], asUid?: number) {
  const dir = await mkdtemp(join(tmpdir(), 'aip-limits-gw-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  if (asUid !== undefined) {
    await chown(dir, asUid, asUid);
    letOthersTraverseCheckout();
  }
  const port = await freePort();
  const script = fileURLToPath(new URL('./fixtures/gateway-fixture-plugins.mjs', import.meta.url));
  const argv = [script, join(dir, 'data'), String(port), bwrap, ...fixtures];
  const [command, args] = asUid === undefined ? [process.execPath, argv] : ['/usr/bin/setpriv', ['--reuid', String(asUid), '--regid', String(asUid), '--clear-groups', process.execPath, ...argv]];
  let stderr = '';
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] }) as ChildProcessByStdio<Writable, Readable, Readable>;
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  cleanups.push(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  });
  const ready = JSON.parse((await waitForLine(child, /READY (.*)\n/, 30_000))[1]!) as { pid: number };
  const call = async (id: string, action: string, input: Record<string, unknown> = {}) => {
    const answer = waitForLine(child, /RESULT (.*)\n/, 30_000);
    child.stdin.write(`call ${id} ${action} ${JSON.stringify(input)}\n`);
    return JSON.parse((await answer)[1]!) as { status: string; output: Record<string, any> };
  };
  const audit = async (event: string) => {
    const answer = waitForLine(child, /AUDIT (.*)\n/, 10_000);
    child.stdin.write(`audit ${event}\n`);
    return JSON.parse((await answer)[1]!) as Array<{ event: string; payload: Record<string, unknown> }>;
  };
  return { pid: ready.pid, call, audit, log: () => stderr };
}

describe('a gateway run as a normal user (nobody, via setpriv)', () => {
  const canSetpriv = IS_ROOT;
  for (const bwrap of MODES) {
    it.runIf(canSetpriv)(`gives its plugins no capabilities and no port below 1024 (bwrap ${bwrap})`, async () => {
      const gw = await fixtureGateway(bwrap, ['cap-probe'], 65534);
      const probe = await gw.call('cap-probe', 'probe');
      expect(probe.status).toBe('completed');
      expect(probe.output).toMatchObject({ myUid: 65534, myGid: 65534, bind1023: 'failed: EACCES', setuid: expect.stringMatching(/^failed: /) });
      // The gateway itself runs as nobody, and so every process under it (read by the host from /proc).
      expect(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${gw.pid}/status`, 'utf8'))![1]).toBe('65534');
      expect(capEffOf(nodeProcessOf(gw.pid))).toBe('0000000000000000');
    }, 40_000);
  }
});

describe('signals to the gateway', () => {
  if (HAS_BWRAP) {
    it('under bubblewrap a plugin cannot signal the gateway: its pid is not in the plugin\'s pid namespace', async () => {
      const gw = await fixtureGateway('auto', ['signaller']);
      const result = await gw.call('signaller', 'stop_gateway', { pid: gw.pid, ms: 800 });
      expect(result.status).toBe('completed');
      expect(result.output.stopped[String(gw.pid)]).toBe('failed: ESRCH');
      // Its parent in there is bubblewrap's init, not the gateway.
      expect(result.output.ppid).not.toBe(gw.pid);
      await new Promise((r) => setTimeout(r, 300));
      expect(gw.log()).not.toMatch(/the gateway was stopped/);
    }, 40_000);
  }

  it('without bubblewrap a plugin can stop the gateway with SIGSTOP; the gateway says so in its log and its audit once it runs again', async () => {
    const gw = await fixtureGateway('off', ['signaller']);
    const result = await gw.call('signaller', 'stop_gateway', { pid: gw.pid, ms: 1_000 });
    expect(result.status).toBe('completed');
    expect(result.output.stopped[String(gw.pid)]).toBe('SUCCEEDED');
    const said = await until(() => /WARNING: the gateway was stopped by a signal \(SIGSTOP or SIGTSTP\) and continued for about (\d+) ms/.exec(gw.log()));
    expect(Number(said![1])).toBeGreaterThanOrEqual(500);
    expect(gw.log()).toMatch(/requireBwrapForThirdParty/);
    const entries = await until(() => gw.audit('gateway.stalled').then((list) => (list.length > 0 ? list : null)));
    expect(entries![0]!.payload).toMatchObject({ kind: 'signalled', pluginsCanSignalGateway: true });
  }, 40_000);
});
