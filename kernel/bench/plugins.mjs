// Plugin benchmark, side by side in one run:
//  1. cold start: spawn -> handshake complete, for the Redis plugin, with and
//     without bubblewrap (p50/p99 over COLD runs);
//  2. per call: get_key through the whole kernel pipeline (token, grant,
//     snapshot, write-ahead audit, JSON-RPC to the sandboxed plugin, output
//     validation, redaction, completion audit) against
//       - the same get_key handler called in-process (same Redis work, no kernel),
//       - a direct ioredis GET (the floor).
// Needs the Redis at 127.0.0.1:6379. Bounded: fixed counts, temp data dir.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { createKernel } from '../dist/kernel.js';
import { createPluginHost } from '../dist/plugin-host/index.js';
import { createInvocationScopes } from '../dist/invocations/index.js';
import { PluginProcess } from '../dist/plugin-host/process.js';
import { buildSpawnSpec, detectBwrap } from '../dist/plugin-host/sandbox.js';
import { loadBuiltins } from '../dist/plugin-host/registry.js';

const COLD = Number(process.env.BENCH_COLD ?? 20);
const CALLS = Number(process.env.BENCH_CALLS ?? 2000);
const PASSWORD = 'Bench-Password-2026x';
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const stats = (samples) => {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: pct(sorted, 50), p99: pct(sorted, 99) };
};
const fmt = (n) => n.toFixed(3).padStart(8);

const dir = await mkdtemp(join(tmpdir(), 'aip-bench-plugins-'));
const pluginsRoot = fileURLToPath(new URL('../../plugins/', import.meta.url));
try {
  // ---- 1. cold start ------------------------------------------------------
  const [redis] = await loadBuiltins(pluginsRoot);
  const cold = {};
  for (const mode of detectBwrap() ? ['off', 'auto'] : ['off']) {
    const samples = [];
    for (let i = 0; i < COLD; i += 1) {
      const spec = buildSpawnSpec({ pluginDir: redis.dir, entry: redis.entry, scratchDir: dir, bwrap: mode });
      const proc = new PluginProcess({ spec, handshakeTimeoutMs: 10_000, kernelInfo: { name: 'bench', version: '0' }, redact: (l) => l, log: () => {}, onExit: () => {} });
      const started = performance.now();
      await proc.start();
      samples.push(performance.now() - started);
      await proc.stop();
    }
    cold[spec0Level(mode)] = stats(samples);
  }
  function spec0Level(mode) {
    return mode === 'auto' ? 'bwrap + node permission' : 'node permission only';
  }
  console.log(`\nPlugin cold start: spawn -> handshake complete, Redis plugin, ${COLD} runs each (Node ${process.version})`);
  console.log('sandbox                  | p50 ms   | p99 ms');
  console.log('-------------------------|----------|---------');
  for (const [level, s] of Object.entries(cold)) console.log(`${level.padEnd(24)} | ${fmt(s.p50)} | ${fmt(s.p99)}`);

  // ---- 2. per-call ----------------------------------------------------------
  // One registry of invocation scopes for the pipeline and the plugin host, as the gateway wires them.
  const scopes = createInvocationScopes();
  const host = await createPluginHost({ dataDir: dir, scopes, clock: { now: () => Date.now() }, log: () => {}, kernelInfo: { name: 'bench', version: '0' }, builtinRoot: pluginsRoot });
  const kernel = createKernel({ dataDir: dir, plugins: host, scopes, log: () => {} });
  await kernel.createDatabase('bench', PASSWORD);
  const ws = await kernel.unlock('bench', PASSWORD, 'operator:bench');
  await ws.mcp.set(true, 'operator:bench');
  const target = await ws.targets.createTarget({ kind: 'redis', name: 'local', config: { host: '127.0.0.1', port: 6379 } }, 'operator:bench');
  const profile = await ws.targets.createProfile(target.id, { label: 'open', credentialKind: 'none' }, 'operator:bench');
  const token = await ws.tokens.create({ name: 'bench' }, 'operator:bench');
  await ws.grants.set({ tokenId: token.token.id, targetId: target.id, profileId: profile.id, action: 'get_key', rule: 'always_run' }, 'operator:bench');
  const targetRef = `redis:${target.id}:${profile.id}`;

  const direct = new Redis({ host: '127.0.0.1', port: 6379 });
  const key = `aip:bench:${process.pid}`;
  await direct.set(key, 'x'.repeat(64));

  // The same handler, in-process: the Redis plugin module, imported, with a pool of its own.
  process.env.AIP_BENCH = '1';
  const { plugin } = await import('../../plugins/redis/dist/plugin.mjs');
  const getKey = plugin.actions.get('get_key');
  const ctx = {
    invocationId: 'bench',
    signal: new AbortController().signal,
    target: { host: '127.0.0.1', port: 6379 },
    credentials: { kind: 'none', fields: {} },
    endpoint: { type: 'tcp', host: '127.0.0.1', port: 6379, transport: 'direct', serverName: '127.0.0.1' },
    limits: { timeoutMs: 20_000, maxOutputBytes: 786_432 },
    progress: () => {},
    log: { debug() {}, info() {}, warn() {}, error() {} },
  };

  const viaPipeline = async () => {
    const outcome = await kernel.pipeline.call(kernel.authenticateToken(token.secret), { targetRef, action: 'get_key', input: { key } });
    if (outcome.kind !== 'request' || outcome.request.status !== 'completed') throw new Error(JSON.stringify(outcome));
  };
  const inProcess = () => getKey.handler({ key }, ctx);
  const rawGet = () => direct.get(key);

  const measure = async (fn, n) => {
    const samples = [];
    for (let i = 0; i < n; i += 1) {
      const t0 = performance.now();
      await fn();
      samples.push(performance.now() - t0);
    }
    return stats(samples);
  };
  const throughput = async (fn, concurrency, n) => {
    let next = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next += 1;
        await fn();
      }
    }));
    return (n / (performance.now() - t0)) * 1000;
  };
  for (const fn of [viaPipeline, inProcess, rawGet]) await measure(fn, 200);
  const rows = [
    ['direct ioredis GET (floor)', await measure(rawGet, CALLS), await throughput(rawGet, 8, CALLS)],
    ['get_key handler in-process', await measure(inProcess, CALLS), await throughput(inProcess, 8, CALLS)],
    ['get_key via kernel + plugin', await measure(viaPipeline, CALLS), await throughput(viaPipeline, 8, CALLS)],
  ];
  console.log(`\nPer call at concurrency 1 (${CALLS} calls each; throughput at concurrency 8); every kernel call writes 2 audit entries`);
  console.log('path                          | p50 ms   | p99 ms   | calls/s (c=8)');
  console.log('------------------------------|----------|----------|--------------');
  for (const [name, s, rate] of rows) console.log(`${name.padEnd(29)} | ${fmt(s.p50)} | ${fmt(s.p99)} | ${rate.toFixed(0).padStart(12)}`);
  const [floor, handler, full] = rows.map((r) => r[1]);
  console.log(`\nKernel + JSON-RPC overhead (pipeline - in-process handler): p50 ${(full.p50 - handler.p50).toFixed(3)} ms, p99 ${(full.p99 - handler.p99).toFixed(3)} ms`);
  console.log(`Over the raw GET floor (get_key pipelines TYPE, PTTL, STRLEN and GETRANGE in one round trip): p50 ${(full.p50 - floor.p50).toFixed(3)} ms`);
  console.log(`Audit chain after the run verifies: ${(await ws.audit.verify()).ok}`);

  await direct.del(key);
  direct.disconnect();
  await kernel.close();
} finally {
  await rm(dir, { recursive: true, force: true });
}
process.exit(0);
