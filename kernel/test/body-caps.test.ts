import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { aip } from './helpers/cli.js';
import { operator, startGatewayProcess, type RunningGateway } from './helpers/mcp.js';
import { tempDir, PASSWORD } from './helpers/temp.js';

// Item 10 of the agent-as-adversary review: a body cap checked after reading
// let one chunked 256 MiB request push the gateway to 853 MiB. These tests
// push bodies far over every cap at a real gateway process and watch its
// memory and how much of the body it accepts before it hangs up.

/** What the agent sends: far over every cap (2 MiB on /mcp, 256 KiB on /api). */
const FLOOD_BYTES = 256 * 1024 * 1024;
/** The gateway's peak memory may grow by less than this during a flood. */
const MAX_GROWTH_BYTES = 64 * 1024 * 1024;
/**
 * For the many-connections floods: each connection costs some fixed memory
 * besides what it sends, and the peak jitters with the GC. The floods are
 * sized so that holding every body (or line) would take about 170-190 MiB;
 * the bounded gateway stays near the 32 MiB budget plus that overhead.
 */
const MAX_MANY_GROWTH_BYTES = 100 * 1024 * 1024;
/**
 * How much of a flood the gateway may take in before it closes the
 * connection: the cap plus what the loopback socket buffers hold in flight.
 * A gateway that drains (or reads) the rest of the body takes far more.
 */
const MAX_ACCEPTED_BYTES = 32 * 1024 * 1024;

let dir: string;
let cleanup: () => Promise<void>;
let gw: RunningGateway;
let secret: string;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('aip-caps-'));
  expect((await aip(['db', 'create', 'main', '--data-dir', join(dir, 'data'), '--password-stdin'], { stdin: `${PASSWORD}\n` })).code).toBe(0);
  gw = await startGatewayProcess(join(dir, 'data'));
  await aip(['unlock', '--url', gw.url, '--password-stdin'], { stdin: `${PASSWORD}\n` });
  const op = await operator(gw.url);
  ({ secret } = await op.call<{ secret: string }>('POST', op.db('/tokens'), { name: 'flooder' }));
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  await cleanup();
});

function statusField(pid: number, field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) * 1024;
}

/**
 * Runs `attack` while watching the gateway's resident memory: the peak
 * (VmHWM, reset first where this user may reset it) and a 5 ms sample of
 * VmRSS, against the resident size just before. Returns the growth in bytes.
 */
async function peakGrowthDuring(attack: () => Promise<void>): Promise<number> {
  const pid = gw.process.pid!;
  let hwmReset = false;
  try {
    // "5" resets the peak to the current size (proc(5)); a non-root user may not write it for a non-dumpable process.
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    hwmReset = true;
  } catch {
    // fall back to sampling
  }
  const before = statusField(pid, 'VmRSS');
  let sampled = before;
  const sampler = setInterval(() => (sampled = Math.max(sampled, statusField(pid, 'VmRSS'))), 5);
  try {
    await attack();
  } finally {
    clearInterval(sampler);
  }
  const peak = Math.max(sampled, hwmReset ? statusField(pid, 'VmHWM') : 0);
  return peak - before;
}

interface FloodResult {
  status: number | undefined;
  body: string;
  /** Bytes the gateway's side took in before the connection ended (what this side managed to write). */
  acceptedBytes: number;
  /** Whether the gateway closed the connection (rather than keeping it for more). */
  closed: boolean;
}

/** Splits a raw HTTP/1.1 response into its status and body (Content-Length or chunked). */
function parseResponse(raw: Buffer): { status: number | undefined; body: string } {
  const text = raw.toString('latin1');
  const split = text.indexOf('\r\n\r\n');
  if (split < 0) return { status: undefined, body: '' };
  const head = text.slice(0, split);
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  let rest = text.slice(split + 4);
  if (/^transfer-encoding:\s*chunked/im.test(head)) {
    let body = '';
    for (;;) {
      const line = rest.indexOf('\r\n');
      const size = parseInt(rest.slice(0, line), 16);
      if (!(size > 0)) break;
      body += rest.slice(line + 2, line + 2 + size);
      rest = rest.slice(line + 2 + size + 2);
    }
    return { status, body: Buffer.from(body, 'latin1').toString('utf8') };
  }
  const length = Number(/^content-length:\s*(\d+)/im.exec(head)?.[1] ?? rest.length);
  return { status, body: Buffer.from(rest.slice(0, length), 'latin1').toString('utf8') };
}

/**
 * POSTs a chunked body (no Content-Length) of `prefix` followed by 'a's up to
 * FLOOD_BYTES over a raw socket, and keeps writing after the answer arrives,
 * as an attacker would: the gateway must stop reading and hang up, not read
 * or drain the rest. (A raw socket, because Node's own client hangs up by
 * itself once the answer is complete, which would hide what the gateway does.)
 */
function flood(path: string, headers: Record<string, string>, prefix = ''): Promise<FloodResult> {
  const url = new URL(gw.url);
  return new Promise((resolve) => {
    const socket = connect({ host: url.hostname, port: Number(url.port) });
    const received: Buffer[] = [];
    let ended = false;
    const finish = (closed: boolean) => {
      if (ended) return;
      ended = true;
      clearTimeout(deadline);
      const acceptedBytes = socket.bytesWritten;
      socket.destroy();
      resolve({ ...parseResponse(Buffer.concat(received)), acceptedBytes, closed });
    };
    // Bounded in time: a gateway that neither answers nor hangs up fails here.
    const deadline = setTimeout(() => finish(false), 20_000);
    socket.on('data', (data: Buffer) => received.push(data));
    socket.on('end', () => finish(true));
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    const lines = [`POST ${path} HTTP/1.1`, `Host: ${url.host}`, 'Content-Type: application/json', 'Transfer-Encoding: chunked', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    const piece = Buffer.alloc(1024 * 1024, 'a');
    const frame = (data: Buffer) => Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from('\r\n')]);
    const chunk = frame(piece);
    let sent = 0;
    const pump = () => {
      while (!ended && !socket.destroyed && sent < FLOOD_BYTES) {
        const data = sent === 0 && prefix ? frame(Buffer.concat([Buffer.from(prefix), piece.subarray(prefix.length)])) : chunk;
        sent += piece.length;
        if (!socket.write(data)) return void socket.once('drain', pump);
      }
      // All of it went in: the gateway read the whole flood; end the body and see what it says.
      if (!ended && !socket.destroyed) socket.write('0\r\n\r\n');
    };
    pump();
  });
}

const mcpHeaders = () => ({ authorization: `Bearer ${secret}`, accept: 'application/json, text/event-stream' });
const INIT_PREFIX = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"flood","version":"1"},"pad":"';

async function openSession(): Promise<string> {
  const response = await fetch(`${gw.url}/mcp`, {
    method: 'POST',
    headers: { ...mcpHeaders(), 'content-type': 'application/json' },
    body: `${INIT_PREFIX}"}}`,
  });
  await response.body?.cancel();
  return response.headers.get('mcp-session-id')!;
}

describe('body caps hold while the body streams in', () => {
  it('answers a chunked flood on /mcp without a session with 413 and a JSON-RPC error, and hangs up', async () => {
    let result!: FloodResult;
    const growth = await peakGrowthDuring(async () => {
      result = await flood('/mcp', mcpHeaders(), INIT_PREFIX);
    });
    expect(result.status).toBe(413);
    expect(JSON.parse(result.body)).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32000, message: expect.stringMatching(/over 2097152 bytes/) } });
    expect(result.closed).toBe(true);
    expect(result.acceptedBytes).toBeLessThan(MAX_ACCEPTED_BYTES);
    expect(growth).toBeLessThan(MAX_GROWTH_BYTES);
  });

  it('answers a chunked flood on an existing /mcp session with 413, and hangs up', async () => {
    const session = await openSession();
    expect(session).toBeTruthy();
    let result!: FloodResult;
    const growth = await peakGrowthDuring(async () => {
      result = await flood('/mcp', { ...mcpHeaders(), 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' }, '{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"pad":"');
    });
    expect(result.status).toBe(413);
    expect(JSON.parse(result.body)).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32000, message: expect.stringMatching(/over 2097152 bytes/) } });
    expect(result.closed).toBe(true);
    expect(result.acceptedBytes).toBeLessThan(MAX_ACCEPTED_BYTES);
    expect(growth).toBeLessThan(MAX_GROWTH_BYTES);
    // The session itself is untouched: it still answers.
    const list = await fetch(`${gw.url}/mcp`, {
      method: 'POST',
      headers: { ...mcpHeaders(), 'content-type': 'application/json', 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }),
    });
    expect(list.status).toBe(200);
    expect(await list.text()).toContain('list_connector_targets');
  });

  it('answers a chunked flood on an /api route with 413 before any session check, and hangs up', async () => {
    let result!: FloodResult;
    const growth = await peakGrowthDuring(async () => {
      result = await flood('/api/databases/main/tokens', {}, '{"name":"');
    });
    expect(result.status).toBe(413);
    expect(JSON.parse(result.body)).toEqual({ error: { code: 'body_too_large', message: expect.stringMatching(/262144 bytes/) } });
    expect(result.closed).toBe(true);
    expect(result.acceptedBytes).toBeLessThan(MAX_ACCEPTED_BYTES);
    expect(growth).toBeLessThan(MAX_GROWTH_BYTES);
  });

  it('closes the bridge channel on one endless line, without buffering it', async () => {
    const url = new URL(gw.url);
    let accepted = 0;
    let closed = false;
    const growth = await peakGrowthDuring(
      () =>
        new Promise<void>((resolve, reject) => {
          const request = httpRequest({ host: url.hostname, port: url.port, path: '/mcp', agent: false, headers: { Connection: 'Upgrade', Upgrade: 'aip-mcp-stdio', Authorization: `Bearer ${secret}` } });
          request.on('error', reject);
          request.on('response', (response) => reject(new Error(`no upgrade: ${response.statusCode}`)));
          request.on('upgrade', (_response, socket) => {
            const chunk = Buffer.alloc(1024 * 1024, 'a');
            let sent = 0;
            const deadline = setTimeout(() => socket.destroy(), 20_000);
            const done = () => {
              clearTimeout(deadline);
              accepted = socket.bytesWritten;
              resolve();
            };
            socket.on('error', () => undefined);
            socket.once('close', () => {
              closed = sent < FLOOD_BYTES;
              done();
            });
            const pump = () => {
              while (!socket.destroyed && sent < FLOOD_BYTES) {
                sent += chunk.length;
                if (!socket.write(chunk)) return void socket.once('drain', pump);
              }
              if (!socket.destroyed) socket.destroy();
            };
            pump();
          });
          request.end();
        }),
    );
    expect(closed).toBe(true);
    expect(accepted).toBeLessThan(MAX_ACCEPTED_BYTES);
    expect(growth).toBeLessThan(MAX_GROWTH_BYTES);
  });
});

describe('many slow bodies at once', () => {
  it('holds only a bounded amount for bodies still arriving, however many connections send them', async () => {
    const url = new URL(gw.url);
    const CONNECTIONS = 96;
    // Each just under the 2 MiB cap, and never finished: an agent holding memory hostage.
    const body = Buffer.concat([Buffer.from(INIT_PREFIX), Buffer.alloc(2 * 1024 * 1024 - 64 * 1024, 'a')]);
    const sockets: Socket[] = [];
    const answers: string[] = [];
    const growth = await peakGrowthDuring(async () => {
      await Promise.all(
        Array.from({ length: CONNECTIONS }, () => {
          const socket = connect({ host: url.hostname, port: Number(url.port) });
          sockets.push(socket);
          let received = '';
          socket.on('data', (data: Buffer) => (received += data.toString('latin1')));
          socket.on('error', () => undefined);
          socket.on('close', () => answers.push(received));
          socket.write(
            [`POST /mcp HTTP/1.1`, `Host: ${url.host}`, 'Content-Type: application/json', 'Accept: application/json, text/event-stream', `Authorization: Bearer ${secret}`, 'Transfer-Encoding: chunked', '', ''].join('\r\n'),
          );
          return new Promise<void>((resolve) => socket.write(Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n')]), () => resolve()));
        }),
      );
      // Let the gateway take in what it will.
      await new Promise((resolve) => setTimeout(resolve, 1500));
    });
    for (const socket of sockets) socket.destroy();
    expect(growth).toBeLessThan(MAX_MANY_GROWTH_BYTES);
    // The ones past the shared budget were told to come back later, and hung up on.
    const busy = answers.filter((answer) => answer.startsWith('HTTP/1.1 503'));
    expect(busy.length).toBeGreaterThan(0);
    expect(busy[0]).toMatch(/retry-after: 1/i);
    expect(busy[0]).toMatch(/too many large requests at once; retry in a moment/);
    // And the gateway still answers normally.
    const response = await fetch(`${gw.url}/mcp`, { method: 'POST', headers: { ...mcpHeaders(), 'content-type': 'application/json' }, body: `${INIT_PREFIX}"}}` });
    expect(response.status).toBe(200);
    await response.body?.cancel();
  });
});

describe('many unfinished bridge lines at once', () => {
  it('holds only a bounded amount for lines still arriving on bridge connections, closing the ones past it', async () => {
    const url = new URL(gw.url);
    const CONNECTIONS = 24;
    // Each under the 4 MiB line cap, and never ended by a newline.
    const line = Buffer.alloc(3 * 1024 * 1024 + 512 * 1024, 'a');
    const closedByGateway: boolean[] = [];
    const sockets: Socket[] = [];
    const growth = await peakGrowthDuring(async () => {
      await Promise.all(
        Array.from(
          { length: CONNECTIONS },
          () =>
            new Promise<void>((resolve, reject) => {
              const request = httpRequest({ host: url.hostname, port: url.port, path: '/mcp', agent: false, headers: { Connection: 'Upgrade', Upgrade: 'aip-mcp-stdio', Authorization: `Bearer ${secret}` } });
              request.on('error', reject);
              request.on('upgrade', (_response, socket: Socket) => {
                sockets.push(socket);
                socket.on('error', () => undefined);
                socket.resume();
                socket.once('close', () => closedByGateway.push(true));
                socket.write(line, () => resolve());
                // A connection the gateway closes never completes the write: count it as done.
                socket.once('close', () => resolve());
              });
              request.end();
            }),
        ),
      );
      await new Promise((resolve) => setTimeout(resolve, 1500));
    });
    const closed = closedByGateway.length;
    for (const socket of sockets) socket.destroy();
    expect(growth).toBeLessThan(MAX_MANY_GROWTH_BYTES);
    expect(closed).toBeGreaterThan(0);
    expect(closed).toBeLessThan(CONNECTIONS);
  });
});
