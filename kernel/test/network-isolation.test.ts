import { afterEach, describe, expect, it } from 'vitest';
import { readdir } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { basename, join } from 'node:path';
import { createHttpApp, listenOnLoopback, type RunningServer } from '../src/http/index.js';
import { httpDepsFromKernel } from '../src/wiring.js';
import { detectBwrap, sandboxLevel } from '../src/plugin-host/index.js';
import { startGateway, type Gateway } from '../src/main.js';
import { pluginHarness, type PluginHarness } from './helpers/plugins.js';
import { aip, freePort } from './helpers/cli.js';
import { httpApp, TestClient } from './helpers/http.js';
import { PASSWORD, tempDir } from './helpers/temp.js';

const HAS_BWRAP = detectBwrap() !== null;
const ISOLATED = sandboxLevel('auto').networkIsolated;
const FAST = { idleMs: 60_000, cancelGraceMs: 500, handshakeTimeoutMs: 5_000, restartBudget: { crashes: 3, windowMs: 60_000 } };

let h: PluginHarness | undefined;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await h?.cleanup();
  h = undefined;
});

/** A real loopback service that names itself on each connection and counts them. */
async function service(name: string): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.write(`I am ${name}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as { port: number }).port, connections: () => connections };
}

/** The gateway's own HTTP server on the harness's kernel, on a loopback port. */
async function gatewayServer(harness: PluginHarness): Promise<RunningServer> {
  let port = 0;
  const { app } = createHttpApp({ deps: httpDepsFromKernel(harness.kernel), getPort: () => port, version: 'test' });
  const server = await listenOnLoopback(app.fetch, { host: '127.0.0.1', port: 0 });
  port = server.port;
  cleanups.push(() => server.close());
  return server;
}

async function probeUnder(bwrap: 'auto' | 'off') {
  h = await pluginHarness({ fixtures: ['netprobe'], bwrap, supervisor: FAST });
  const gateway = await gatewayServer(h);
  const other = await service('another loopback service');
  const t = await h.target('netprobe', { config: { host: '127.0.0.1', port: 6379 } });
  const request = await h.call(t, 'probe', { loopbackPorts: { redis: 6379, gateway: gateway.port, other: other.port }, send: 'PING\r\n' });
  expect(request.status).toBe('completed');
  return { ...(request.output as { endpoint: Record<string, unknown>; results: Record<string, string> }), other };
}

describe('plugins have no network of their own (invariant 3)', () => {
  it.skipIf(!ISOLATED)('under bubblewrap a plugin cannot connect to Redis, the gateway, another loopback port or any other address, while its real action through its endpoint works', async () => {
    const { endpoint, results, other } = await probeUnder('auto');
    expect(endpoint).toEqual({ type: 'unix', path: expect.stringMatching(/^\/run\/ep\/\d+\.sock$/), transport: 'direct', serverName: '127.0.0.1' });
    for (const key of ['redis', 'gateway', 'other']) expect([key, results[key]]).toEqual([key, 'failed: ECONNREFUSED']);
    expect(results.otherAddress).toMatch(/^failed: (ENETUNREACH|EHOSTUNREACH|timeout)$/);
    expect(other.connections()).toBe(0);
    // The endpoint reaches the real Redis (the kernel dialled the target's 127.0.0.1:6379).
    expect(results.endpoint).toBe('SUCCEEDED: +PONG');
    expect(h!.host.list()[0]!.status.sandbox).toMatchObject({ bwrap: true, network: 'none (endpoint only)', networkIsolated: true });
  });

  it('without bubblewrap the plugin can reach the network itself, and the status says so', async () => {
    const { endpoint, results, other } = await probeUnder('off');
    expect(endpoint).toEqual({ type: 'tcp', host: '127.0.0.1', port: expect.any(Number), transport: 'direct', serverName: '127.0.0.1' });
    expect(results.redis).toBe('SUCCEEDED: +PONG');
    expect(results.gateway).toMatch(/^SUCCEEDED: HTTP\/1\.1 400/);
    expect(results.other).toBe('SUCCEEDED: I am another loopback service');
    expect(other.connections()).toBe(1);
    expect(results.endpoint).toBe('SUCCEEDED: +PONG');
    expect(h!.host.list()[0]!.status.sandbox).toMatchObject({ bwrap: false, network: 'host network (no bubblewrap)', networkIsolated: false });
  });
});

describe('endpoint lifecycle, seen from a real plugin', () => {
  const modes = HAS_BWRAP ? (['auto', 'off'] as const) : (['off'] as const);
  for (const bwrap of modes) {
    const label = bwrap === 'auto' ? 'unix socket under bubblewrap' : 'loopback TCP';

    it(`the endpoint of target A reaches A only, and not while only B's invocation runs (${label})`, async () => {
      h = await pluginHarness({ fixtures: ['netprobe'], bwrap, supervisor: FAST });
      const a = await service('A');
      const b = await service('B');
      const ta = await h.target('netprobe', { config: { host: '127.0.0.1', port: a.port } });
      const tb = await h.target('netprobe', { config: { host: '127.0.0.1', port: b.port } });
      const first = (await h.call(ta, 'banner')).output as { endpoint: unknown; line: string };
      expect(first.line).toBe('SUCCEEDED: I am A');
      const second = (await h.call(tb, 'banner')).output as { endpoint: unknown; line: string };
      expect(second.line).toBe('SUCCEEDED: I am B');
      expect(second.endpoint).not.toEqual(first.endpoint);
      // During B's invocation, A's endpoint is refused: nothing reaches A. B's profile runs in a process of its
      // own (plugin-host/partitions.ts): under bubblewrap A's socket is not even in its sandbox.
      const crossed = (await h.call(tb, 'banner', { endpoint: first.endpoint })).output as { line: string };
      expect(crossed.line).toMatch(bwrap === 'auto' ? /^failed: ENOENT/ : /^failed: (ECONNRESET|EPIPE|closed)/);
      expect([a.connections(), b.connections()]).toEqual([1, 1]);
      // The next invocation of A gets the same endpoint back (pooled connections stay usable).
      expect(((await h.call(ta, 'banner')).output as { endpoint: unknown }).endpoint).toEqual(first.endpoint);
    });

    it(`after the invocation ended a new connection to its endpoint is refused, while one opened during it goes on (${label})`, async () => {
      h = await pluginHarness({ fixtures: ['netprobe'], bwrap, supervisor: FAST });
      const t = await h.target('netprobe', { config: { host: '127.0.0.1', port: 6379 } });
      expect((await h.call(t, 'keep', { retryAfterMs: 300 })).status).toBe('completed');
      // Between invocations (the plugin tries on its own, 300 ms after the call ended): Redis's endpoint accepts
      // nothing new, and the kept connection still works. (A call on another profile runs in another process.)
      await new Promise((resolve) => setTimeout(resolve, 600));
      const later = (await h.call(t, 'use_kept')).output as { fresh: string; reused: string };
      expect(later.fresh).toMatch(/^failed: (ECONNRESET|EPIPE|closed)/);
      expect(later.reused).toBe('SUCCEEDED: +PONG');
      expect(h.logs.join('\n')).toMatch(/refused a connection to the netprobe endpoint of target \S+ \(profile \S+\): no invocation for it is running/);
    });
  }

  it.skipIf(!HAS_BWRAP)("an operator's restart closes the plugin's endpoints and removes their sockets; the next call gets a fresh endpoint", async () => {
    h = await pluginHarness({ fixtures: ['netprobe'], supervisor: FAST });
    const t = await h.target('netprobe', { config: { host: '127.0.0.1', port: 6379 } });
    const before = ((await h.call(t, 'keep')).output as { endpoint: { path: string } }).endpoint;
    const root = join(h.dir, 'plugin-endpoints');
    const [folder] = await readdir(root);
    expect(await readdir(join(root, folder!))).toEqual([basename(before.path)]);
    await h.host.restart('netprobe');
    expect(await readdir(root)).toEqual([]);
    const after = ((await h.call(t, 'banner')).output as { endpoint: unknown; line: string });
    expect(after.line).toBe('SUCCEEDED: +PONG');
    expect(await readdir(root)).toHaveLength(1);
    expect(await readdir(root)).not.toContain(folder);
  });

  it('a target the kernel cannot reach: the plugin sees its connection closed, and the gateway log says why', async () => {
    h = await pluginHarness({ fixtures: ['netprobe'], supervisor: FAST });
    const port = await freePort();
    const t = await h.target('netprobe', { config: { host: '127.0.0.1', port } });
    const output = (await h.call(t, 'banner')).output as { line: string };
    expect(output.line).toMatch(/^failed: (ECONNRESET|EPIPE|closed)/);
    expect(h.logs.join('\n')).toMatch(new RegExp(`could not connect to 127\\.0\\.0\\.1:${port}: connect ECONNREFUSED`));
  });
});

describe('network isolation is reported per plugin', () => {
  it('the plugins REST route reports each plugin’s network, and the gateway’s', async () => {
    for (const bwrap of HAS_BWRAP ? (['auto', 'off'] as const) : (['off'] as const)) {
      h = await pluginHarness({ fixtures: ['netprobe'], bwrap, supervisor: FAST });
      const client = new TestClient(httpApp(h.kernel).app);
      await client.get('/api/status');
      await client.json('POST', '/api/databases/main/session', { password: PASSWORD });
      const listed = await client.json('GET', '/api/databases/main/plugins');
      const expected = bwrap === 'auto' && ISOLATED ? { network: 'none (endpoint only)', networkIsolated: true } : { network: 'host network (no bubblewrap)', networkIsolated: false };
      expect([bwrap, listed.sandbox]).toEqual([bwrap, expect.objectContaining(expected)]);
      expect([bwrap, listed.plugins[0].status.sandbox]).toEqual([bwrap, expect.objectContaining(expected)]);
      await h.cleanup();
      h = undefined;
    }
  });

  for (const bwrap of HAS_BWRAP ? (['auto', 'off'] as const) : (['off'] as const)) {
    it(`aip plugin list shows the network of each connector, and says it plainly when there is no isolation (bwrap ${bwrap})`, async () => {
      const { dir, cleanup } = await tempDir('aip-net-list-');
      cleanups.push(cleanup);
      const gateway: Gateway = await startGateway({ dataDir: dir, port: 0, bwrap, log: () => undefined });
      cleanups.push(() => gateway.close());
      await gateway.kernel.createDatabase('main', PASSWORD);
      await gateway.kernel.unlock('main', PASSWORD, 'operator:test');
      const listed = await aip(['plugin', 'list', '--url', gateway.url, '--password-stdin'], { stdin: `${PASSWORD}\n` });
      expect(listed.code).toBe(0);
      expect(listed.stdout).toMatch(/\bNETWORK\b/);
      if (bwrap === 'auto' && ISOLATED) {
        expect(listed.stdout).toMatch(/^redis .*none \(endpoint only\)/m);
        expect(listed.stderr).not.toMatch(/no network isolation/);
      } else {
        expect(listed.stdout).toMatch(/^redis .*host network \(no bubblewrap\)/m);
        expect(listed.stderr).toMatch(/warning: connectors have no network isolation here \(host network \(no bubblewrap\)\): they can connect to anything this machine can/);
      }
      const json = JSON.parse((await aip(['plugin', 'list', '--json', '--url', gateway.url, '--password-stdin'], { stdin: `${PASSWORD}\n` })).stdout);
      expect(json.plugins.find((p: { id: string }) => p.id === 'redis').status.sandbox.network).toBe(bwrap === 'auto' && ISOLATED ? 'none (endpoint only)' : 'host network (no bubblewrap)');
    });
  }
});
