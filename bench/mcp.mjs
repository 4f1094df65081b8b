// MCP benchmark, side by side in one run: a Redis GET through
//   - the raw ioredis call (the floor),
//   - @modelcontextprotocol/server-redis over stdio (the peer a user would otherwise run: no
//     permissions, no audit), tool `get`,
//   - AIPermission over stdio (the `aip mcp` bridge -> gateway), action get_key, always_run,
//   - AIPermission over Streamable HTTP (the SDK's own client straight to /mcp).
// Every gateway call is write-ahead audited (2 audit entries per call; checked at the end).
// The gateway runs in its own process, as it does for a user; the load comes from this one.
// Bounded: fixed call counts (BENCH_MCP_CALLS), a temp data directory, Redis at 127.0.0.1:6379.
import { spawn } from 'node:child_process';
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
const clients = [];
try {
  const { url, token, targetRef } = JSON.parse(await nextLine());
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
  const peer = await connect('bench-peer', new StdioClientTransport({ command: process.execPath, args: [PEER, 'redis://127.0.0.1:6379'], stderr: 'ignore' }));
  const bridge = await connect(
    'bench-bridge',
    new StdioClientTransport({ command: process.execPath, args: [AIP, 'mcp'], env: { AIP_URL: url, AIP_TOKEN: token, PATH: process.env.PATH ?? '' }, stderr: 'inherit' }),
  );
  const http = await connect('bench-http', new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));

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
  const paths = [
    ['raw ioredis GET (floor)', 'in-process', async () => check((await direct.get(key)) === value)],
    ['server-redis `get` (peer)', 'stdio', async () => {
      const result = await peer.callTool({ name: 'get', arguments: { key } });
      check(result.content?.[0]?.text === value, result);
    }],
    ['AIPermission get_key', 'stdio (bridge)', viaGateway(bridge)],
    ['AIPermission get_key', 'Streamable HTTP', viaGateway(http)],
    // The MCP layer alone (token check, a tool answered from memory, no connector, no audit).
    ['AIPermission list_targets', 'stdio (bridge)', listTargets(bridge)],
    ['AIPermission list_targets', 'Streamable HTTP', listTargets(http)],
  ];

  gatewayProcess.stdin.write('verify\n');
  const before = JSON.parse(await nextLine());

  const rows = [];
  for (const [name, transport, fn] of paths) {
    await latency(fn, 200); // warm-up
    const lat = await latency(fn, CALLS);
    const rates = [];
    for (const c of LEVELS) rates.push(await throughput(fn, c, CALLS));
    rows.push({ name, transport, lat, rates });
  }
  gatewayProcess.stdin.write('verify\n');
  const after = JSON.parse(await nextLine());
  const gatewayCalls = 2 * (200 + CALLS * (1 + LEVELS.length)); // two gateway paths

  console.log(`\nMCP: a Redis GET side by side (${CALLS} calls per cell after 200 warm-up; ${cpus().length} cores, Node ${process.version})`);
  console.log('path                       | transport       | p50 ms   | p99 ms   | calls/s c=1 | calls/s c=8 | calls/s c=32');
  console.log('---------------------------|-----------------|----------|----------|-------------|-------------|-------------');
  for (const { name, transport, lat, rates } of rows) {
    console.log(`${name.padEnd(26)} | ${transport.padEnd(15)} | ${fmt(lat.p50)} | ${fmt(lat.p99)} | ${rates.map((r) => fmt(r, 11, 0)).join(' | ')}`);
  }
  const peerRow = rows[1];
  const bridgeRow = rows[2];
  const httpRow = rows[3];
  console.log(`\nGateway over stdio vs the peer at c=1: p50 ${(bridgeRow.lat.p50 / peerRow.lat.p50).toFixed(2)}x (target <= 2x)`);
  console.log(`Gateway over HTTP at c=32: ${httpRow.rates[2].toFixed(0)} audited calls/s (target >= 5000)`);
  const [, , , , listStdio, listHttp] = rows;
  console.log('\nWhere the time goes at c=1 (p50): the MCP layer is the list_targets row; the rest of a get_key is the kernel pipeline');
  console.log('(write-ahead intent commit, JSON-RPC to the sandboxed plugin, get_key\'s Redis round trips, completion commit):');
  console.log(`  stdio: MCP layer ${listStdio.lat.p50.toFixed(3)} ms + pipeline ${(bridgeRow.lat.p50 - listStdio.lat.p50).toFixed(3)} ms; peer total ${peerRow.lat.p50.toFixed(3)} ms`);
  console.log(`  HTTP:  MCP layer ${listHttp.lat.p50.toFixed(3)} ms + pipeline ${(httpRow.lat.p50 - listHttp.lat.p50).toFixed(3)} ms`);
  console.log(`  HTTP at c=32, even with no pipeline at all: ${listHttp.rates[2].toFixed(0)} calls/s (the SDK's HTTP client and server on ${cpus().length} cores)`);
  const written = after.entries - before.entries;
  console.log(`Audit: ${written} entries written for ${gatewayCalls} gateway calls (${(written / gatewayCalls).toFixed(2)} per call: intent before the connector runs, completion after); chain verifies: ${after.ok}`);
  await direct.del(key);
  direct.disconnect();
} finally {
  await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
  gatewayProcess.stdin.end();
  await new Promise((resolve) => gatewayProcess.once('exit', resolve));
  await rm(dir, { recursive: true, force: true });
}
process.exit(0);
