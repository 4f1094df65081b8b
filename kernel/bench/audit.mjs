// Audit and request history at scale (issue 11). Fills a temporary SQLCipher
// database through the kernel's real writer path (pipeline calls: a request
// row plus intent and completion entries each, with a few operator entries
// mixed in), then measures what an operator and an agent do with a big log:
// append rate, full-text and filtered search, verify, retention, unlock, and
// how long each maintenance step holds the database (a probe query that
// waits behind it). Sizes: 100k and 1M entries, capped by
// AIP_BENCH_AUDIT_MAX (e.g. AIP_BENCH_AUDIT_MAX=100000 for a quick run).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { createKernel } from '../dist/kernel.js';
import { createStaticCatalog, defineStaticConnector } from '../dist/connectors/index.js';

const MAX = Number(process.env.AIP_BENCH_AUDIT_MAX ?? 1_000_000);
const SIZES = [100_000, 1_000_000].filter((n) => n <= MAX);
if (SIZES.length === 0) SIZES.push(MAX);
const SEARCH_RUNS = Number(process.env.AIP_BENCH_AUDIT_RUNS ?? 40);
const APPENDS = 5_000;
const PASSWORD = 'Bench-Password-2026x';
const DAY_MS = 86_400_000;
const WORDS = ['deploy', 'cache', 'report', 'invoice', 'session', 'metrics', 'backup', 'queue'];

const connector = defineStaticConnector({
  id: 'bench',
  version: '1.0.0',
  actions: [
    { name: 'get_key', risk: 'read', input: { type: 'object', properties: { key: { type: 'string' } }, required: ['key'], additionalProperties: false } },
    { name: 'set_string', risk: 'write', input: { type: 'object', properties: { key: { type: 'string' } }, required: ['key'], additionalProperties: false } },
  ],
});
const executor = { invoke: async (call) => ({ key: call.input.key, value: 'v' }) };

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const ms = (n) => `${n.toFixed(1)} ms`;

/** Runs fn `runs` times; p50 and p95 in ms. */
async function timed(fn, runs = SEARCH_RUNS) {
  await fn();
  const samples = [];
  for (let i = 0; i < runs; i += 1) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 50), p95: percentile(samples, 95) };
}

/**
 * How long fn holds the database from a caller's view: a probe query runs
 * back to back while fn runs, and the longest wait of one probe is the
 * longest hold (plus the probe's own cost, well under a millisecond). The
 * event loop's worst delay is measured too.
 */
async function holding(db, fn) {
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  let done = false;
  let longest = 0;
  const probe = (async () => {
    while (!done) {
      const t0 = performance.now();
      await db.get('SELECT 1');
      longest = Math.max(longest, performance.now() - t0);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  })();
  const t0 = performance.now();
  let result;
  try {
    result = await fn();
  } finally {
    done = true;
  }
  const elapsed = performance.now() - t0;
  await probe;
  loop.disable();
  return { result, elapsed, longestHold: longest, loopMax: loop.max / 1e6 };
}

async function runSize(entries) {
  const dir = await mkdtemp(join(tmpdir(), 'aip-bench-audit-'));
  let offset = 0;
  const clock = { now: () => Date.now() + offset };
  const kernel = createKernel({ dataDir: dir, clock, catalog: createStaticCatalog([connector]), executor, log: () => {} });
  const rows = [];
  const row = (what, value, target = '') => rows.push({ what, value, target });
  try {
    await kernel.createDatabase('bench', PASSWORD);
    let ws = await kernel.unlock('bench', PASSWORD, 'operator:bench');
    await ws.mcp.set(true, 'operator:bench');
    const target = await ws.targets.createTarget({ kind: 'bench', name: 't', config: {} }, 'operator:bench');
    const profile = await ws.targets.createProfile(target.id, { label: 'p' }, 'operator:bench');
    const token = await ws.tokens.create({ name: 'bench' }, 'operator:bench');
    for (const action of ['get_key', 'set_string']) {
      await ws.grants.set({ tokenId: token.token.id, targetId: target.id, profileId: profile.id, action, rule: 'always_run' }, 'operator:bench');
    }
    const targetRef = `bench:${target.id}:${profile.id}`;
    const principal = () => kernel.authenticateToken(token.secret);

    // ---- fill: 32 calls in flight, 2 entries and a request row each; the
    // first half is a month older. One call in PIPELINE_EVERY goes through
    // the whole pipeline; the others write what a pipeline call writes (its
    // request row, cloned from a real one, with its intent and completion
    // entries) through the same group-commit writer in one unit, as the
    // pipeline's own batched path does, so the fill takes about a minute.
    const PIPELINE_EVERY = 10;
    const calls = Math.ceil(entries / 2);
    const sample = await kernel.pipeline.call(principal(), { targetRef, action: 'get_key', input: { key: 'sample' }, reason: 'bench sample' });
    const template = await ws.db.get('SELECT * FROM requests WHERE id = ?', [sample.request.id]);
    const entriesOf = await ws.db.all('SELECT actor, event, subject, payload FROM audit_log WHERE subject LIKE ? ORDER BY seq', [`%${sample.request.id}%`]);
    const columns = Object.keys(template).filter((key) => key !== 'seq');
    const insertSql = `INSERT INTO requests (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`;
    let next = 0;
    let aged = false;
    const fillStart = performance.now();
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < calls) {
          const i = next++;
          if (!aged && i >= calls / 2) {
            aged = true;
            offset += 30 * DAY_MS;
          }
          // Rare words and a rare operator: one call in 10,000.
          const key = i % 10_000 === 0 ? `quokka-${i}` : `${WORDS[i % WORDS.length]}-${i}`;
          const action = i % 20 === 0 ? 'set_string' : 'get_key';
          const reason = `bench ${WORDS[(i >> 3) % WORDS.length]}`;
          if (i % PIPELINE_EVERY === 0) {
            const outcome = await kernel.pipeline.call(principal(), { targetRef, action, input: { key }, reason });
            if (outcome.kind !== 'request' || outcome.request.status !== 'completed') throw new Error(`unexpected ${JSON.stringify(outcome).slice(0, 300)}`);
          } else {
            const id = `req_bench${i.toString(36)}`;
            const now = new Date(clock.now()).toISOString();
            const row = { ...template, id, action, reason, input_preview: JSON.stringify({ key }), created_at: now, updated_at: now, started_at: now, finished_at: now, idempotency_key: null };
            await ws.audit.commit({
              statements: [{ sql: insertSql, params: columns.map((column) => row[column]) }],
              entries: entriesOf.map((entry) => ({
                actor: entry.actor,
                event: entry.event,
                subject: { ...JSON.parse(entry.subject), requestId: id },
                payload: { ...JSON.parse(entry.payload), action, key, reason },
              })),
            });
          }
          if (i % 10_000 === 5) await ws.audit.append({ actor: 'operator:cli', event: 'settings.updated', payload: { note: 'bench' } });
        }
      }),
    );
    const fillMs = performance.now() - fillStart;
    const head = ws.audit.head().seq;
    row('fill (32 in flight, 1 in 10 through the whole pipeline)', `${Math.round((head / fillMs) * 1000)} entries/s`, '');
    // Fold the full-text index in before anything is timed.
    await ws.audit.search({ q: 'warmup' });
    await ws.approvals.list({ q: 'warmup' });

    // ---- append rate through the group-commit writer.
    for (const inFlight of [1, 32]) {
      let n = 0;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: inFlight }, async () => {
          while (n < APPENDS) {
            n += 1;
            await ws.audit.commit({ entries: [{ actor: 'system', event: 'bench.appended', payload: { n } }] });
          }
        }),
      );
      const rate = (APPENDS / (performance.now() - t0)) * 1000;
      row(`append, ${inFlight} in flight`, `${Math.round(rate)} entries/s`, inFlight === 1 ? '>= 5,000/s' : '');
    }

    // ---- audit search, newest page of 50.
    const tokenActor = `token:${token.token.id}`;
    const auditQueries = [
      ['rare word (quokka)', { q: 'quokka' }],
      ['common word (get_key)', { q: 'get_key' }],
      ['common word (deploy)', { q: 'deploy' }],
      ['rare actor (operator:cli)', { actor: 'operator:cli' }],
      ['common actor (token)', { actor: tokenActor }],
      ['rare event (settings.updated)', { event: 'settings.updated' }],
      ['common event (action.completed)', { event: 'action.completed' }],
      ['event family (action)', { event: 'action' }],
      ['rare actor + event', { actor: 'operator:cli', event: 'settings.updated' }],
      ['common actor + event', { actor: tokenActor, event: 'action.completed' }],
      ['last day (since)', { since: new Date(clock.now() - DAY_MS).toISOString() }],
      ['older month (until)', { until: new Date(clock.now() - 15 * DAY_MS).toISOString() }],
    ];
    for (const [name, query] of auditQueries) {
      const t = await timed(() => ws.audit.search({ ...query, limit: 50 }));
      row(`audit search: ${name}`, `p50 ${ms(t.p50)}, p95 ${ms(t.p95)}`, 'p50 <= 20 ms, p95 <= 50 ms');
    }
    // A second page through the cursor of the first.
    const first = await ws.audit.search({ q: 'get_key', limit: 50 });
    const t2 = await timed(() => ws.audit.search({ q: 'get_key', limit: 50, beforeSeq: first.nextBeforeSeq }));
    row('audit search: common word, second page (cursor)', `p50 ${ms(t2.p50)}, p95 ${ms(t2.p95)}`, 'p50 <= 20 ms, p95 <= 50 ms');

    // ---- request history search.
    const historyQueries = [
      ['rare word (quokka)', { q: 'quokka' }],
      ['common word (deploy)', { q: 'deploy' }],
      ['status completed', { status: 'completed' }],
      ['status failed (none)', { status: 'failed' }],
      ['statuses completed,failed', { status: ['completed', 'failed'] }],
      ['token', { tokenId: token.token.id }],
      ['target', { targetId: target.id }],
      ['action (set_string)', { action: 'set_string' }],
      ['last day (since)', { since: new Date(clock.now() - DAY_MS).toISOString() }],
      ['older month (until)', { until: new Date(clock.now() - 15 * DAY_MS).toISOString() }],
    ];
    for (const [name, filter] of historyQueries) {
      const t = await timed(() => ws.approvals.list({ ...filter, limit: 50 }));
      row(`history search: ${name}`, `p50 ${ms(t.p50)}, p95 ${ms(t.p95)}`, 'p50 <= 20 ms, p95 <= 50 ms');
    }

    // ---- verify: time, peak memory growth, memory after.
    globalThis.gc?.();
    const rssBefore = process.memoryUsage().rss;
    let peak = rssBefore;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 20);
    const verified = await holding(ws.db, () => ws.audit.verify());
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage().rss);
    // The verify workers exit 2 s after their last page.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    globalThis.gc?.();
    const rssAfter = process.memoryUsage().rss;
    const mb = (bytes) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;
    row(`verify (${verified.result.entries} entries, ok: ${verified.result.ok})`, ms(verified.elapsed), entries >= 1_000_000 ? '<= 10 s at 1M' : '');
    row('verify: peak memory growth (RSS)', mb(peak - rssBefore), '<= 50 MB');
    row('verify: memory after, vs before (RSS)', `${mb(rssAfter - rssBefore)} (before ${mb(rssBefore)})`, 'near 0');
    row('verify: longest hold of the database', ms(verified.longestHold), '<= 50 ms');

    // ---- unlock of a big database (retention runs at every unlock, in the background).
    await kernel.lock('bench', 'operator:bench');
    const unlockStart = performance.now();
    ws = await kernel.unlock('bench', PASSWORD, 'operator:bench');
    row('unlock', ms(performance.now() - unlockStart), '');
    const afterUnlock = await holding(ws.db, () => new Promise((resolve) => setTimeout(resolve, 1000)));
    row('longest hold in the first second after unlock', ms(afterUnlock.longestHold), '<= 50 ms');

    // ---- retention: the older half of the audit and of the history.
    const auditPrune = await holding(ws.db, () => ws.audit.prune(new Date(clock.now() - 15 * DAY_MS).toISOString()));
    row(`audit retention (${auditPrune.result.deleted} entries deleted)`, ms(auditPrune.elapsed), '');
    row('audit retention: longest hold of the database', `${ms(auditPrune.longestHold)} (longest chunk ${ms(auditPrune.result.run.longestHoldMs)})`, '<= 50 ms');
    const historyPrune = await holding(ws.db, () => ws.approvals.pruneFinished(new Date(clock.now() - 15 * DAY_MS).toISOString()));
    row(`history retention (${historyPrune.result} requests deleted)`, ms(historyPrune.elapsed), '');
    row('history retention: longest hold of the database', ms(historyPrune.longestHold), '<= 50 ms');
    const afterPrune = await ws.audit.verify();
    row(`verify after retention (${afterPrune.entries} entries)`, `ok: ${afterPrune.ok}`, '');
    row('event loop: worst delay during retention', ms(Math.max(auditPrune.loopMax, historyPrune.loopMax)), '');
  } finally {
    await kernel.close();
    await rm(dir, { recursive: true, force: true });
  }
  const width = Math.max(...rows.map((r) => r.what.length));
  const valueWidth = Math.max(...rows.map((r) => r.value.length));
  console.log(`\nAudit and history at ${entries.toLocaleString('en-US')} entries (Node ${process.version})`);
  console.log(`${'measure'.padEnd(width)} | ${'result'.padEnd(valueWidth)} | target`);
  console.log(`${'-'.repeat(width)}-|-${'-'.repeat(valueWidth)}-|-------`);
  for (const r of rows) console.log(`${r.what.padEnd(width)} | ${r.value.padEnd(valueWidth)} | ${r.target}`);
}

for (const size of SIZES) await runSize(size);
