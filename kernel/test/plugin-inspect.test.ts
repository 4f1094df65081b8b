// Inspection runs a package's code before anyone consented to it (issue 10,
// item 8). It runs in the strictest sandbox there is: its verified bytes, no
// endpoint, no network under bubblewrap, no scratch that outlives it, a short
// time limit, then SIGKILL; and the consent screen says what the plugin will
// be able to reach once approved. A hostile package tries its worst while
// being inspected, and nothing changes.
import { afterEach, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, lstat, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createInvocationScopes } from '../src/invocations/index.js';
import { createKernel, type Kernel } from '../src/kernel.js';
import { createPluginHost, detectBwrap, INSPECT_LIMITS, type BwrapMode } from '../src/plugin-host/index.js';
import { httpApp, jsonOf, TestClient } from './helpers/http.js';
import { FIXTURES } from './helpers/plugins.js';
import { tempDir, PASSWORD } from './helpers/temp.js';

const MODES: BwrapMode[] = detectBwrap() !== null ? ['off', 'auto'] : ['off'];
const label = (bwrap: BwrapMode) => (bwrap === 'off' ? 'Node permissions alone' : 'Node permissions + bubblewrap');

let kernel: Kernel | undefined;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await kernel?.close();
  kernel = undefined;
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function gateway(bwrap: BwrapMode) {
  const { dir, cleanup } = await tempDir('aip-inspect-');
  cleanups.push(cleanup);
  const scopes = createInvocationScopes();
  const host = await createPluginHost({ dataDir: dir, scopes, clock: { now: () => Date.now() }, log: () => undefined, kernelInfo: { name: 't', version: '0' }, bwrap, builtinRoot: FIXTURES, builtins: [], builtinPins: { format: 1, builtins: {} } });
  kernel = createKernel({ dataDir: dir, plugins: host, scopes, log: () => undefined });
  const client = new TestClient(httpApp(kernel).app);
  await client.get('/api/status');
  await client.json('POST', '/api/databases', { name: 'main', password: PASSWORD }, 201);
  return { dir, client, kernel };
}

/** The inspect-prober package, told what to do by its probe.json. */
async function proberPackage(root: string, probe: Record<string, unknown>): Promise<string> {
  const pkg = join(root, `prober-src-${randomBytes(3).toString('hex')}`);
  await cp(join(FIXTURES, 'inspect-prober'), pkg, { recursive: true, filter: (p) => !p.endsWith('.ts') });
  await writeFile(join(pkg, 'probe.json'), JSON.stringify(probe));
  return pkg;
}

/** Every file under `dir` with its SHA-256, and every folder: what a plugin could have added to, changed or removed. */
async function snapshot(dir: string, skip: (rel: string) => boolean = () => false): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const walk = async (current: string) => {
    for (const name of await readdir(current).catch(() => [])) {
      const full = join(current, name);
      const rel = relative(dir, full);
      if (skip(rel)) continue;
      const info = await lstat(full);
      if (info.isDirectory()) {
        found.set(rel, 'dir');
        await walk(full);
      } else found.set(rel, info.isFile() ? createHash('sha256').update(await readFile(full)).digest('hex') : 'other');
    }
  };
  await walk(dir);
  return found;
}

/** Processes whose command line carries the marker (the prober sets its title to it). */
async function processesWith(marker: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(marker)) pids.push(Number(name));
  }
  return pids;
}

async function untilNone(marker: string, timeoutMs = 2_000): Promise<number[]> {
  const started = Date.now();
  let left = await processesWith(marker);
  while (left.length > 0 && Date.now() - started < timeoutMs) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    left = await processesWith(marker);
  }
  return left;
}

/** A loopback listener that counts who connected to it. */
async function listener(): Promise<{ server: Server; port: number; connections: string[] }> {
  const connections: string[] = [];
  const server = createServer((socket) => {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => connections.push(chunk.trim()));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(() => resolve())));
  return { server, port: (server.address() as { port: number }).port, connections };
}

describe('inspecting a package before consent', () => {
  for (const bwrap of MODES) {
    it(`changes nothing: a hostile package writes nothing outside its throwaway scratch, reaches no network under bubblewrap, and is killed as soon as it answered (${label(bwrap)})`, async () => {
      const { dir, client, kernel: k } = await gateway(bwrap);
      const { dir: outside, cleanup } = await tempDir('aip-inspect-source-');
      cleanups.push(cleanup);
      const net = await listener();
      const marker = `aip-inspect-probe-${randomBytes(4).toString('hex')}`;
      const planted = join(tmpdir(), `aip-inspect-planted-${marker}`);
      const probe = {
        mode: 'probe',
        marker,
        writes: [join(dir, 'planted'), join(dir, 'plugins', 'planted'), join(dir, 'plugin-scratch', 'planted'), join(outside, 'planted'), planted],
        reads: [k.vault.fileFor('main'), `/proc/${process.pid}/environ`, '/etc/hostname'],
        lists: [dir, join(dir, 'plugins', '.staging'), '/run/ep'],
        connect: [
          { host: '127.0.0.1', port: net.port },
          { host: '127.0.0.1', port: 6379 },
        ],
        lateConnect: { host: '127.0.0.1', port: net.port, delayMs: 300 },
      };
      const pkg = await proberPackage(outside, probe);
      const outsideBefore = await snapshot(outside);
      // The staging folder is the inspection's own (the staged copy waits there for consent); everything else must stay as it was.
      const notStaging = (rel: string) => rel === 'plugins' || rel.startsWith(join('plugins', '.staging'));
      const before = await snapshot(dir, notStaging);

      const inspected = await client.json('POST', '/api/databases/main/plugins/inspect', { source: pkg });
      const results = JSON.parse(inspected.plugin.description) as Record<string, string>;
      for (const path of probe.writes) expect([path, results[`write ${path}`]]).toEqual([path, expect.stringMatching(/^failed: /)]);
      for (const path of [...probe.reads, ...probe.lists]) expect([path, results[`read ${path}`] ?? results[`list ${path}`]]).toEqual([path, expect.stringMatching(/^failed: /)]);
      if (bwrap === 'auto') {
        // A throwaway tmpfs: small writes work, filling it does not, and it is gone with the process.
        expect(results['write scratch']).toMatch(/^SUCCEEDED/);
        expect(results['fill scratch']).toBe('failed: ENOSPC');
        expect(results.scratch).toBe('/scratch');
        expect(results[`connect 127.0.0.1:${net.port}`]).toMatch(/^failed: /);
        expect(results['connect 127.0.0.1:6379']).toMatch(/^failed: /);
      } else {
        // No size-limited place exists without bubblewrap: nothing is writable at all.
        expect(results['write scratch']).toBe('failed: ERR_ACCESS_DENIED');
        expect(results['fill scratch']).toBe('failed: ERR_ACCESS_DENIED');
      }
      expect(results['fill tmp']).toMatch(/^failed: /);
      expect(results.spawn).toBe('failed: ERR_ACCESS_DENIED');

      await new Promise((resolve) => setTimeout(resolve, probe.lateConnect.delayMs + 400));
      // Under bubblewrap nothing reached the network; without it, the host network was reached while it ran (the consent screen says so), but never after it answered.
      expect(net.connections).toEqual(bwrap === 'auto' ? [] : ['inspect-prober was here']);
      expect(await untilNone(marker)).toEqual([]);
      expect(existsSync(planted)).toBe(false);
      expect(existsSync('/tmp/aip-inspect-big')).toBe(false);
      expect(await snapshot(outside)).toEqual(outsideBefore);
      const after = await snapshot(dir, notStaging);
      // plugin-run holds the inspection's private folders only while it runs.
      expect(await readdir(join(dir, 'plugin-run')).catch(() => [])).toEqual([]);
      after.delete('plugin-run');
      before.delete('plugin-run');
      // The database files are the kernel's own (its session and inspection are not the plugin's doing); the plugin could not even read them.
      const mine = (rel: string) => !rel.startsWith('databases') && !rel.startsWith('heads');
      expect([...after].filter(([rel]) => mine(rel))).toEqual([...before].filter(([rel]) => mine(rel)));
      expect(existsSync(join(dir, 'plugin-scratch'))).toBe(false);
      // What it would be approved as is exactly the package it was given.
      const staged = await readdir(join(dir, 'plugins', '.staging'));
      expect(staged).toHaveLength(1);
      expect(await snapshot(join(dir, 'plugins', '.staging', staged[0]!, 'package'))).toEqual(await snapshot(pkg));
    });

    it(`installs nothing when the staged package changed after it was inspected: consent was given to the bytes shown (${label(bwrap)})`, async () => {
      const { dir, client, kernel: k } = await gateway(bwrap);
      const pkg = join(dir, 'echo-src');
      await cp(join(FIXTURES, 'echo'), pkg, { recursive: true, filter: (p) => !p.endsWith('.ts') });
      const inspected = await client.json('POST', '/api/databases/main/plugins/inspect', { source: pkg });
      const staged = await readdir(join(dir, 'plugins', '.staging'));
      await writeFile(join(dir, 'plugins', '.staging', staged[0]!, 'package', 'dist', 'plugin.mjs'), '// swapped while the operator read the consent screen\n');
      const refused = await client.post('/api/databases/main/plugins', { inspection: inspected.inspection, integrity: inspected.integrity });
      expect(refused.status).toBe(409);
      expect((await jsonOf(refused)).error.message).toMatch(/The staged package changed on disk after it was inspected; nothing was installed\. Inspect it again\./);
      expect(existsSync(join(dir, 'plugins', 'echo-fixture'))).toBe(false);
      expect(k.workspace('main').pluginApprovals.get('echo-fixture')).toBeUndefined();
      expect(await readdir(join(dir, 'plugins', '.staging'))).toEqual([]);
    });

    for (const mode of ['hang', 'spin'] as const) {
      it(`a package that ${mode === 'hang' ? 'never answers and ignores SIGTERM' : 'blocks its event loop'} is killed within the inspection's limit, and nothing of it keeps running (${label(bwrap)})`, async () => {
        const { dir, client } = await gateway(bwrap);
        const marker = `aip-inspect-${mode}-${randomBytes(4).toString('hex')}`;
        const pkg = await proberPackage(dir, { mode, marker });
        const started = Date.now();
        const refused = await client.post('/api/databases/main/plugins/inspect', { source: pkg });
        const tookMs = Date.now() - started;
        expect(refused.status).toBe(400);
        expect((await jsonOf(refused)).error.message).toMatch(new RegExp(`The plugin did not start: it did not complete the handshake within ${INSPECT_LIMITS.timeoutMs} ms`));
        expect(tookMs).toBeGreaterThanOrEqual(INSPECT_LIMITS.timeoutMs - 100);
        expect(tookMs).toBeLessThan(INSPECT_LIMITS.timeoutMs + 3_000);
        expect(await untilNone(marker)).toEqual([]);
        // Nothing of it is kept: no staged copy, no private folder.
        expect(await readdir(join(dir, 'plugins', '.staging'))).toEqual([]);
        expect(await readdir(join(dir, 'plugin-run')).catch(() => [])).toEqual([]);
      }, 20_000);
    }
  }

  it('says on the consent screen what the plugin will reach once approved, and how the inspection ran it', async () => {
    for (const bwrap of MODES) {
      const { client } = await gateway(bwrap);
      const pkg = join(tmpdir(), `aip-inspect-echo-${randomBytes(3).toString('hex')}`);
      cleanups.push(() => import('node:fs/promises').then(({ rm }) => rm(pkg, { recursive: true, force: true })));
      await cp(join(FIXTURES, 'echo'), pkg, { recursive: true, filter: (p) => !p.endsWith('.ts') });
      const inspected = await client.json('POST', '/api/databases/main/plugins/inspect', { source: pkg });
      const isolated = bwrap === 'auto';
      expect([bwrap, inspected.reach]).toEqual([
        bwrap,
        {
          sandbox: isolated ? 'bwrap+node-permission' : 'node-permission',
          network: isolated ? 'none (endpoint only)' : 'host network (no bubblewrap)',
          networkIsolated: isolated,
          files: expect.stringMatching(/^reads its own approved package/),
          // What the host enforces at this level (issue 10 items 6 and 7): a quota at both, never kept after the process.
          scratch: isolated
            ? { path: '/scratch (a tmpfs in memory)', persists: false, quotaBytes: 64 * 1024 * 1024, lives: 'tmpfs, gone with the process' }
            : { path: expect.stringMatching(/plugin-scratch\/echo-fixture$/), persists: false, quotaBytes: 64 * 1024 * 1024, lives: 'folder on disk, removed when the process stops' },
          identity: isolated ? 'nobody, in a user namespace of its own, no capabilities' : process.getuid?.() === 0 ? 'root, with every capability (no bubblewrap)' : "the gateway's user, no capabilities",
          memoryLimitBytes: 1536 * 1024 * 1024,
          processes: 'none: it cannot start child processes or worker threads',
          otherProcesses: isolated ? expect.stringMatching(/own pid namespace/) : expect.stringMatching(/can see and signal processes/),
        },
      ]);
      expect([bwrap, inspected.inspectedWith]).toEqual([
        bwrap,
        {
          sandbox: inspected.reach.sandbox,
          network: inspected.reach.network,
          networkIsolated: isolated,
          scratch: isolated ? 'a throwaway tmpfs of 1 MiB, gone with the process' : 'none: every write was refused',
          endpoint: 'none',
          timeoutMs: INSPECT_LIMITS.timeoutMs,
        },
      ]);
      await kernel!.close();
      kernel = undefined;
    }
  });
});
