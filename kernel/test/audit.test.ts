import { operatorPrincipal } from '../src/lib/principal.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqlCipher, type SqlDb } from '../src/vault/index.js';
import { createHarness, type Harness } from './helpers/kernel.js';
import { PASSWORD } from './helpers/temp.js';

let h: Harness;
beforeEach(async () => {
  h = await createHarness();
});
afterEach(async () => h.cleanup());

/** Writes n ordinary entries. */
async function fill(n: number) {
  for (let i = 0; i < n; i += 1) await h.ws.audit.append({ actor: 'operator:test', event: 'test.written', payload: { i, word: i % 2 ? 'odd' : 'even' } });
}

/** The tamperer: a separate connection that knows the password, as someone with the file and the password would have. */
async function tamper(fn: (db: SqlDb) => Promise<void>) {
  const raw = await openSqlCipher(h.ws.handle.file, { key: PASSWORD });
  try {
    await fn(raw);
  } finally {
    await raw.close();
  }
}

describe('audit chain', () => {
  it('links every entry to the one before and verifies clean', async () => {
    await fill(5);
    const rows = await h.ws.db.all<{ seq: number; prev_hash: string; hash: string }>('SELECT seq, prev_hash, hash FROM audit_log ORDER BY seq');
    for (let i = 1; i < rows.length; i += 1) expect(rows[i]!.prev_hash).toBe(rows[i - 1]!.hash);
    const report = await h.ws.audit.verify();
    expect(report).toMatchObject({ ok: true, entries: rows.length, firstSeq: 1 });
  });

  it('detects an edited entry', async () => {
    await fill(5);
    await tamper((db) => db.run(`UPDATE audit_log SET payload = '{"i":99,"word":"forged"}' WHERE seq = 4`).then(() => undefined));
    const report = await h.ws.audit.verify();
    expect(report).toMatchObject({ ok: false, firstBad: { seq: 4, reason: expect.stringContaining('edited') } });
  });

  it('detects an edited actor or timestamp', async () => {
    await fill(3);
    await tamper((db) => db.run(`UPDATE audit_log SET actor = 'operator:someone-else' WHERE seq = 2`).then(() => undefined));
    expect(await h.ws.audit.verify()).toMatchObject({ ok: false, firstBad: { seq: 2 } });
  });

  it('detects a deleted entry', async () => {
    await fill(5);
    await tamper((db) => db.run('DELETE FROM audit_log WHERE seq = 3').then(() => undefined));
    expect(await h.ws.audit.verify()).toMatchObject({ ok: false, firstBad: { seq: 3, reason: expect.stringContaining('deleted') } });
  });

  it('detects an inserted entry', async () => {
    await fill(5);
    // Make room by shifting the tail up one, then slip a forged entry into the gap.
    await tamper(async (db) => {
      await db.exec('UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 4; UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1004;');
      const prev = await db.get<{ hash: string }>('SELECT hash FROM audit_log WHERE seq = 3');
      await db.run(`INSERT INTO audit_log (seq, ts, actor, event, subject, payload, prev_hash, hash) VALUES (4, '2026-01-01T00:00:00.000Z', 'operator:x', 'grant.created', '{}', '{}', ?, ?)`, [
        prev!.hash,
        'f'.repeat(64),
      ]);
    });
    const report = await h.ws.audit.verify();
    expect(report.ok).toBe(false);
    if (!report.ok) expect(report.firstBad.seq).toBe(4);
  });

  it('detects reordered entries', async () => {
    await fill(5);
    await tamper(async (db) => {
      await db.exec(`
        UPDATE audit_log SET seq = -1 WHERE seq = 3;
        UPDATE audit_log SET seq = 3 WHERE seq = 4;
        UPDATE audit_log SET seq = 4 WHERE seq = -1;`);
    });
    expect(await h.ws.audit.verify()).toMatchObject({ ok: false, firstBad: { seq: 3 } });
  });

  it('detects entries cut off the end of the log', async () => {
    await fill(5);
    const head = h.ws.audit.head();
    await tamper((db) => db.run('DELETE FROM audit_log WHERE seq >= ?', [head.seq - 1]).then(() => undefined));
    const report = await h.ws.audit.verify();
    expect(report).toMatchObject({ ok: false, firstBad: { seq: head.seq - 1, reason: expect.stringContaining('cut off the end') } });
  });

  it('verifies a large log on worker threads without blocking the event loop', async () => {
    await h.ws.db.write(async (tx) => {
      for (let i = 0; i < 12_000; i += 1) await h.ws.audit.record(tx, { actor: 'system', event: 'test.bulk', payload: { i, text: `entry number ${i}` } });
    });
    let ticks = 0;
    const timer = setInterval(() => (ticks += 1), 5);
    const started = Date.now();
    const report = await h.ws.audit.verify({ useWorkers: true, pageSize: 1000 });
    const elapsed = Date.now() - started;
    clearInterval(timer);
    expect(report.ok).toBe(true);
    expect(report.entries).toBeGreaterThan(12_000);
    // The loop kept turning throughout: at least a third of the 5 ms ticks that fit in the run happened.
    expect(ticks).toBeGreaterThanOrEqual(Math.floor(elapsed / 5 / 3));
    // And the worker path finds tampering too.
    await tamper((db) => db.run(`UPDATE audit_log SET payload = '{"i":-1}' WHERE seq = 7777`).then(() => undefined));
    expect(await h.ws.audit.verify({ useWorkers: true, pageSize: 1000 })).toMatchObject({ ok: false, firstBad: { seq: 7777 } });
  });
});

describe('write-ahead and fail-closed', () => {
  it('does not run the action when the audit insert fails, and says why', async () => {
    const f = await h.setup('always_run');
    // A real failure of the insert, from inside SQLite: the kind of thing a full disk or a broken file causes.
    await h.ws.db.exec(`CREATE TRIGGER audit_fails BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END;`);
    const error = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'echo', input: { text: 'x' } }).catch((e) => e);
    expect(error.code).toBe('audit_unavailable');
    expect(error.message).toMatch(/audit log could not be written, so the action was not run/);
    expect(h.executor.calls).toHaveLength(0);
    // Nothing half-written: no request row without its intent entry.
    expect((await h.ws.approvals.list()).requests).toHaveLength(0);
  });

  it('keeps a pending request pending when the approval cannot be audited', async () => {
    const f = await h.setup('approval_required');
    const outcome = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'write_thing', input: { value: 'x' } });
    if (outcome.kind !== 'request') throw new Error();
    await h.ws.db.exec(`CREATE TRIGGER audit_fails BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END;`);
    await expect(h.kernel.pipeline.runApproved(operatorPrincipal(h.ws.name, 'test-session', 'operator:test'), outcome.request.id)).rejects.toMatchObject({ code: 'audit_unavailable' });
    expect(h.executor.calls).toHaveLength(0);
    expect((await h.ws.approvals.require(outcome.request.id)).status).toBe('approval_pending');
    await h.ws.db.exec('DROP TRIGGER audit_fails');
    expect((await h.kernel.pipeline.runApproved(operatorPrincipal(h.ws.name, 'test-session', 'operator:test'), outcome.request.id)).status).toBe('completed');
    expect((await h.ws.audit.verify()).ok).toBe(true);
  });

  it('rolls back a configuration change whose audit entry cannot be written', async () => {
    await h.ws.db.exec(`CREATE TRIGGER audit_fails BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END;`);
    await expect(h.ws.tokens.create({ name: 'x' }, 'operator:test')).rejects.toThrow(/disk I\/O error/);
    expect(await h.ws.tokens.list()).toEqual([]);
    await h.ws.db.exec('DROP TRIGGER audit_fails');
    await h.ws.tokens.create({ name: 'y' }, 'operator:test');
    expect((await h.ws.audit.verify()).ok).toBe(true);
  });
});

describe('audit search', () => {
  it('finds entries by full-text search, event family and subject', async () => {
    const f = await h.setup('always_run');
    await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'echo', input: { text: 'the purple elephant' } });
    const hits = await h.ws.audit.search({ q: 'purple elephant' });
    expect(hits.entries.map((e) => e.event)).toEqual(['action.completed', 'action.started']);
    // Whole words by default (a prefix of a common word costs every match, docs/performance.md); a typed `*` makes a prefix.
    expect((await h.ws.audit.search({ q: 'purple eleph' })).entries).toEqual([]);
    expect((await h.ws.audit.search({ q: 'purple eleph*' })).entries.map((e) => e.event)).toEqual(['action.completed', 'action.started']);
    expect((await h.ws.audit.search({ event: 'grant' })).entries.map((e) => e.event)).toEqual(['grant.created']);
    expect((await h.ws.audit.search({ subjectId: f.tokenId })).entries.length).toBeGreaterThanOrEqual(3);
    // Operators type anything; it is searched for, never parsed as FTS syntax.
    expect((await h.ws.audit.search({ q: 'NEAR( "unbalanced * ^' })).entries).toEqual([]);
  });

  it('pages newest first', async () => {
    await fill(7);
    const first = await h.ws.audit.search({ event: 'test.written', limit: 3 });
    expect(first.entries.map((e) => e.payload.i)).toEqual([6, 5, 4]);
    const second = await h.ws.audit.search({ event: 'test.written', limit: 3, beforeSeq: first.nextBeforeSeq! });
    expect(second.entries.map((e) => e.payload.i)).toEqual([3, 2, 1]);
  });
});

describe('retention', () => {
  it('prunes old entries behind a checkpoint and the chain still verifies', async () => {
    await fill(5);
    h.clock.advance(10 * 86_400_000);
    await fill(3);
    const cutoff = new Date(h.clock.now() - 86_400_000).toISOString();
    const { deleted, checkpoint } = await h.ws.audit.prune(cutoff);
    expect(deleted).toBeGreaterThanOrEqual(5);
    expect(checkpoint!.event).toBe('audit.pruned');
    const report = await h.ws.audit.verify();
    expect(report).toMatchObject({ ok: true, checkpoint: { prunedThroughSeq: deleted, atSeq: checkpoint!.seq } });
    // A second round keeps working.
    h.clock.advance(10 * 86_400_000);
    await fill(2);
    await h.ws.audit.prune(new Date(h.clock.now() - 86_400_000).toISOString());
    expect((await h.ws.audit.verify()).ok).toBe(true);
  });

  it('notices entries deleted outside retention', async () => {
    await fill(5);
    await tamper((db) => db.run('DELETE FROM audit_log WHERE seq <= 2').then(() => undefined));
    expect(await h.ws.audit.verify()).toMatchObject({ ok: false, firstBad: { seq: 2, reason: expect.stringContaining('no retention checkpoint') } });
  });

  it('runs on the schedule settings give and prunes history and messages too', async () => {
    const f = await h.setup('always_run');
    await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'echo', input: { text: 'old' } });
    await h.ws.messages.sendToAgent({ tokenId: f.tokenId, body: 'old note' }, 'operator:test');
    await h.ws.settings.update({ auditRetentionDays: 30, historyRetentionDays: 7, messageRetentionDays: 7 }, 'operator:test');
    h.clock.advance(40 * 86_400_000);
    const report = await h.ws.runRetention();
    expect(report.historyPruned).toBe(1);
    expect(report.messagesPruned).toBe(1);
    expect(report.auditPruned).toBeGreaterThan(5);
    expect((await h.ws.audit.verify()).ok).toBe(true);
  });
});
