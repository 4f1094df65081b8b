// Kernel pipeline benchmark: the full always_run path (token auth, switch,
// grant, input validation, snapshot, request row + write-ahead intent entry,
// execute, redact/bound, completion entry) against calling the same
// in-process executor directly. Prints p50/p99 latency at concurrency 1 and
// calls/s at concurrency 1, 8 and 32, side by side. Bounded: a fixed number
// of calls per row, in a temporary SQLCipher database removed afterwards.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createKernel } from '../dist/kernel.js';
import { createStaticCatalog, defineStaticConnector } from '../dist/connectors/index.js';

const CALLS = Number(process.env.BENCH_CALLS ?? 3000);
const WARMUP = 300;
const PASSWORD = 'Bench-Password-2026x';

const connector = defineStaticConnector({
  id: 'bench',
  version: '1.0.0',
  actions: [{ name: 'get', risk: 'read', input: { type: 'object', properties: { key: { type: 'string' } }, required: ['key'], additionalProperties: false } }],
});
const executor = { invoke: async (call) => ({ key: call.input.key, value: 'v' }) };

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

async function measure(fn, concurrency, calls) {
  const latencies = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < calls) {
        const i = next++;
        const t0 = performance.now();
        await fn(i);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const elapsed = performance.now() - started;
  latencies.sort((a, b) => a - b);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), perSecond: (calls / elapsed) * 1000 };
}

const dir = await mkdtemp(join(tmpdir(), 'aip-bench-'));
const kernel = createKernel({ dataDir: dir, catalog: createStaticCatalog([connector]), executor, log: () => {} });
try {
  await kernel.createDatabase('bench', PASSWORD);
  const ws = await kernel.unlock('bench', PASSWORD, 'operator:bench');
  await ws.mcp.set(true, 'operator:bench');
  const target = await ws.targets.createTarget({ kind: 'bench', name: 't', config: {} }, 'operator:bench');
  const profile = await ws.targets.createProfile(target.id, { label: 'p' }, 'operator:bench');
  const token = await ws.tokens.create({ name: 'bench' }, 'operator:bench');
  await ws.grants.set({ tokenId: token.token.id, targetId: target.id, profileId: profile.id, action: 'get', rule: 'always_run' }, 'operator:bench');
  const targetRef = `bench:${target.id}:${profile.id}`;
  const action = connector.actions.get('get');

  const viaPipeline = async (i) => {
    const outcome = await kernel.pipeline.call(kernel.authenticateToken(token.secret), { targetRef, action: 'get', input: { key: `k${i}` } });
    if (outcome.kind !== 'request' || outcome.request.status !== 'completed') throw new Error(`unexpected ${JSON.stringify(outcome)}`);
  };
  const direct = (i) => executor.invoke({ action, input: { key: `k${i}` } });

  await measure(viaPipeline, 4, WARMUP);
  const rows = [];
  for (const concurrency of [1, 8, 32]) {
    const d = await measure(direct, concurrency, CALLS);
    const p = await measure(viaPipeline, concurrency, CALLS);
    rows.push({ concurrency, d, p });
  }
  const report = await ws.audit.verify();
  const fmt = (n, digits = 3) => n.toFixed(digits).padStart(9);
  console.log(`\nKernel pipeline vs direct executor call (${CALLS} calls per row, Node ${process.version})`);
  console.log('conc | direct p50 ms | direct p99 ms | direct calls/s | pipeline p50 ms | pipeline p99 ms | pipeline calls/s | overhead p50 ms');
  console.log('-----|---------------|---------------|----------------|-----------------|-----------------|------------------|----------------');
  for (const { concurrency, d, p } of rows) {
    console.log(
      `${String(concurrency).padStart(4)} | ${fmt(d.p50)}     | ${fmt(d.p99)}     | ${fmt(d.perSecond, 0)}      | ${fmt(p.p50)}       | ${fmt(p.p99)}       | ${fmt(p.perSecond, 0)}        | ${fmt(p.p50 - d.p50)}`,
    );
  }
  console.log(`\nEvery pipeline call wrote 2 audit entries (intent before, completion after); the chain verified: ${report.ok} (${report.entries} entries).`);
} finally {
  await kernel.close();
  await rm(dir, { recursive: true, force: true });
}
