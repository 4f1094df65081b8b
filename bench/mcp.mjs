// MCP benchmark, side by side in one run: a Redis GET through
//   - the raw ioredis call (the floor),
//   - @modelcontextprotocol/server-redis over stdio (the peer a user would otherwise run: no
//     permissions, no audit), tool `get`,
//   - AIPermission over stdio (the `aip mcp` bridge -> gateway), action get_key, always_run,
//   - AIPermission over Streamable HTTP: the SDK's own client, and a lean keep-alive
//     client (node:http, one JSON-RPC POST per call) so the figure is the gateway's,
//     not the load generator's (the SDK client costs more CPU per call than most servers),
//   - the floors under the gateway's transports (floor.mjs): the same SDK transports, hono
//     and process layout with one in-process GET tool and nothing of the gateway.
// Server CPU per call (from /proc, the serving process tree: bridge or relay, gateway,
// plugin) is what decides throughput on a small machine, so it is printed too.
// Every gateway call is write-ahead audited (2 audit entries per call; checked at the end).
// The gateway runs in its own process, as it does for a user; the load comes from this one.
// Bounded: fixed call counts (BENCH_MCP_CALLS), a temp data directory, Redis at 127.0.0.1:6379.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import http from 'node:http';
import { setMaxListeners } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const CALLS = Number(process.env.BENCH_MCP_CALLS ?? 2000);
const LEVELS = [1, 8, 32];
const AIP = fileURLToPath(new URL('../kernel/bin/aip.js', import.meta.url));
const PEER = fileURLToPath(new URL('./node_modules/@modelcontextprotocol/server-redis/dist/index.js', import.meta.url));
const GATEWAY = fileURLToPath(new URL('./gateway.mjs', import.meta.url));
const FLOOR = fileURLToPath(new URL('./floor.mjs', import.meta.url));

/** CPU seconds used so far by a process and its descendants (Linux /proc; undefined elsewhere). */
function treeCpu(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    let ticks = Number(fields[11]) + Number(fields[12]);
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      for (const child of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean)) ticks += treeCpu(Number(child)) ?? 0;
    }
    return ticks / 100;
  } catch {
    return undefined;
  }
}

/**
 * A lean MCP client over Streamable HTTP: keep-alive sockets, one POST per
 * JSON-RPC request, the response read whole (JSON or SSE). It does what the
 * SDK client does on the wire and little else.
 */
async function leanHttpClient(url, headers = {}) {
  const target = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  let session;
  let nextId = 0;
  const post = (message) =>
    new Promise((resolve, reject) => {
      const body = JSON.stringify(message);
      const request = http.request(
        {
          host: target.hostname,
          port: target.port,
          path: target.pathname,
          method: 'POST',
          agent,
          headers: {
            ...headers,
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            'content-length': Buffer.byteLength(body),
            ...(session ? { 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' } : {}),
          },
        },
        (response) => {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (chunk) => (text += chunk));
          response.on('end', () => {
            session ??= response.headers['mcp-session-id'];
            if (response.statusCode === 202) return resolve(undefined);
            if (response.statusCode !== 200) return reject(new Error(`HTTP ${response.statusCode}: ${text.slice(0, 200)}`));
            const messages = response.headers['content-type']?.startsWith('text/event-stream')
              ? text.split('\n').filter((line) => line.startsWith('data: ')).map((line) => JSON.parse(line.slice(6)))
              : [JSON.parse(text)];
            resolve(messages.find((m) => m.id === message.id));
          });
        },
      );
      request.on('error', reject);
      request.end(body);
    });
  await post({ jsonrpc: '2.0', id: nextId++, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'bench-lean', version: '1.0.0' } } });
  await post({ jsonrpc: '2.0', method: 'notifications/initialized' });
  return {
    async callTool(params) {
      const answer = await post({ jsonrpc: '2.0', id: nextId++, method: 'tools/call', params });
      if (!answer?.result) throw new Error(`no result: ${JSON.stringify(answer).slice(0, 300)}`);
      return answer.result;
    },
    close: async () => agent.destroy(),
  };
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const fmt = (n, width = 8, digits = 3) => n.toFixed(digits).padStart(width);

async function latency(fn, n) {
  const samples = [];
  for (let i = 0; i < n; i += 1) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return { p50: pct(samples, 50), p99: pct(samples, 99) };
}

async function throughput(fn, concurrency, n) {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next += 1;
        await fn();
      }
    }),
  );
  return (n / (performance.now() - t0)) * 1000;
}

function lines(child) {
  const queue = [];
  const waiters = [];
  createInterface({ input: child.stdout }).on('line', (line) => (waiters.length ? waiters.shift()(line) : queue.push(line)));
  return () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((resolve) => waiters.push(resolve)));
}

// The SDK's HTTP client adds an abort listener per fetch to one long-lived signal (freed
// only by GC); at c=32 that trips Node's leak warning. It is the client's, not the gateway's.
setMaxListeners(0);

const dir = await mkdtemp(join(tmpdir(), 'aip-bench-mcp-'));
const gatewayProcess = spawn(process.execPath, [GATEWAY, join(dir, 'data')], { stdio: ['pipe', 'pipe', 'inherit'] });
const nextLine = lines(gatewayProcess);
const floorProcess = spawn(process.execPath, [FLOOR], { stdio: ['pipe', 'pipe', 'inherit'] });
const clients = [];
try {
  const { url, token, targetRef } = JSON.parse(await nextLine());
  const floor = JSON.parse(await lines(floorProcess)());
  const direct = new Redis({ host: '127.0.0.1', port: 6379 });
  const key = `aip:bench:mcp:${process.pid}`;
  const value = 'x'.repeat(64);
  await direct.set(key, value);

  const connect = async (name, transport) => {
    const client = new Client({ name, version: '1.0.0' });
    await client.connect(transport);
    clients.push(client);
    return client;
  };
  const stdio = (options) => new StdioClientTransport({ command: process.execPath, stderr: 'inherit', ...options });
  const peerTransport = stdio({ args: [PEER, 'redis://127.0.0.1:6379'], stderr: 'ignore' });
  const peer = await connect('bench-peer', peerTransport);
  const relayTransport = stdio({ args: [FLOOR, 'relay', String(floor.tcpPort)] });
  const relay = await connect('bench-relay', relayTransport);
  const bridgeTransport = stdio({ args: [AIP, 'mcp'], env: { AIP_URL: url, AIP_TOKEN: token, PATH: process.env.PATH ?? '' } });
  const bridge = await connect('bench-bridge', bridgeTransport);
  const sdkHttp = await connect('bench-http', new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
  const leanHttp = await leanHttpClient(`${url}/mcp`, { authorization: `Bearer ${token}` });
  const floorHttp = await leanHttpClient(`${floor.url}/mcp`);
  const plainHttp = await leanHttpClient(`${floor.url}/plain`);
  clients.push(leanHttp, floorHttp, plainHttp);

  const check = (ok, result) => {
    if (!ok) throw new Error(`unexpected result: ${JSON.stringify(result).slice(0, 300)}`);
  };
  const viaGateway = (client) => async () => {
    const result = await client.callTool({ name: 'call_connector_action', arguments: { target_ref: targetRef, action_name: 'get_key', input: { key } } });
    check(result.structuredContent?.status === 'completed' && result.structuredContent.output?.value === value, result);
  };
  const listTargets = (client) => async () => {
    const result = await client.callTool({ name: 'list_connector_targets', arguments: {} });
    check(result.structuredContent?.targets?.length === 1, result);
  };
  const floorGet = (client) => async () => {
    const result = await client.callTool({ name: 'get', arguments: { key } });
    check(result.content?.[0]?.text === value, result);
  };
  const gatewayTree = [gatewayProcess.pid];
  // [name, transport, call, serving processes (for CPU per call)]
  const paths = [
    ['raw ioredis GET', 'in-process', async () => check((await direct.get(key)) === value), []],
    ['server-redis `get` (peer)', 'stdio', floorGet(peer), [peerTransport.pid]],
    ['floor: SDK server, GET', 'stdio via relay', floorGet(relay), [relayTransport.pid, floorProcess.pid]],
    ['AIPermission get_key', 'stdio (bridge)', viaGateway(bridge), [bridgeTransport.pid, ...gatewayTree]],
    ['floor: hono JSON, GET', 'HTTP lean', floorGet(plainHttp), [floorProcess.pid]],
    ['floor: SDK server, GET', 'HTTP lean', floorGet(floorHttp), [floorProcess.pid]],
    ['AIPermission get_key', 'HTTP lean', viaGateway(leanHttp), gatewayTree],
    ['AIPermission get_key', 'HTTP SDK client', viaGateway(sdkHttp), gatewayTree],
    // The MCP layer alone (token check, a tool answered from memory, no connector, no audit).
    ['AIPermission list_targets', 'stdio (bridge)', listTargets(bridge), [bridgeTransport.pid, ...gatewayTree]],
    ['AIPermission list_targets', 'HTTP lean', listTargets(leanHttp), gatewayTree],
  ];

  gatewayProcess.stdin.write('verify\n');
  const before = JSON.parse(await nextLine());

  const rows = [];
  const cpuOf = (pids) => (pids.length ? pids.map(treeCpu).reduce((a, b) => (a === undefined || b === undefined ? undefined : a + b), 0) : undefined);
  for (const [name, transport, fn, pids] of paths) {
    await latency(fn, 200); // warm-up
    const lat = await latency(fn, CALLS);
    const rates = [];
    let cpuMs;
    for (const c of LEVELS) {
      const before = c === 32 ? cpuOf(pids) : undefined;
      rates.push(await throughput(fn, c, CALLS));
      const after = c === 32 ? cpuOf(pids) : undefined;
      if (before !== undefined && after !== undefined) cpuMs = ((after - before) * 1000) / CALLS;
    }
    rows.push({ name, transport, lat, rates, cpuMs });
  }
  gatewayProcess.stdin.write('verify\n');
  const after = JSON.parse(await nextLine());
  const gatewayCalls = 3 * (200 + CALLS * (1 + LEVELS.length)); // three get_key paths

  console.log(`\nMCP: a Redis GET side by side (${CALLS} calls per cell after 200 warm-up; ${cpus().length} cores, Node ${process.version})`);
  console.log('path                       | transport       | p50 ms   | p99 ms   | calls/s c=1 | calls/s c=8 | calls/s c=32 | server CPU ms/call c=32');
  console.log('---------------------------|-----------------|----------|----------|-------------|-------------|--------------|------------------------');
  for (const { name, transport, lat, rates, cpuMs } of rows) {
    const cpu = cpuMs === undefined ? '-' : cpuMs.toFixed(3);
    console.log(`${name.padEnd(26)} | ${transport.padEnd(15)} | ${fmt(lat.p50)} | ${fmt(lat.p99)} | ${rates.map((r) => fmt(r, 11, 0)).join(' | ')}  | ${cpu.padStart(8)}`);
  }
  const [, peerRow, relayRow, bridgeRow, plainRow, floorHttpRow, leanRow, sdkRow, listStdio, listHttp] = rows;
  console.log(`\nTargets: gateway p50 over stdio vs the peer at c=1: ${(bridgeRow.lat.p50 / peerRow.lat.p50).toFixed(2)}x (target <= 2x)`);
  console.log(`         gateway over HTTP at c=32: ${leanRow.rates[2].toFixed(0)} audited calls/s with the lean client, ${sdkRow.rates[2].toFixed(0)} with the SDK client (target >= 5000)`);
  console.log('\nWhere the time goes (p50 at c=1; CPU per call at c=32):');
  console.log(`  stdio: the peer ${peerRow.lat.p50.toFixed(3)} ms; the same GET behind a relay process and a TCP hop (the bridge's layout, no gateway) ${relayRow.lat.p50.toFixed(3)} ms;`);
  console.log(`         the gateway's MCP layer over the bridge (token check, tool answered from memory) ${listStdio.lat.p50.toFixed(3)} ms; get_key adds the pipeline:`);
  console.log(`         intent commit, JSON-RPC to the sandboxed plugin, Redis, completion commit: ${(bridgeRow.lat.p50 - listStdio.lat.p50).toFixed(3)} ms`);
  console.log(`  HTTP:  hono answering the same JSON-RPC by hand (no SDK) with an in-process GET: ${plainRow.rates[2].toFixed(0)} calls/s (${plainRow.cpuMs?.toFixed(3) ?? '-'} ms server CPU per call);`);
  console.log(`         the SDK's Streamable HTTP transport in hono with an in-process GET and nothing else tops out at ${floorHttpRow.rates[2].toFixed(0)} calls/s`);
  console.log(`         (${floorHttpRow.cpuMs?.toFixed(3) ?? '-'} ms server CPU per call); the gateway's MCP layer alone ${listHttp.rates[2].toFixed(0)} calls/s (${listHttp.cpuMs?.toFixed(3) ?? '-'} ms);`);
  console.log(`         get_key ${leanRow.rates[2].toFixed(0)} calls/s (${leanRow.cpuMs?.toFixed(3) ?? '-'} ms incl. the plugin process and SQLCipher's threads)`);
  const written = after.entries - before.entries;
  console.log(`Audit: ${written} entries written for ${gatewayCalls} gateway calls (${(written / gatewayCalls).toFixed(2)} per call: intent before the connector runs, completion after); chain verifies: ${after.ok}`);
  await direct.del(key);
  direct.disconnect();
} finally {
  await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
  gatewayProcess.stdin.end();
  floorProcess.stdin.end();
  await Promise.all([gatewayProcess, floorProcess].map((child) => (child.exitCode === null ? new Promise((resolve) => child.once('exit', resolve)) : undefined)));
  await rm(dir, { recursive: true, force: true });
}
process.exit(0);
