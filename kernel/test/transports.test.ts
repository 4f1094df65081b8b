import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { basename, join } from 'node:path';
import type { Endpoint } from '@aipermission/plugin-sdk/protocol';
import { createTransports, type EndpointRequest, type Transports } from '../src/transports/index.js';
import { tempDir } from './helpers/temp.js';

/** A real TCP service that names itself on every connection and echoes what it gets after that. */
async function service(name: string): Promise<{ port: number; connections: () => number; server: Server; close(): Promise<void> }> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.write(`I am ${name}\n`);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    connections: () => connections,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

async function freePort(): Promise<number> {
  const s = await service('nobody');
  await s.close();
  return s.port;
}

/** What a plugin sees when it connects to its endpoint: the first line, or how the connection ended. */
function dial(endpoint: Endpoint, hostDir?: string): { socket: Socket; firstLine: Promise<string> } {
  const socket = endpoint.type === 'unix' ? connect({ path: join(hostDir!, basename(endpoint.path)) }) : connect({ host: endpoint.host, port: endpoint.port });
  const firstLine = new Promise<string>((resolve) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (text.includes('\n')) resolve(text.slice(0, text.indexOf('\n')));
    });
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(`error ${error.code}`));
    socket.on('close', () => resolve(text === '' ? 'closed' : text));
  });
  return { socket, firstLine };
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function transports(options: { idleMs?: number; dialTimeoutMs?: number; maxConnectionsPerEndpoint?: number } = {}): { t: Transports; logs: string[] } {
  const logs: string[] = [];
  const t = createTransports({ log: (line) => logs.push(line), ...options });
  cleanups.push(() => t.closeAll());
  return { t, logs };
}

async function started<T extends { close(): Promise<void> }>(thing: Promise<T>): Promise<T> {
  const value = await thing;
  cleanups.push(() => value.close());
  return value;
}

const request = (port: number, over: Partial<EndpointRequest> = {}): EndpointRequest => ({
  owner: 'plugin-a',
  connectorId: 'redis',
  targetId: 'tgt_a',
  profileId: 'pro_1',
  host: '127.0.0.1',
  port,
  serverName: 'cache.internal',
  where: 'loopback',
  ...over,
});

describe('endpoints the kernel opens per invocation', () => {
  it("relays a connection made during the invocation to the target's configured address, and the endpoint of target A never reaches target B", async () => {
    const a = await started(service('A'));
    const b = await started(service('B'));
    const { t } = transports();
    const holdA = await t.openEndpoint(request(a.port));
    const holdB = await t.openEndpoint(request(b.port, { targetId: 'tgt_b' }));
    expect(holdA.endpoint).toEqual({ type: 'tcp', host: '127.0.0.1', port: expect.any(Number), transport: 'direct', serverName: 'cache.internal' });
    expect(holdA.endpoint).not.toEqual(holdB.endpoint);
    expect(await dial(holdA.endpoint).firstLine).toBe('I am A');
    expect(await dial(holdB.endpoint).firstLine).toBe('I am B');
    expect(await dial(holdA.endpoint).firstLine).toBe('I am A');
    expect([a.connections(), b.connections()]).toEqual([2, 1]);
    holdA.close();
    holdB.close();
  });

  it('refuses a connection attempt after the invocation ended, without dialling the target', async () => {
    const a = await started(service('A'));
    const { t, logs } = transports();
    const hold = await t.openEndpoint(request(a.port));
    expect(await dial(hold.endpoint).firstLine).toBe('I am A');
    hold.close();
    expect(await dial(hold.endpoint).firstLine).toBe('error ECONNRESET');
    expect(a.connections()).toBe(1);
    expect(logs.join('\n')).toMatch(/refused a connection to the redis endpoint of target tgt_a \(profile pro_1\): no invocation for it is running/);
  });

  it('keeps relaying a connection made during the invocation after it ended (pooling), until a side closes it', async () => {
    const a = await started(service('A'));
    const { t } = transports();
    const hold = await t.openEndpoint(request(a.port));
    const { socket, firstLine } = dial(hold.endpoint);
    expect(await firstLine).toBe('I am A');
    hold.close();
    const echoed = new Promise<string>((resolve) => socket.once('data', (chunk) => resolve(String(chunk))));
    socket.write('still here\n');
    expect(await echoed).toBe('still here\n');
    expect(t.stats()).toMatchObject({ endpoints: 1, holds: 0, relayed: 1 });
    socket.end();
    await new Promise((resolve) => socket.once('close', resolve));
    await until(() => t.stats().relayed === 0);
  });

  it('hands the same endpoint to every invocation of one target and profile (so pooled connections are reused), another to another profile', async () => {
    const a = await started(service('A'));
    const { t } = transports();
    const first = await t.openEndpoint(request(a.port));
    first.close();
    const second = await t.openEndpoint(request(a.port));
    const otherProfile = await t.openEndpoint(request(a.port, { profileId: 'pro_2' }));
    const otherOwner = await t.openEndpoint(request(a.port, { owner: 'plugin-b' }));
    expect(second.endpoint).toEqual(first.endpoint);
    expect(otherProfile.endpoint).not.toEqual(first.endpoint);
    expect(otherOwner.endpoint).not.toEqual(first.endpoint);
    // The other profile's invocation does not open this one's endpoint.
    second.close();
    expect(await dial(first.endpoint).firstLine).toBe('error ECONNRESET');
    expect(await dial(otherProfile.endpoint).firstLine).toBe('I am A');
    otherProfile.close();
    otherOwner.close();
  });

  it('accepts while any invocation holds the endpoint; close is idempotent', async () => {
    const a = await started(service('A'));
    const { t } = transports();
    const one = await t.openEndpoint(request(a.port));
    const two = await t.openEndpoint(request(a.port));
    one.close();
    one.close();
    expect(await dial(one.endpoint).firstLine).toBe('I am A');
    two.close();
    two.close();
    expect(await dial(one.endpoint).firstLine).toBe('error ECONNRESET');
    expect(t.stats().holds).toBe(0);
  });

  it('puts a unix endpoint in the directory given, named as the sandbox sees it', async () => {
    const a = await started(service('A'));
    const { dir, cleanup } = await tempDir('aip-ep-');
    cleanups.push(cleanup);
    const { t } = transports();
    const hold = await t.openEndpoint(request(a.port, { where: { unixDir: dir, sandboxPath: '/run/ep' } }));
    expect(hold.endpoint).toEqual({ type: 'unix', path: expect.stringMatching(/^\/run\/ep\/\d+\.sock$/), transport: 'direct', serverName: 'cache.internal' });
    const socketFile = join(dir, basename((hold.endpoint as { path: string }).path));
    expect(existsSync(socketFile)).toBe(true);
    expect(await dial(hold.endpoint, dir).firstLine).toBe('I am A');
    hold.close();
    expect(await dial(hold.endpoint, dir).firstLine).toBe('closed');
    expect(a.connections()).toBe(1);
    await t.closeOwner('plugin-a');
    expect(existsSync(socketFile)).toBe(false);
  });

  it("closes the plugin's side when the target cannot be reached, and the invocation's hold says why", async () => {
    const port = await freePort();
    const { t, logs } = transports();
    const hold = await t.openEndpoint(request(port));
    expect(await dial(hold.endpoint).firstLine).toBe('error ECONNRESET');
    expect(hold.dialFailure).toEqual({ address: `127.0.0.1:${port}`, reason: expect.stringMatching(/ECONNREFUSED/), timedOut: false });
    expect(logs.join('\n')).toMatch(/could not connect to 127\.0\.0\.1:\d+: connect ECONNREFUSED/);
    hold.close();
  });

  it('gives up on a target that does not accept within the dial timeout', async () => {
    // A real listener whose accept queue is full: the kernel's SYN goes unanswered.
    const full = await blackhole();
    const { t } = transports({ dialTimeoutMs: 300 });
    const hold = await t.openEndpoint(request(full.port));
    const started = Date.now();
    expect(await dial(hold.endpoint).firstLine).toBe('error ECONNRESET');
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(hold.dialFailure).toMatchObject({ timedOut: true, reason: 'no answer within 300 ms' });
    hold.close();
  });

  it('delivers what the plugin sends before the target accepted, in order', async () => {
    const a = await started(service('A'));
    const { t } = transports();
    const hold = await t.openEndpoint(request(a.port));
    const socket = connect({ host: '127.0.0.1', port: (hold.endpoint as { port: number }).port });
    socket.write('one\n');
    socket.write('two\n');
    let text = '';
    socket.setEncoding('utf8');
    await new Promise<void>((resolve) =>
      socket.on('data', (chunk: string) => {
        text += chunk;
        if (text.includes('two\n')) resolve();
      }),
    );
    expect(text).toBe('I am A\none\ntwo\n');
    socket.destroy();
    hold.close();
  });

  it('a private endpoint (a connection check) closes with its hold, relayed connections included', async () => {
    const a = await started(service('A'));
    const { t } = transports();
    const shared = await t.openEndpoint(request(a.port));
    const check = await t.openEndpoint(request(a.port, { reuse: 'private' }));
    expect(check.endpoint).not.toEqual(shared.endpoint);
    const { socket, firstLine } = dial(check.endpoint);
    expect(await firstLine).toBe('I am A');
    const closed = new Promise((resolve) => socket.once('close', resolve));
    check.close();
    await closed;
    await until(() => t.stats().endpoints === 1);
    shared.close();
  });

  it("closes an owner's endpoints and their relayed connections when its plugin is stopped, and only that owner's", async () => {
    const a = await started(service('A'));
    const { t } = transports();
    const mine = await t.openEndpoint(request(a.port));
    const theirs = await t.openEndpoint(request(a.port, { owner: 'plugin-b' }));
    const { socket, firstLine } = dial(mine.endpoint);
    expect(await firstLine).toBe('I am A');
    const closed = new Promise((resolve) => socket.once('close', resolve));
    await t.closeOwner('plugin-a');
    await closed;
    expect(await dial(mine.endpoint).firstLine).toBe('error ECONNREFUSED');
    expect(await dial(theirs.endpoint).firstLine).toBe('I am A');
    mine.close();
    theirs.close();
  });

  it('relays at most maxConnectionsPerEndpoint connections at once, so a plugin cannot exhaust the gateway', async () => {
    const a = await started(service('A'));
    const { t, logs } = transports({ maxConnectionsPerEndpoint: 3 });
    const hold = await t.openEndpoint(request(a.port));
    const open = [dial(hold.endpoint), dial(hold.endpoint), dial(hold.endpoint)];
    for (const { firstLine } of open) expect(await firstLine).toBe('I am A');
    expect(await dial(hold.endpoint).firstLine).toBe('error ECONNRESET');
    expect(logs.join('\n')).toMatch(/refused a connection to .*: it already relays 3 connections/);
    open[0]!.socket.destroy();
    await until(() => t.stats().relayed === 2);
    expect(await dial(hold.endpoint).firstLine).toBe('I am A');
    for (const { socket } of open) socket.destroy();
    hold.close();
  });

  it('closes an endpoint left idle (no invocation, no relayed connection)', async () => {
    const a = await started(service('A'));
    const { t } = transports({ idleMs: 100 });
    const hold = await t.openEndpoint(request(a.port));
    const { socket, firstLine } = dial(hold.endpoint);
    expect(await firstLine).toBe('I am A');
    hold.close();
    // A relayed connection keeps it open past the idle time.
    await new Promise((r) => setTimeout(r, 250));
    expect(t.stats().endpoints).toBe(1);
    socket.destroy();
    await until(() => t.stats().endpoints === 0, 2_000);
    expect(await dial(hold.endpoint).firstLine).toBe('error ECONNREFUSED');
    // The next invocation gets a fresh one.
    const next = await t.openEndpoint(request(a.port));
    expect(await dial(next.endpoint).firstLine).toBe('I am A');
    next.close();
  });
});

async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const startedAt = Date.now();
  while (!check()) {
    if (Date.now() - startedAt > timeoutMs) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A TCP listener (python, backlog 0) that never accepts, with its queue filled: further SYNs go unanswered. */
async function blackhole(): Promise<{ port: number }> {
  const child: ChildProcess = spawn('python3', ['-c', 'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)'], { stdio: ['ignore', 'pipe', 'ignore'] });
  cleanups.push(() => void child.kill('SIGKILL'));
  const port = await new Promise<number>((resolve) => child.stdout!.once('data', (chunk) => resolve(Number(String(chunk).trim()))));
  // Fill the accept queue (backlog 0 holds one, Linux allows one more).
  for (let i = 0; i < 3; i += 1) {
    const filler = connect({ host: '127.0.0.1', port });
    filler.on('error', () => undefined);
    cleanups.push(() => void filler.destroy());
    await new Promise((r) => setTimeout(r, 50));
  }
  return { port };
}
