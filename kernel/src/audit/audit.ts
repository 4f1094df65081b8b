import { auditEntryHash, GENESIS_HASH, canonicalJson } from '../lib/canonical.mjs';
import { isoAt, type Clock } from '../lib/clock.js';
import { KernelError } from '../lib/errors.js';
import { toFtsQuery } from '../lib/fts.js';
import { Where } from '../lib/where.js';
import { createDeferredIndexer } from '../lib/deferred-indexer.js';
import { runInChunks, type ChunkedRun } from '../lib/chunked.js';
import { Mutex } from '../lib/mutex.js';
import { inlineParams, sqlValue, type SqlDb, type SqlQueries, type SqlTx } from '../vault/index.js';
import type { Redactor } from '../redaction/index.js';
import type { AuditRow, AuditVerifyPool, PageResult } from './verify-pool.js';

/** `token:<token id>`, as the pipeline and the MCP surface write it. */
const TOKEN_ACTOR = /^token:tok_[a-z0-9]+$/;

/** Ids an entry is about; searchable, shown as links in the UI. */
export type AuditSubject = Partial<Record<'requestId' | 'tokenId' | 'targetId' | 'profileId' | 'grantId' | 'ruleId' | 'messageId' | 'database' | 'sessionId', string>>;

export interface AuditEntryInput {
  /** Who did it: `operator:<session>`, `token:<id>`, `system`, `cli`. */
  actor: string;
  /** `noun.pastTense`, e.g. `grant.created`, `action.completed`. */
  event: string;
  subject?: AuditSubject;
  payload?: Record<string, unknown>;
}

export interface AuditEntry {
  seq: number;
  ts: string;
  actor: string;
  event: string;
  subject: AuditSubject;
  payload: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

export interface AuditHead {
  seq: number;
  hash: string;
}

export type VerifyReport =
  | { ok: true; entries: number; firstSeq: number | null; head: AuditHead; checkpoint: { prunedThroughSeq: number; atSeq: number } | null }
  | { ok: false; entries: number; firstBad: { seq: number; reason: string } };

export interface AuditSearch {
  q?: string;
  event?: string;
  actor?: string;
  subjectId?: string;
  since?: string;
  until?: string;
  /** Entries with seq lower than this (pagination, newest first). */
  beforeSeq?: number;
  limit?: number;
}

/** What one retention run of the audit did. */
export interface PruneResult {
  deleted: number;
  checkpoint: AuditEntry | null;
  /** The chunks it deleted in and the longest one held the database (the benchmark reports it). */
  run: ChunkedRun;
}

/** A statement of a commit unit, with positional parameters. */
export interface UnitStatement {
  sql: string;
  params: readonly unknown[];
}

/**
 * What the group-commit writer commits atomically: some statements and the
 * audit entries that record them. Concurrent units share one transaction.
 */
export interface CommitUnit {
  statements?: UnitStatement[];
  entries: AuditEntryInput[];
}

export interface Audit {
  /**
   * Commits a unit through the group-commit writer and resolves once it is
   * durable (committed). Units submitted while a commit is in flight are
   * committed together in the next transaction, sent to SQLite as one exec:
   * under load many calls share each commit, idle it is one round trip. If a
   * shared commit fails, each unit is retried on its own so one bad unit fails
   * only itself; a unit's promise rejects only if its own commit failed.
   */
  commit(unit: CommitUnit): Promise<void>;
  /** Appends an entry inside the caller's transaction; it commits or rolls back with the caller's change. */
  record(tx: SqlTx, entry: AuditEntryInput): Promise<AuditEntry>;
  /** Appends an entry in its own transaction. Resolves only once it is committed. */
  append(entry: AuditEntryInput): Promise<AuditEntry>;
  search(query: AuditSearch): Promise<{ entries: AuditEntry[]; nextBeforeSeq: number | null }>;
  /**
   * Verifies the chain as it stood when verify began: the head committed at
   * that moment fixes the range, and the report's count and head are both of
   * that range, however many entries are appended meanwhile.
   */
  verify(options?: { useWorkers?: boolean; pageSize?: number }): Promise<VerifyReport>;
  /** Deletes entries older than the cutoff and appends a checkpoint entry the rest of the chain continues from. */
  prune(cutoffIso: string, actor?: string): Promise<PruneResult>;
  head(): AuditHead;
}

export const CHECKPOINT_EVENT = 'audit.pruned';
/** Above this many entries, verify hashes pages on piscina worker threads so the gateway keeps answering. */
export const WORKER_THRESHOLD_ENTRIES = 5_000;
/** Rows per verify page: one page is one short read (about 5 ms) and a bounded message to a worker. */
const DEFAULT_PAGE_SIZE = 500;
/** Search pages are for people and UIs; 500 rows is more than a screen and bounds the response size. */
const MAX_SEARCH_LIMIT = 500;

type StoredRow = AuditRow;

function fromRow(row: StoredRow): AuditEntry {
  return {
    seq: row.seq,
    ts: row.ts,
    actor: row.actor,
    event: row.event,
    subject: JSON.parse(row.subject) as AuditSubject,
    payload: JSON.parse(row.payload) as Record<string, unknown>,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

export async function createAudit(deps: {
  db: SqlDb;
  clock: Clock;
  redactor: () => Redactor;
  pool: AuditVerifyPool;
  log?: (message: string, error?: unknown) => void;
}): Promise<Audit> {
  const { db, clock, pool } = deps;
  // Full-text index of the log, caught up to `indexedSeq` (also kept in meta).
  let indexedSeq = Number((await db.get<{ value: string }>("SELECT value FROM meta WHERE key = 'audit_fts_seq'"))?.value ?? 0);
  /** Rows per indexing transaction: big enough to amortise FTS segment writes, small enough to keep writers waiting briefly. */
  const INDEX_CHUNK = 1000;
  const indexer = createDeferredIndexer({
    db,
    chunkRows: INDEX_CHUNK,
    ...(deps.log ? { log: deps.log } : {}),
    async indexChunk(tx) {
      const range = await tx.get<{ hi: number | null; n: number }>(
        'SELECT max(seq) AS hi, count(*) AS n FROM (SELECT seq FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?)',
        [indexedSeq, INDEX_CHUNK],
      );
      if (!range?.hi) return 0;
      await tx.run('INSERT INTO audit_fts (rowid, event, actor, subject, payload) SELECT seq, event, actor, subject, payload FROM audit_log WHERE seq > ? AND seq <= ?', [
        indexedSeq,
        range.hi,
      ]);
      await tx.run("INSERT INTO meta (key, value) VALUES ('audit_fts_seq', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [String(range.hi)]);
      const hi = range.hi;
      tx.afterCommit(() => {
        indexedSeq = Math.max(indexedSeq, hi);
      });
      return range.n;
    },
  });
  const last = await db.get<{ seq: number; hash: string; ts: string }>('SELECT seq, hash, ts FROM audit_log ORDER BY seq DESC LIMIT 1');
  let committed: AuditHead = last ? { seq: last.seq, hash: last.hash } : { seq: 0, hash: GENESIS_HASH };
  // Timestamps never decrease along the chain (a clock stepped back repeats
  // the newest time instead), so a time range is a seq range: search and
  // retention find its ends with one seek of the ts index each.
  let lastTs = last?.ts ?? '';
  // Heads of transactions still open: several record() calls in one
  // transaction chain onto each other, and the kernel-wide head moves only
  // when the transaction commits (a rollback leaves it where it was).
  const pendingHeads = new WeakMap<SqlTx, AuditHead>();

  /**
   * Builds the chained entry that follows `prev` (redacted; subject and
   * payload as canonical JSON text, which is what is stored and hashed) and
   * its INSERT parameters.
   */
  const chain = (prev: AuditHead, input: AuditEntryInput): { head: AuditHead; params: unknown[]; toEntry: () => AuditEntry } => {
    const redactor = deps.redactor();
    const now = isoAt(clock.now());
    lastTs = now > lastTs ? now : lastTs;
    const parts = {
      seq: prev.seq + 1,
      ts: lastTs,
      // A token actor is the kernel's own id (never a secret), and redacting it
      // ("token:…" looks like an assignment to the built-in rules) would hide
      // who acted and break searching by actor. Other actors are redacted.
      actor: TOKEN_ACTOR.test(input.actor) ? input.actor : redactor.text(input.actor),
      event: input.event,
      subjectText: canonicalJson(input.subject ?? {}),
      payloadText: canonicalJson(redactor.value(input.payload ?? {})),
    };
    const hash = auditEntryHash(prev.hash, parts);
    return {
      head: { seq: parts.seq, hash },
      params: [parts.seq, parts.ts, parts.actor, parts.event, parts.subjectText, parts.payloadText, prev.hash, hash],
      toEntry: () => ({
        seq: parts.seq,
        ts: parts.ts,
        actor: parts.actor,
        event: parts.event,
        subject: JSON.parse(parts.subjectText) as AuditSubject,
        payload: JSON.parse(parts.payloadText) as Record<string, unknown>,
        prevHash: prev.hash,
        hash,
      }),
    };
  };
  const INSERT_ENTRY = 'INSERT INTO audit_log (seq, ts, actor, event, subject, payload, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)';
  // The recorded head lets verify notice entries cut off the end of the log.
  const SET_HEAD = "INSERT INTO meta (key, value) VALUES ('audit_head', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value";

  const record = async (tx: SqlTx, input: AuditEntryInput): Promise<AuditEntry> => {
    const prev = pendingHeads.get(tx) ?? committed;
    const { head, params, toEntry } = chain(prev, input);
    await tx.run(INSERT_ENTRY, params);
    await tx.run(SET_HEAD, [canonicalJson(head)]);
    pendingHeads.set(tx, head);
    tx.afterCommit(() => {
      if (head.seq > committed.seq) committed = head;
      indexer.schedule();
    });
    return toEntry();
  };

  // ---- group commit -------------------------------------------------------
  interface Queued {
    unit: CommitUnit;
    resolve: () => void;
    reject: (error: unknown) => void;
  }
  const queue: Queued[] = [];
  let flushing = false;

  /** One transaction's SQL for these units, chained from `from`; nothing is sent yet. */
  const buildBatch = (units: Queued[], from: AuditHead) => {
    let head = from;
    const parts: string[] = ['BEGIN IMMEDIATE;'];
    for (const { unit } of units) {
      for (const statement of unit.statements ?? []) parts.push(`${inlineParams(statement.sql, statement.params)};`);
      for (const input of unit.entries) {
        const built = chain(head, input);
        parts.push(`${inlineParams(INSERT_ENTRY, built.params)};`);
        head = built.head;
      }
    }
    parts.push(`${SET_HEAD.replace('?', sqlValue(canonicalJson(head)))};`, 'COMMIT;');
    return { sql: parts.join('\n'), head };
  };

  const commitBatch = async (q: SqlQueries, units: Queued[]): Promise<void> => {
    let built: ReturnType<typeof buildBatch>;
    try {
      built = buildBatch(units, committed);
      await q.exec(built.sql);
    } catch (error) {
      await q.exec('ROLLBACK').catch(() => undefined);
      if (units.length === 1) {
        units[0]!.reject(error);
        return;
      }
      // Retry alone so the failure lands only on the unit that caused it.
      for (const queued of units) await commitBatch(q, [queued]);
      return;
    }
    committed = built.head;
    indexer.schedule();
    for (const queued of units) queued.resolve();
  };

  /** Largest group commit: bounds the size of one exec and the latency of its first unit. */
  const MAX_BATCH_UNITS = 256;
  const flush = async () => {
    try {
      while (queue.length > 0) {
        const units = queue.splice(0, MAX_BATCH_UNITS);
        await db.exclusive((q) => commitBatch(q, units)).catch((error: unknown) => {
          for (const queued of units) queued.reject(error);
        });
      }
    } finally {
      flushing = false;
    }
  };

  const commit = (unit: CommitUnit): Promise<void> =>
    new Promise((resolve, reject) => {
      queue.push({ unit, resolve, reject });
      if (!flushing) {
        flushing = true;
        // Gather the units submitted in this same tick into the first commit.
        queueMicrotask(() => void flush());
      }
    });

  /** Verify and retention take turns: retention deletes the start of the range verify reads. */
  const maintenance = new Mutex();

  /**
   * Finds the checkpoint the remaining chain continues from when the oldest
   * entries are gone. Normally its prunedThroughSeq is exactly firstSeq - 1;
   * a retention run interrupted part-way (its checkpoint written, some of the
   * entries it covers not yet deleted) leaves entries the checkpoint already
   * accounts for, and the chain is verified from the checkpoint's anchor on.
   */
  const findCheckpoint = async (firstSeq: number, headSeq: number) => {
    const rows = await db.all<StoredRow>('SELECT * FROM audit_log WHERE event = ? AND seq <= ? ORDER BY seq DESC', [CHECKPOINT_EVENT, headSeq]);
    let best: { prunedThroughSeq: number; atSeq: number; anchorHash: string } | undefined;
    for (const row of rows) {
      try {
        const payload = JSON.parse(row.payload) as { prunedThroughSeq?: unknown; anchorHash?: unknown };
        const through = payload.prunedThroughSeq;
        if (typeof through !== 'number' || typeof payload.anchorHash !== 'string' || through < firstSeq - 1 || through >= row.seq) continue;
        if (!best || through < best.prunedThroughSeq) best = { prunedThroughSeq: through, atSeq: row.seq, anchorHash: payload.anchorHash };
      } catch {
        // An unparsable checkpoint is caught by the hash check of the chain.
      }
    }
    return best;
  };

  /**
   * Pages of the chain in flight to the hashing workers at once: enough to
   * keep two workers busy while the next page is read, few enough that
   * memory stays at a few pages (DEFAULT_PAGE_SIZE rows each) at any log size.
   */
  const MAX_PAGES_IN_FLIGHT = 8;

  const verifyRange = async (options: { useWorkers?: boolean; pageSize?: number }): Promise<VerifyReport> => {
    const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
    // The snapshot: the head committed now, and the head recorded with it,
    // read together under the connection lock (no commit is half done). Only
    // entries up to this head are read, counted and reported.
    const start = await db.exclusive(async (q) => {
      const recorded = await q.get<{ value: string }>("SELECT value FROM meta WHERE key = 'audit_head'");
      const first = await q.get<{ first: number | null }>('SELECT min(seq) AS first FROM audit_log');
      return {
        head: committed,
        recordedHead: recorded ? (JSON.parse(recorded.value) as AuditHead) : { seq: 0, hash: GENESIS_HASH },
        firstSeq: first?.first ?? null,
      };
    });
    const snapshotHead = start.recordedHead.seq > start.head.seq ? start.recordedHead : start.head;
    let entries = 0;
    const bad = (seq: number, reason: string): VerifyReport => ({ ok: false, entries, firstBad: { seq, reason } });

    if (start.firstSeq === null || start.firstSeq > snapshotHead.seq) {
      if (snapshotHead.seq > 0) return bad(1, `the log is empty but entries up to seq ${snapshotHead.seq} were recorded (entries were deleted)`);
      return { ok: true, entries: 0, firstSeq: null, head: { seq: 0, hash: GENESIS_HASH }, checkpoint: null };
    }
    const useWorkers = options.useWorkers ?? snapshotHead.seq - start.firstSeq + 1 > WORKER_THRESHOLD_ENTRIES;

    let firstSeq = start.firstSeq;
    let expectedPrev: string;
    let checkpoint: { prunedThroughSeq: number; atSeq: number } | null = null;
    if (firstSeq === 1) {
      expectedPrev = GENESIS_HASH;
    } else {
      // The oldest entries were pruned: a checkpoint entry must name the hash
      // the remaining chain continues from. The checkpoint is itself part of
      // the chain verified below, so it cannot be forged without detection.
      const found = await findCheckpoint(firstSeq, snapshotHead.seq);
      if (!found) {
        return bad(firstSeq - 1, `entries before seq ${firstSeq} are missing and no retention checkpoint accounts for them (entries were deleted)`);
      }
      expectedPrev = found.anchorHash;
      firstSeq = found.prunedThroughSeq + 1;
      checkpoint = { prunedThroughSeq: found.prunedThroughSeq, atSeq: found.atSeq };
    }

    let afterSeq = firstSeq - 1;
    let prevHash = expectedPrev;
    let prevSeq = firstSeq - 1;
    let lastRow: { seq: number; hash: string } | undefined;
    const inFlight: Array<Promise<PageResult>> = [];
    const failures: Array<{ seq: number; reason: string }> = [];
    let linkFailure: { seq: number; reason: string } | undefined;
    const settleOldest = async () => {
      const result = await inFlight.shift()!;
      if (result.badSeq !== null) failures.push({ seq: result.badSeq, reason: result.reason ?? 'its content does not match its hash' });
    };
    while (afterSeq < snapshotHead.seq && failures.length === 0) {
      const rows = await db.all<StoredRow>('SELECT * FROM audit_log WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?', [afterSeq, snapshotHead.seq, pageSize]);
      if (rows.length === 0) break;
      entries += rows.length;
      inFlight.push(pool.verifyPage(rows, useWorkers));
      for (const row of rows) {
        if (!linkFailure) {
          const expectedSeq = prevSeq + 1;
          if (row.seq !== expectedSeq) {
            linkFailure = { seq: expectedSeq, reason: `seq ${expectedSeq} is missing (the entry was deleted)` };
          } else if (row.prev_hash !== prevHash) {
            linkFailure = {
              seq: row.seq,
              reason: 'it does not continue from the entry before it (an entry was deleted, inserted or moved here)',
            };
          }
        }
        prevHash = row.hash;
        prevSeq = row.seq;
      }
      const tail = rows[rows.length - 1]!;
      lastRow = { seq: tail.seq, hash: tail.hash };
      afterSeq = tail.seq;
      // Bounded memory: at most MAX_PAGES_IN_FLIGHT pages are held at once.
      if (inFlight.length >= MAX_PAGES_IN_FLIGHT) await settleOldest();
      if (!useWorkers) await new Promise((resolve) => setImmediate(resolve));
    }
    while (inFlight.length > 0) await settleOldest();
    if (linkFailure) failures.push(linkFailure);
    if (failures.length > 0) {
      failures.sort((a, b) => a.seq - b.seq);
      return bad(failures[0]!.seq, failures[0]!.reason);
    }
    if (!lastRow) return bad(firstSeq, `the log ends before seq ${firstSeq} but entries up to seq ${snapshotHead.seq} were written (entries were cut off the end)`);
    if (lastRow.seq < snapshotHead.seq) {
      return bad(lastRow.seq + 1, `the log ends at seq ${lastRow.seq} but entries up to seq ${snapshotHead.seq} were written (entries were cut off the end)`);
    }
    if (lastRow.hash !== snapshotHead.hash) {
      return bad(lastRow.seq, 'the newest entry is not the one that was written (the end of the log was replaced)');
    }
    return { ok: true, entries, firstSeq, head: lastRow, checkpoint };
  };
  const verify = (options: { useWorkers?: boolean; pageSize?: number } = {}) => maintenance.run(() => verifyRange(options));

  // ---- search ------------------------------------------------------------

  /**
   * The seq range a time range covers, found with one seek of the ts index
   * per end (timestamps never decrease along seq, see chain()). Null when
   * no entry falls in it.
   */
  const seqRangeOf = async (since: string | undefined, until: string | undefined): Promise<{ from: number; to: number } | null> => {
    let from = 1;
    let to = Number.MAX_SAFE_INTEGER;
    if (since) {
      const row = await db.get<{ seq: number }>('SELECT seq FROM audit_log WHERE ts >= ? ORDER BY ts, seq LIMIT 1', [since]);
      if (!row) return null;
      from = row.seq;
    }
    if (until) {
      const row = await db.get<{ seq: number }>('SELECT seq FROM audit_log WHERE ts < ? ORDER BY ts DESC, seq DESC LIMIT 1', [until]);
      if (!row) return null;
      to = row.seq;
    }
    return from <= to ? { from, to } : null;
  };

  /**
   * The event names of a family (`grant` -> grant.created, grant.deleted...),
   * read by skipping through the event index one distinct name at a time:
   * a few seeks, however many entries each event has.
   */
  const eventsOfFamily = async (family: string): Promise<string[]> => {
    // '/' is the character after '.', so [family., family/) is every name with the prefix.
    const rows = await db.all<{ event: string }>(
      `WITH RECURSIVE names(event) AS (
         SELECT (SELECT min(event) FROM audit_log WHERE event >= ? AND event < ?)
         UNION ALL
         SELECT (SELECT min(event) FROM audit_log WHERE event > names.event AND event < ?) FROM names WHERE names.event IS NOT NULL
       ) SELECT event FROM names WHERE event IS NOT NULL`,
      [`${family}.`, `${family}/`, `${family}/`],
    );
    return [family, ...rows.map((row) => row.event)];
  };

  /** Most FTS rowids read per step of a word search: a step is one short hold of the connection. */
  const MAX_FTS_STEP = 4096;

  const search = async (query: AuditSearch): Promise<{ entries: AuditEntry[]; nextBeforeSeq: number | null }> => {
    await indexer.catchUp();
    const limit = Math.min(Math.max(query.limit ?? 100, 1), MAX_SEARCH_LIMIT);
    const want = limit + 1;
    const none = { entries: [], nextBeforeSeq: null };
    const range = await seqRangeOf(query.since, query.until);
    if (!range) return none;
    const upper = Math.min(range.to, (query.beforeSeq ?? Number.MAX_SAFE_INTEGER) - 1);
    // Never below the first live entry: the FTS index still holds pruned ones (see prune).
    const firstLive = (await db.get<{ first: number | null }>('SELECT min(seq) AS first FROM audit_log'))?.first ?? 1;
    const lower = Math.max(range.from, firstLive);
    if (upper < lower) return none;

    const fts = query.q ? toFtsQuery(query.q) : undefined;
    const subjectFts = query.subjectId ? `subject : "${query.subjectId.replace(/"/g, '""')}"` : undefined;
    const match = [fts, subjectFts].filter(Boolean).join(' AND ');
    const events = query.event ? (query.event.includes('.') ? [query.event] : await eventsOfFamily(query.event)) : undefined;

    // The conditions every row is checked against. The time bounds are also
    // checked on the row (with + so the planner walks seq, not ts).
    const filters = (event: string | undefined) =>
      new Where()
        .add('a.event = ?', event)
        .add('a.actor = ?', query.actor)
        .add('+a.ts >= ?', query.since)
        .add('+a.ts < ?', query.until)
        .add('a.seq >= ?', lower)
        .add('a.seq <= ?', upper);

    let rows: StoredRow[];
    if (match) {
      // Words: the full-text index hands its matches newest first, a step at
      // a time (ORDER BY rowid DESC LIMIT inside FTS5), and only those rows
      // are read and filtered; the page is full long before a common word's
      // whole match list would have been built.
      rows = [];
      let below = upper + 1;
      let step = Math.min(Math.max(want, 64), MAX_FTS_STEP);
      const where = filters(undefined).in('a.event', events ?? []);
      for (;;) {
        const ids = await db.all<{ rowid: number }>('SELECT rowid FROM audit_fts WHERE audit_fts MATCH ? AND rowid < ? AND rowid >= ? ORDER BY rowid DESC LIMIT ?', [
          match,
          below,
          lower,
          step,
        ]);
        if (ids.length === 0) break;
        const found = await db.all<StoredRow>(
          `SELECT a.* FROM audit_log a ${where.toString() ? `${where} AND` : 'WHERE'} a.seq IN (SELECT value FROM json_each(?)) ORDER BY a.seq DESC`,
          [...where.params, JSON.stringify(ids.map((id) => id.rowid))],
        );
        rows.push(...found);
        if (rows.length >= want || ids.length < step) break;
        below = ids[ids.length - 1]!.rowid;
        step = Math.min(step * 4, MAX_FTS_STEP);
      }
      rows = rows.slice(0, want);
    } else {
      // One arm per event name, each walking its index newest first and
      // stopping after a page; the arms are merged and cut to one page.
      const arms = (events ?? [undefined]).map((event) => {
        const where = filters(event);
        const indexed = event !== undefined && query.actor ? ' INDEXED BY audit_by_actor_event' : '';
        return { sql: `SELECT * FROM (SELECT a.* FROM audit_log a${indexed} ${where} ORDER BY a.seq DESC LIMIT ?)`, params: [...where.params, want] };
      });
      rows = await db.all<StoredRow>(`${arms.map((arm) => arm.sql).join(' UNION ALL ')} ORDER BY seq DESC LIMIT ?`, [...arms.flatMap((arm) => arm.params), want]);
      // (With both an actor and an event, the planner is told to use their
      // joint index: left alone it may pick the event's, and walk every entry
      // of a common event to find a rare actor's.)
    }
    const page = rows.slice(0, limit).map(fromRow);
    return { entries: page, nextBeforeSeq: rows.length > limit ? page[page.length - 1]!.seq : null };
  };

  // ---- retention ---------------------------------------------------------

  const SET_FTS_SEQ = "INSERT INTO meta (key, value) VALUES ('audit_fts_seq', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value";

  /**
   * Deletes entries older than the cutoff, leaving the chain verifiable: the
   * checkpoint entry (which names the hash the rest continues from) is
   * written first, then the entries it covers are deleted oldest first in
   * short chunks (runInChunks), so no step holds the database more than a
   * few milliseconds at any log size. A run interrupted part-way is finished
   * by the next one; verify accepts the entries its checkpoint covers.
   */
  const prune = async (cutoffIso: string, actor: string): Promise<PruneResult> => {
    // Both lookups are index seeks (audit_by_ts, audit_by_event), never a scan.
    const boundary = await db.get<{ seq: number; hash: string }>('SELECT seq, hash FROM audit_log WHERE ts < ? ORDER BY ts DESC, seq DESC LIMIT 1', [cutoffIso]);
    const latest = await db.get<{ payload: string }>('SELECT payload FROM audit_log WHERE event = ? ORDER BY seq DESC LIMIT 1', [CHECKPOINT_EVENT]);
    const coveredSeq = latest ? Number((JSON.parse(latest.payload) as { prunedThroughSeq?: unknown }).prunedThroughSeq ?? 0) || 0 : 0;
    let checkpoint: AuditEntry | null = null;
    let through = coveredSeq;
    if (boundary && boundary.seq > coveredSeq) {
      checkpoint = await db.write(async (tx) => {
        const first = await tx.get<{ first: number | null }>('SELECT min(seq) AS first FROM audit_log');
        return record(tx, {
          actor,
          event: CHECKPOINT_EVENT,
          payload: {
            prunedThroughSeq: boundary.seq,
            anchorHash: boundary.hash,
            deletedEntries: boundary.seq - Math.min(first?.first ?? boundary.seq, boundary.seq) + 1,
            cutoff: cutoffIso,
          },
        });
      });
      through = boundary.seq;
    }
    const run = await runInChunks({
      db,
      async step(tx, maxRows) {
        const first = await tx.get<{ first: number | null }>('SELECT min(seq) AS first FROM audit_log');
        if (first?.first === null || first?.first === undefined || first.first > through) return 0;
        const hi = Math.min(first.first + maxRows - 1, through);
        // The full-text index keeps the pruned rows' entries: deleting from a
        // contentless FTS5 table writes tombstones whose cost at commit grows
        // with the segment (50-500 ms per chunk at 20k entries, measured), and
        // searches never reach them (they start at the first live seq, and a
        // seq is never reused). docs/performance.md says what this costs.
        const deleted = await tx.run('DELETE FROM audit_log WHERE seq >= ? AND seq <= ?', [first.first, hi]);
        if (indexedSeq < hi) {
          // Nothing at or below the deleted range is left to index.
          await tx.run(SET_FTS_SEQ, [String(hi)]);
          tx.afterCommit(() => {
            indexedSeq = Math.max(indexedSeq, hi);
          });
        }
        return Math.max(deleted.changes, 1);
      },
    });
    return { deleted: run.rows, checkpoint, run };
  };

  const audit: Audit = {
    commit,
    record,
    append: (entry) => db.write((tx) => record(tx, entry)),
    head: () => committed,
    search,
    verify,
    prune: (cutoffIso, actor = 'system') => maintenance.run(() => prune(cutoffIso, actor)),
  };
  return audit;
}

/** Thrown when the write-ahead audit entry cannot be committed: the action does not run (invariant 6). */
export function auditUnavailable(cause: unknown): KernelError {
  return new KernelError(
    'audit_unavailable',
    'The audit log could not be written, so the action was not run (AIPermission never runs an action it cannot record). Ask the operator to check the gateway log and the disk.',
    { status: 503, cause },
  );
}
