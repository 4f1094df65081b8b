import { auditEntryHash, GENESIS_HASH, canonicalJson } from '../lib/canonical.mjs';
import { isoAt, type Clock } from '../lib/clock.js';
import { KernelError } from '../lib/errors.js';
import { storageRefusal } from '../lib/storage-errors.js';
import { toFtsQuery } from '../lib/fts.js';
import { Where } from '../lib/where.js';
import { createDeferredIndexer } from '../lib/deferred-indexer.js';
import { inlineParams, sqlValue, type SqlDb, type SqlQueries, type SqlTx } from '../vault/index.js';
import type { Redactor } from '../redaction/index.js';
import type { AuditRow, AuditVerifyPool } from './verify-pool.js';

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
  verify(options?: { useWorkers?: boolean; pageSize?: number }): Promise<VerifyReport>;
  /** Deletes entries older than the cutoff and appends a checkpoint entry the rest of the chain continues from. */
  prune(cutoffIso: string, actor?: string): Promise<{ deleted: number; checkpoint: AuditEntry | null }>;
  head(): AuditHead;
}

export const CHECKPOINT_EVENT = 'audit.pruned';
/** Above this many entries, verify hashes pages on piscina worker threads so the gateway keeps answering. */
export const WORKER_THRESHOLD_ENTRIES = 5_000;
const DEFAULT_PAGE_SIZE = 2_000;
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
  const last = await db.get<{ seq: number; hash: string }>('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1');
  let committed: AuditHead = last ? { seq: last.seq, hash: last.hash } : { seq: 0, hash: GENESIS_HASH };
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
    const parts = {
      seq: prev.seq + 1,
      ts: isoAt(clock.now()),
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

  const verify = async (options: { useWorkers?: boolean; pageSize?: number } = {}): Promise<VerifyReport> => {
    const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
    const stats = await db.get<{ n: number; first: number | null; last: number | null }>(
      'SELECT count(*) AS n, min(seq) AS first, max(seq) AS last FROM audit_log',
    );
    const total = stats?.n ?? 0;
    const useWorkers = options.useWorkers ?? total > WORKER_THRESHOLD_ENTRIES;
    const recordedHeadRow = await db.get<{ value: string }>("SELECT value FROM meta WHERE key = 'audit_head'");
    const recordedHead = recordedHeadRow ? (JSON.parse(recordedHeadRow.value) as AuditHead) : { seq: 0, hash: GENESIS_HASH };
    const bad = (seq: number, reason: string): VerifyReport => ({ ok: false, entries: total, firstBad: { seq, reason } });

    if (total === 0) {
      if (recordedHead.seq > 0) return bad(1, `the log is empty but entries up to seq ${recordedHead.seq} were recorded (entries were deleted)`);
      return { ok: true, entries: 0, firstSeq: null, head: { seq: 0, hash: GENESIS_HASH }, checkpoint: null };
    }

    const firstSeq = stats!.first!;
    let expectedPrev: string | undefined;
    let checkpoint: { prunedThroughSeq: number; atSeq: number } | null = null;
    if (firstSeq === 1) {
      expectedPrev = GENESIS_HASH;
    } else {
      // The oldest entries were pruned: a checkpoint entry must name the hash
      // the remaining chain continues from. The checkpoint is itself part of
      // the chain verified below, so it cannot be forged without detection.
      const checkpoints = await db.all<StoredRow>('SELECT * FROM audit_log WHERE event = ? ORDER BY seq DESC', [CHECKPOINT_EVENT]);
      for (const row of checkpoints) {
        try {
          const payload = JSON.parse(row.payload) as { prunedThroughSeq?: unknown; anchorHash?: unknown };
          if (payload.prunedThroughSeq === firstSeq - 1 && typeof payload.anchorHash === 'string') {
            expectedPrev = payload.anchorHash;
            checkpoint = { prunedThroughSeq: firstSeq - 1, atSeq: row.seq };
            break;
          }
        } catch {
          // An unparsable checkpoint is caught by the hash check below.
        }
      }
      if (expectedPrev === undefined) {
        return bad(firstSeq - 1, `entries before seq ${firstSeq} are missing and no retention checkpoint accounts for them (entries were deleted)`);
      }
    }

    let afterSeq = firstSeq - 1;
    let prevHash = expectedPrev;
    let lastRow: StoredRow | undefined;
    const hashJobs: Array<Promise<{ badSeq: number | null; reason: string | null }>> = [];
    let linkFailure: { seq: number; reason: string } | undefined;
    for (;;) {
      const rows = await db.all<StoredRow>('SELECT * FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?', [afterSeq, pageSize]);
      if (rows.length === 0) break;
      hashJobs.push(pool.verifyPage(rows, useWorkers));
      for (const row of rows) {
        if (!linkFailure) {
          const expectedSeq = (lastRow?.seq ?? firstSeq - 1) + 1;
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
        lastRow = row;
      }
      afterSeq = rows[rows.length - 1]!.seq;
      if (!useWorkers) await new Promise((resolve) => setImmediate(resolve));
    }
    const hashResults = await Promise.all(hashJobs);
    const failures = hashResults
      .filter((result): result is { badSeq: number; reason: string } => result.badSeq !== null)
      .map((result) => ({ seq: result.badSeq, reason: result.reason }));
    if (linkFailure) failures.push(linkFailure);
    if (failures.length > 0) {
      failures.sort((a, b) => a.seq - b.seq);
      return bad(failures[0]!.seq, failures[0]!.reason);
    }
    const head = { seq: lastRow!.seq, hash: lastRow!.hash };
    const liveHead = committed;
    const expectedHead = liveHead.seq > recordedHead.seq ? liveHead : recordedHead;
    if (head.seq < expectedHead.seq) {
      return bad(head.seq + 1, `the log ends at seq ${head.seq} but entries up to seq ${expectedHead.seq} were written (entries were cut off the end)`);
    }
    if (head.seq === expectedHead.seq && head.hash !== expectedHead.hash) {
      return bad(head.seq, 'the newest entry is not the one that was written (the end of the log was replaced)');
    }
    return { ok: true, entries: total, firstSeq, head, checkpoint };
  };

  const audit: Audit = {
    commit,
    record,
    append: (entry) => db.write((tx) => record(tx, entry)),
    head: () => committed,
    async search(query) {
      // Catching the index up writes; on a full or read-only disk the search goes on over what is indexed (reads keep working).
      await indexer.catchUp().catch((error: unknown) => {
        if (!storageRefusal(error)) throw error;
        deps.log?.('the full-text index could not be caught up (storage); searching what it holds', error);
      });
      const limit = Math.min(Math.max(query.limit ?? 100, 1), MAX_SEARCH_LIMIT);
      const fts = query.q ? toFtsQuery(query.q) : undefined;
      const subjectFts = query.subjectId ? `subject : "${query.subjectId.replace(/"/g, '""')}"` : undefined;
      const match = [fts, subjectFts].filter(Boolean).join(' AND ');
      // `grant` matches grant.created and grant.deleted; `grant.created` only that event.
      const family = query.event && !query.event.includes('.') ? `${query.event.replace(/[\\%_]/g, '\\$&')}.%` : undefined;
      const where = new Where()
        .add('a.seq IN (SELECT rowid FROM audit_fts WHERE audit_fts MATCH ?)', match)
        .add(family ? "(a.event = ? OR a.event LIKE ? ESCAPE '\\')" : 'a.event = ?', ...(family ? [query.event, family] : [query.event]))
        .add('a.actor = ?', query.actor)
        .add('a.ts >= ?', query.since)
        .add('a.ts < ?', query.until)
        .add('a.seq < ?', query.beforeSeq);
      const rows = await db.all<StoredRow>(`SELECT a.* FROM audit_log a ${where} ORDER BY a.seq DESC LIMIT ?`, [...where.params, limit + 1]);
      const page = rows.slice(0, limit).map(fromRow);
      return { entries: page, nextBeforeSeq: rows.length > limit ? page[page.length - 1]!.seq : null };
    },
    verify,
    async prune(cutoffIso, actor = 'system') {
      return db.write(async (tx) => {
        const boundary = await tx.get<{ seq: number; hash: string }>(
          `SELECT seq, hash FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log WHERE ts < ?)`,
          [cutoffIso],
        );
        if (!boundary) return { deleted: 0, checkpoint: null };
        await tx.run('DELETE FROM audit_fts WHERE rowid <= ?', [boundary.seq]);
        if (indexedSeq < boundary.seq) {
          // Nothing at or below the boundary is left to index.
          await tx.run("INSERT INTO meta (key, value) VALUES ('audit_fts_seq', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [String(boundary.seq)]);
          const seq = boundary.seq;
          tx.afterCommit(() => {
            indexedSeq = Math.max(indexedSeq, seq);
          });
        }
        const result = await tx.run('DELETE FROM audit_log WHERE seq <= ?', [boundary.seq]);
        const checkpoint = await record(tx, {
          actor,
          event: CHECKPOINT_EVENT,
          payload: { prunedThroughSeq: boundary.seq, anchorHash: boundary.hash, deletedEntries: result.changes, cutoff: cutoffIso },
        });
        return { deleted: result.changes, checkpoint };
      });
    },
  };
  return audit;
}

/** Thrown when the write-ahead audit entry cannot be committed: the action does not run (invariant 6). */
export function auditUnavailable(cause: unknown): KernelError {
  // The code stays audit_unavailable (what callers act on); the sentence names the real cause when it is the disk.
  const storage = storageRefusal(cause);
  const why =
    storage?.code === 'disk_full'
      ? ' because the disk that holds the gateway\'s data directory is full'
      : storage?.code === 'database_read_only'
        ? ' because the database file cannot be written (read-only file or file system)'
        : storage
          ? ' because the disk failed'
          : '';
  return new KernelError(
    'audit_unavailable',
    `The audit log could not be written${why}, so the action was not run (AIPermission never runs an action it cannot record). Ask the operator to check the gateway log and the disk${storage?.code === 'disk_full' ? ' (free some space there)' : ''}.`,
    { status: 503, cause },
  );
}
