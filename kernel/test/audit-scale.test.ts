import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SqlDb } from '../src/vault/index.js';
import { createHarness, type Harness } from './helpers/kernel.js';

let h: Harness;
beforeEach(async () => {
  h = await createHarness();
});
afterEach(async () => h.cleanup());

const DAY_MS = 86_400_000;

/** Writes n entries through the group-commit writer (the kernel's real writer path), in units of 500. */
async function fill(n: number, make: (i: number) => { actor: string; event: string; payload?: Record<string, unknown>; subject?: Record<string, string> }) {
  for (let start = 0; start < n; start += 500) {
    const entries = [];
    for (let i = start; i < Math.min(n, start + 500); i += 1) entries.push(make(i));
    await h.ws.audit.commit({ entries });
  }
}

/** The statements a function runs on the database, with their parameters. */
async function statementsOf(db: SqlDb, fn: () => Promise<unknown>): Promise<Array<{ sql: string; params: unknown[] }>> {
  const seen: Array<{ sql: string; params: unknown[] }> = [];
  const patched = db as { all: SqlDb['all']; get: SqlDb['get'] };
  const original = { all: db.all.bind(db), get: db.get.bind(db) };
  patched.all = (<T>(sql: string, params?: readonly unknown[] | Record<string, unknown>) => {
    seen.push({ sql, params: (params ?? []) as unknown[] });
    return original.all<T>(sql, params);
  }) as SqlDb['all'];
  patched.get = (<T>(sql: string, params?: readonly unknown[] | Record<string, unknown>) => {
    seen.push({ sql, params: (params ?? []) as unknown[] });
    return original.get<T>(sql, params);
  }) as SqlDb['get'];
  try {
    await fn();
  } finally {
    patched.all = original.all;
    patched.get = original.get;
  }
  return seen;
}

/** The query plan of every statement fn runs against `table`: what an assertion about index use reads. */
async function plansOf(db: SqlDb, table: string, fn: () => Promise<unknown>): Promise<string[][]> {
  const plans: string[][] = [];
  for (const { sql, params } of await statementsOf(db, fn)) {
    if (!new RegExp(`\\b${table}\\b`).test(sql)) continue;
    const rows = await db.all<{ detail: string }>(`EXPLAIN QUERY PLAN ${sql}`, params);
    plans.push(rows.map((row) => row.detail));
  }
  return plans;
}

/** Every step that reads `alias` uses an index (or the rowid), and nothing sorts all the matches. */
function expectIndexed(plans: string[][], alias: string, index: RegExp) {
  expect(plans.length).toBeGreaterThan(0);
  const all = plans.flat();
  // A sort is allowed only of an arm's own page (one page per event or
  // status, merged): never of the table's matches.
  all.forEach((detail, i) => {
    if (/TEMP B-TREE FOR ORDER BY/.test(detail)) expect(all[i - 1]).toMatch(/^SCAN \(subquery-\d+\)$/);
  });
  for (const detail of all) {
    // A full scan of the table (SCAN a, without an index or a rowid range) is what an unindexed filter does.
    if (new RegExp(`^SCAN ${alias}\\b`).test(detail)) expect(detail).toMatch(/USING (COVERING )?INDEX/);
  }
  expect(all.some((detail) => index.test(detail))).toBe(true);
}

describe('audit filters use an index and stop after one page', () => {
  beforeEach(async () => {
    await fill(3000, (i) => ({
      actor: i % 100 === 0 ? 'operator:cli' : `token:tok_${(i % 7).toString(36)}abc`,
      event: i % 3 === 0 ? 'action.completed' : i % 3 === 1 ? 'action.requested' : 'grant.created',
      subject: { requestId: `req_${i}` },
      payload: { word: i % 500 === 0 ? 'zebra' : 'common', i },
    }));
  });

  it.each([
    ['actor', { actor: 'operator:cli' }, /INDEX audit_by_actor \(actor=\?/],
    ['event', { event: 'action.completed' }, /INDEX audit_by_event \(event=\?/],
    ['event family', { event: 'action' }, /INDEX audit_by_event \(event=\?/],
    ['actor and event', { actor: 'operator:cli', event: 'grant.created' }, /INDEX audit_by_actor_event \(actor=\? AND event=\?/],
    ['time range', { since: '2026-01-01T00:00:00.000Z', until: '2026-01-02T00:00:00.000Z' }, /INDEX audit_by_ts \(ts/],
  ])('the %s filter walks its index', async (_name, query, index) => {
    expectIndexed(await plansOf(h.ws.db, 'audit_log', () => h.ws.audit.search({ ...query, limit: 20 })), 'a', index);
  });

  it('takes a word search page from the full-text index newest first, never the whole match list', async () => {
    const statements = await statementsOf(h.ws.db, () => h.ws.audit.search({ q: 'common', limit: 20 }));
    const fts = statements.filter((s) => /FROM audit_fts/.test(s.sql));
    expect(fts.length).toBeGreaterThan(0);
    // The sort and the limit are inside the FTS query (the index hands its newest matches), and one step is far less than the 2,994 matches.
    for (const s of fts) expect(s.sql).toMatch(/ORDER BY rowid DESC LIMIT \?/);
    expect(Number(fts[0]!.params.at(-1))).toBeLessThan(200);
    const plans = await plansOf(h.ws.db, 'audit_log', () => h.ws.audit.search({ q: 'common', actor: 'operator:cli', limit: 20 }));
    expect(plans.flat().join('\n')).not.toMatch(/TEMP B-TREE FOR ORDER BY/);
  });

  it('pages with a cursor through exactly the entries one unpaged search returns, for words and for filters', async () => {
    for (const query of [{ q: 'common' }, { q: 'zebra' }, { event: 'action' }, { actor: 'operator:cli' }, { q: 'common', actor: 'operator:cli' }]) {
      const whole = (await h.ws.audit.search({ ...query, limit: 500 })).entries.map((e) => e.seq);
      const paged: number[] = [];
      let before: number | undefined;
      for (;;) {
        const page = await h.ws.audit.search({ ...query, limit: 37, ...(before ? { beforeSeq: before } : {}) });
        paged.push(...page.entries.map((e) => e.seq));
        if (page.nextBeforeSeq === null) break;
        before = page.nextBeforeSeq;
        if (paged.length > 500) break;
      }
      expect(paged.slice(0, whole.length)).toEqual(whole);
      expect([...paged].sort((a, b) => b - a)).toEqual(paged);
    }
  });

  it('filters by time: since and until as a seq range of the ts index, checked on every row', async () => {
    h.clock.advance(DAY_MS);
    const middle = new Date(h.clock.now()).toISOString();
    await fill(50, (i) => ({ actor: 'operator:later', event: 'test.later', payload: { i } }));
    h.clock.advance(DAY_MS);
    const end = new Date(h.clock.now()).toISOString();
    await fill(5, (i) => ({ actor: 'operator:latest', event: 'test.latest', payload: { i } }));
    const between = await h.ws.audit.search({ since: middle, until: end, limit: 500 });
    expect(between.entries).toHaveLength(50);
    expect(new Set(between.entries.map((e) => e.actor))).toEqual(new Set(['operator:later']));
    expect((await h.ws.audit.search({ until: middle, limit: 5 })).entries.every((e) => e.ts < middle)).toBe(true);
    expect((await h.ws.audit.search({ since: end, limit: 500 })).entries).toHaveLength(5);
    expect((await h.ws.audit.search({ since: end, until: middle })).entries).toHaveLength(0);
  });
});

describe('request history filters use an index and stop after one page', () => {
  beforeEach(async () => {
    // Synthetic finished history, written straight to the table (the filters read the table, whoever wrote it).
    await h.ws.db.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
      INSERT INTO requests (id, token_id, token_name, target_id, target_name, profile_id, profile_label, connector_id, action, status, reason, input_preview, input_hash, request_fingerprint, created_at, updated_at)
      SELECT 'req_' || i, 'tok_' || (i % 5), 'agent', 'tgt_' || (i % 3), 'cache', 'prf_1', 'default', 'fake', CASE WHEN i % 10 = 0 THEN 'write_thing' ELSE 'echo' END,
             CASE WHEN i % 4 = 0 THEN 'failed' ELSE 'completed' END, 'reason ' || i, '{}', 'h', 'f',
             strftime('%Y-%m-%dT%H:%M:%fZ', '2026-01-01', '+' || i || ' seconds'), strftime('%Y-%m-%dT%H:%M:%fZ', '2026-01-01', '+' || i || ' seconds')
      FROM n`);
  });

  it.each([
    ['status', { status: 'failed' as const }, /INDEX requests_by_status_seq \(status=\?/],
    ['several statuses', { status: ['failed' as const, 'completed' as const] }, /INDEX requests_by_status_seq \(status=\?/],
    ['token', { tokenId: 'tok_1' }, /INDEX requests_by_token \(token_id=\?/],
    ['target', { targetId: 'tgt_2' }, /INDEX requests_by_target \(target_id=\?/],
    ['action', { action: 'write_thing' }, /INDEX requests_by_action \(action=\?/],
    ['time range', { since: '2026-01-01T00:10:00.000Z', until: '2026-01-01T00:20:00.000Z' }, /INDEX requests_by_created \(created_at/],
  ])('the %s filter walks its index', async (_name, filter, index) => {
    expectIndexed(await plansOf(h.ws.db, 'requests', () => h.ws.approvals.list({ ...filter, limit: 20 })), 'requests', index);
  });

  it('filters by time exactly', async () => {
    const page = await h.ws.approvals.list({ since: '2026-01-01T00:10:00.000Z', until: '2026-01-01T00:15:00.000Z', limit: 500 });
    expect(page.requests).toHaveLength(300);
    expect(page.requests.every((r) => r.createdAt >= '2026-01-01T00:10:00.000Z' && r.createdAt < '2026-01-01T00:15:00.000Z')).toBe(true);
    expect(page.nextBeforeSeq).toBeNull();
  });
});

describe('retention at scale', () => {
  it('deletes in short chunks, and other calls get the database between them', async () => {
    await fill(6000, (i) => ({ actor: 'operator:test', event: 'test.old', payload: { i } }));
    h.clock.advance(10 * DAY_MS);
    await fill(10, (i) => ({ actor: 'operator:test', event: 'test.new', payload: { i } }));
    let done = false;
    const pruned = h.ws.audit.prune(new Date(h.clock.now() - DAY_MS).toISOString()).finally(() => {
      done = true;
    });
    // Read the log's size while retention runs: a run that held the database
    // throughout would only ever show the size before or after it.
    const seen = new Set<number>();
    while (!done) seen.add((await h.ws.db.get<{ n: number }>('SELECT count(*) AS n FROM audit_log'))!.n);
    const result = await pruned;
    // The 6,000 and the few the harness wrote while setting up.
    expect(result.deleted).toBeGreaterThanOrEqual(6000);
    expect(result.run.chunks).toBeGreaterThan(2);
    expect([...seen].some((n) => n > 11 && n < 6011)).toBe(true);
    expect(await h.ws.audit.verify()).toMatchObject({ ok: true, checkpoint: { prunedThroughSeq: result.deleted } });
    expect((await h.ws.audit.search({ event: 'test.old' })).entries).toHaveLength(0);
    // The full-text index still has their words, but no search reaches a pruned entry.
    expect((await h.ws.audit.search({ q: 'old' })).entries).toHaveLength(0);
    expect((await h.ws.audit.search({ q: 'new' })).entries).toHaveLength(10);
  });

  it('verifies a log whose retention stopped part-way, and still catches a deletion past its checkpoint', async () => {
    await fill(3000, (i) => ({ actor: 'operator:test', event: 'test.old', payload: { i } }));
    h.clock.advance(10 * DAY_MS);
    await fill(10, (i) => ({ actor: 'operator:test', event: 'test.new', payload: { i } }));
    // What a kill -9 during retention leaves: the checkpoint written (as prune
    // writes it, through the chain), only the first chunk of what it covers deleted.
    const boundary = (await h.ws.db.get<{ seq: number; hash: string }>('SELECT seq, hash FROM audit_log WHERE seq = 3000'))!;
    await h.ws.audit.append({ actor: 'system', event: 'audit.pruned', payload: { prunedThroughSeq: boundary.seq, anchorHash: boundary.hash, deletedEntries: 3000, cutoff: 'x' } });
    await h.ws.db.run('DELETE FROM audit_log WHERE seq <= 700');
    expect(await h.ws.audit.verify()).toMatchObject({ ok: true, checkpoint: { prunedThroughSeq: 3000 } });
    // Deleting past what the checkpoint covers is still caught.
    await h.ws.db.run('DELETE FROM audit_log WHERE seq = 3001');
    expect(await h.ws.audit.verify()).toMatchObject({ ok: false, firstBad: { seq: 3001 } });
  });

  it('finishes an interrupted run on the next one, without a second checkpoint', async () => {
    await fill(3000, (i) => ({ actor: 'operator:test', event: 'test.old', payload: { i } }));
    h.clock.advance(10 * DAY_MS);
    const boundary = (await h.ws.db.get<{ seq: number; hash: string }>('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1'))!;
    await h.ws.audit.append({ actor: 'system', event: 'audit.pruned', payload: { prunedThroughSeq: boundary.seq, anchorHash: boundary.hash, deletedEntries: boundary.seq, cutoff: 'x' } });
    await h.ws.db.run('DELETE FROM audit_log WHERE seq <= 700');
    const run = await h.ws.audit.prune(new Date(h.clock.now() - DAY_MS).toISOString());
    expect(run.checkpoint).toBeNull();
    expect(run.deleted).toBe(boundary.seq - 700);
    expect((await h.ws.db.get<{ first: number }>('SELECT min(seq) AS first FROM audit_log'))!.first).toBe(boundary.seq + 1);
    expect(await h.ws.audit.verify()).toMatchObject({ ok: true, checkpoint: { prunedThroughSeq: boundary.seq } });
  });

  it('prunes request history in chunks through the created_at index', async () => {
    await h.ws.db.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
      INSERT INTO requests (id, token_id, token_name, target_id, target_name, profile_id, profile_label, connector_id, action, status, reason, input_preview, input_hash, request_fingerprint, created_at, updated_at)
      SELECT 'req_' || i, 'tok_1', 'agent', 'tgt_1', 'cache', 'prf_1', 'default', 'fake', 'echo', CASE WHEN i = 7 THEN 'approval_pending' ELSE 'completed' END, '', '{}', 'h', 'f', '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z' FROM n`);
    let done = false;
    const pruned = h.ws.approvals.pruneFinished('2025-06-01T00:00:00.000Z').finally(() => {
      done = true;
    });
    const seen = new Set<number>();
    while (!done) seen.add((await h.ws.db.get<{ n: number }>('SELECT count(*) AS n FROM requests'))!.n);
    expect(await pruned).toBe(2999);
    expect([...seen].some((n) => n > 1 && n < 3000)).toBe(true);
    expect((await h.ws.approvals.list({ status: 'approval_pending' })).requests.map((r) => r.id)).toEqual(['req_7']);
    expect((await h.ws.audit.search({ event: 'history.pruned' })).entries[0]!.payload).toMatchObject({ deletedRequests: 2999 });
  });
});

describe('verify under load', () => {
  it('verifies one snapshot and reports its count and head together while entries are appended', async () => {
    await fill(12_000, (i) => ({ actor: 'operator:test', event: 'test.written', payload: { i, text: 'x'.repeat(50) } }));
    const atStart = h.ws.audit.head();
    const verifying = h.ws.audit.verify({ pageSize: 500 });
    let appended = 0;
    let done = false;
    void verifying.finally(() => {
      done = true;
    });
    while (!done) {
      await h.ws.audit.append({ actor: 'operator:test', event: 'test.during', payload: { appended } });
      appended += 1;
    }
    const report = await verifying;
    expect(appended).toBeGreaterThan(0);
    expect(report).toMatchObject({ ok: true, firstSeq: 1 });
    if (!report.ok) return;
    // The count and the head are of one range: the head committed when verify began.
    expect(report.entries).toBe(report.head.seq - report.firstSeq! + 1);
    expect(report.head.seq).toBeGreaterThanOrEqual(atStart.seq);
    expect(report.head.seq).toBeLessThan(h.ws.audit.head().seq);
    const atHead = await h.ws.db.get<{ hash: string }>('SELECT hash FROM audit_log WHERE seq = ?', [report.head.seq]);
    expect(report.head.hash).toBe(atHead!.hash);
  });
});
