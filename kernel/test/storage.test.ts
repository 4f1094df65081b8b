import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { inlineParams, openSqlCipher, sqlValue, type SqlDb } from '../src/vault/index.js';
import { createHarness, type Harness } from './helpers/kernel.js';
import { tempDir } from './helpers/temp.js';

describe('SQL literals for the batched writer', () => {
  let db: SqlDb;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    const t = await tempDir();
    cleanup = t.cleanup;
    db = await openSqlCipher(`${t.dir}/x.db`, { key: 'Literal-Test-12345', create: true });
    await db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v ANY)');
  });
  afterEach(async () => {
    await db.close();
    await cleanup();
  });

  it('round-trips every value exactly, including quotes, NUL, unicode and bytes', async () => {
    const values: unknown[] = [
      "it's",
      "'); DROP TABLE t; --",
      'line\nbreak\ttab\\backslash',
      'nul\u0000inside',
      '日本語 🚀 \u202e',
      '',
      0,
      -42,
      9007199254740991,
      3.141592653589793,
      1e-300,
      null,
      Buffer.from([0, 1, 2, 255]),
    ];
    const sql = values.map((value, index) => inlineParams('INSERT INTO t (id, v) VALUES (?, ?)', [index, value])).join(';');
    await db.exec(`BEGIN; ${sql}; COMMIT;`);
    const rows = await db.all<{ id: number; v: unknown }>('SELECT id, v FROM t ORDER BY id');
    expect(rows.map((row) => row.v)).toEqual(values.map((value) => (value instanceof Buffer ? expect.anything() : value)));
    expect(Buffer.from(rows[12]!.v as Uint8Array)).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(await db.get("SELECT count(*) AS n FROM sqlite_master WHERE name = 't'")).toEqual({ n: 1 });
  });

  it('refuses values it cannot render and mismatched parameter counts', () => {
    expect(() => sqlValue(Number.NaN)).toThrow();
    expect(() => sqlValue({})).toThrow();
    expect(() => inlineParams('VALUES (?, ?)', [1])).toThrow(/too few/);
    expect(() => inlineParams('VALUES (?)', [1, 2])).toThrow(/2 parameters for 1/);
  });

  it('keeps working past the prepared-statement cache bound', async () => {
    for (let i = 0; i < 300; i += 1) await db.run(`INSERT INTO t (id, v) VALUES (?, ${i})`, [i]);
    expect(await db.get('SELECT count(*) AS n FROM t')).toEqual({ n: 300 });
    expect(await db.get('SELECT v FROM t WHERE id = ?', [5])).toEqual({ v: 5 });
  });
});

describe('group commit', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await createHarness();
  });
  afterEach(async () => h.cleanup());

  it('commits concurrent units together and fails only the unit that breaks', async () => {
    const good = (i: number) => h.ws.audit.commit({ entries: [{ actor: 'system', event: 'test.unit', payload: { i } }] });
    const bad = h.ws.audit.commit({
      statements: [{ sql: "INSERT INTO meta (key, value) VALUES ('vault_key', 'duplicate')", params: [] }],
      entries: [{ actor: 'system', event: 'test.bad' }],
    });
    const results = await Promise.allSettled([good(1), good(2), bad, good(3)]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    const events = (await h.ws.audit.search({ event: 'test' })).entries.map((e) => `${e.event}:${e.payload.i}`);
    expect(events.sort()).toEqual(['test.unit:1', 'test.unit:2', 'test.unit:3']);
    expect((await h.ws.audit.verify()).ok).toBe(true);
  });

  it('keeps the chain intact across hundreds of concurrent audited calls', async () => {
    const f = await h.setup('always_run');
    const outcomes = await Promise.all(
      Array.from({ length: 400 }, (_, i) => h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'echo', input: { text: `n${i}` } })),
    );
    expect(outcomes.every((o) => o.kind === 'request' && o.request.status === 'completed')).toBe(true);
    const report = await h.ws.audit.verify();
    expect(report.ok).toBe(true);
    expect((await h.ws.approvals.list({ q: 'n399' })).requests).toHaveLength(1);
    expect((await h.ws.audit.search({ q: 'n123' })).entries.map((e) => e.event).sort()).toEqual(['action.completed', 'action.started']);
  });
});
