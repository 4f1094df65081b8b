import type { ActionFailureData } from '@aipermission/plugin-sdk/protocol';
import { isoAt, type Clock } from '../lib/clock.js';
import { errors, KernelError } from '../lib/errors.js';
import { toFtsQuery } from '../lib/fts.js';
import { runInChunks } from '../lib/chunked.js';
import { storageRefusal } from '../lib/storage-errors.js';
import { Where } from '../lib/where.js';
import { createDeferredIndexer } from '../lib/deferred-indexer.js';
import type { SqlDb, SqlQueries, SqlTx, Sealer } from '../vault/index.js';
import type { Audit, AuditEntryInput } from '../audit/index.js';
import type { EventBus } from '../events/index.js';
import type { MessageStore } from '../messages/index.js';
import { computeSnapshot, describeDrift, type ApprovalSnapshot, type SnapshotSources } from './snapshot.js';

export type RequestStatus =
  | 'approval_pending'
  | 'running'
  | 'completed'
  | 'failed'
  | 'declined'
  | 'blocked'
  | 'stale'
  | 'expired'
  | 'canceled'
  | 'outcome_unknown';

export const REQUEST_STATUSES: readonly RequestStatus[] = [
  'approval_pending',
  'running',
  'completed',
  'failed',
  'declined',
  'blocked',
  'stale',
  'expired',
  'canceled',
  'outcome_unknown',
];
/** Not final: the agent should poll again. */
export const ACTIVE_STATUSES: readonly RequestStatus[] = ['approval_pending', 'running'];

/**
 * How a failed request's error is stored and shown (REST, MCP): the wire's
 * ActionFailureData (plugin-sdk) with its `userMessage` as `message`, or the
 * kernel's own failure (deadline, output schema). Converted in one place,
 * pipeline/execute.ts (asRequestError).
 */
export interface RequestError {
  kind: ActionFailureData['kind'];
  retryable: ActionFailureData['retryable'];
  message: ActionFailureData['userMessage'];
}

/** An action request as the operator and (through MCP) the agent see it: redacted, never the sealed input. */
export interface ActionRequest {
  id: string;
  status: RequestStatus;
  targetRef: string;
  /** The agent's token; empty for a request the operator ran directly. */
  tokenId: string;
  tokenName: string;
  requestedBy: 'agent' | 'operator';
  /** Who ran it, for `requestedBy: 'operator'` (their audit actor); else null. */
  operatorActor: string | null;
  targetId: string;
  targetName: string;
  profileId: string;
  profileLabel: string;
  connectorId: string;
  action: string;
  rule: string | null;
  reason: string;
  /** The input with redaction applied (what is shown). The raw input stays sealed and is what runs. */
  inputPreview: unknown;
  inputHash: string;
  idempotencyKey: string | null;
  snapshotHash: string | null;
  /** What an approval of this request is bound to (the snapshot's connector build, target and profile revisions, action definition); null when nothing is pending approval. */
  binding: RequestBinding | null;
  statusReason: string | null;
  output: unknown;
  outputTruncated: boolean;
  error: RequestError | null;
  operatorNote: string | null;
  createdAt: string;
  updatedAt: string;
  expiresAt: string | null;
  decidedAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
}

/** The parts of an approval snapshot the operator is shown: Run stales the request if any of them changed. */
export interface RequestBinding {
  connector: { id: string; version: string; manifestHash: string; integrity: string | null } | null;
  target: { id: string; configRevision: number } | null;
  profile: { id: string; configRevision: number; secretRevision: number } | null;
  action: { name: string; definitionHash: string } | null;
  inputHash: string;
}

function bindingOf(snapshot: string | null): RequestBinding | null {
  if (snapshot === null) return null;
  const parsed = JSON.parse(snapshot) as ApprovalSnapshot;
  return { connector: parsed.connector, target: parsed.target, profile: parsed.profile, action: parsed.action, inputHash: parsed.inputHash };
}

export interface RequestRow {
  seq: number;
  id: string;
  token_id: string;
  token_name: string;
  target_id: string;
  target_name: string;
  profile_id: string;
  profile_label: string;
  connector_id: string;
  action: string;
  status: RequestStatus;
  rule: string | null;
  reason: string;
  input_sealed: Uint8Array | null;
  input_preview: string;
  input_hash: string;
  idempotency_key: string | null;
  request_fingerprint: string;
  snapshot: string | null;
  snapshot_hash: string | null;
  status_reason: string | null;
  output_preview: string | null;
  output_truncated: number;
  error: string | null;
  operator_note: string | null;
  created_at: string;
  updated_at: string;
  expires_at: string | null;
  decided_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  /** The operator's audit actor for a request the operator ran directly; null for an agent's (token_id says who). */
  operator_actor: string | null;
}

/** Who a request's entries are recorded as: the agent's token, or the operator who ran it. */
export function requesterOf(row: Pick<RequestRow, 'token_id' | 'operator_actor'>): string {
  return row.operator_actor ?? `token:${row.token_id}`;
}

export function toRequest(row: RequestRow): ActionRequest {
  return {
    id: row.id,
    status: row.status,
    targetRef: `${row.connector_id}:${row.target_id}:${row.profile_id}`,
    tokenId: row.token_id,
    tokenName: row.token_name,
    requestedBy: row.operator_actor === null ? 'agent' : 'operator',
    operatorActor: row.operator_actor,
    targetId: row.target_id,
    targetName: row.target_name,
    profileId: row.profile_id,
    profileLabel: row.profile_label,
    connectorId: row.connector_id,
    action: row.action,
    rule: row.rule,
    reason: row.reason,
    inputPreview: JSON.parse(row.input_preview) as unknown,
    inputHash: row.input_hash,
    idempotencyKey: row.idempotency_key,
    snapshotHash: row.snapshot_hash,
    binding: bindingOf(row.snapshot),
    statusReason: row.status_reason,
    output: row.output_preview === null ? null : (JSON.parse(row.output_preview) as unknown),
    outputTruncated: row.output_truncated === 1,
    error: row.error === null ? null : (JSON.parse(row.error) as RequestError),
    operatorNote: row.operator_note,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    expiresAt: row.expires_at,
    decidedAt: row.decided_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  };
}

export const inputAad = (requestId: string) => `request:${requestId}:input`;

export type NewRequest = Omit<RequestRow, 'seq' | 'updated_at' | 'output_preview' | 'output_truncated' | 'error' | 'operator_note' | 'decided_at' | 'finished_at' | 'operator_actor'> &
  Partial<Pick<RequestRow, 'output_preview' | 'output_truncated' | 'error' | 'operator_note' | 'decided_at' | 'finished_at' | 'operator_actor'>>;

export interface RequestListFilter {
  status?: RequestStatus | RequestStatus[];
  tokenId?: string;
  targetId?: string;
  /** The action name, e.g. `get_key`. */
  action?: string;
  q?: string;
  /** Requests created at or after this ISO time. */
  since?: string;
  /** Requests created before this ISO time. */
  until?: string;
  beforeSeq?: number;
  limit?: number;
}

export interface ApprovalStore {
  insert(tx: SqlTx, row: NewRequest, entry: Omit<AuditEntryInput, 'subject'>): Promise<ActionRequest>;
  /** Inserts a request with its audit entry through the group-commit writer (the hot path: no reads, one shared commit). */
  insertBatched(row: NewRequest, entry: Omit<AuditEntryInput, 'subject'>): Promise<{ request: ActionRequest; row: RequestRow }>;
  /**
   * Finishes a `running` request through the group-commit writer. Only the
   * flow executing the request calls this: nothing else moves a running
   * request, so the update needs no read first.
   */
  finishBatched(row: RequestRow, to: RequestStatus, fields: Partial<RequestRow>, entry: Omit<AuditEntryInput, 'subject'>): Promise<ActionRequest>;
  /**
   * Requests whose end could not be written (a full or unwritable disk): they
   * read as `outcome_unknown` at once, and are written so (with their audit
   * entry) as soon as the disk takes writes again. How many are still waiting.
   */
  unrecordedCount(): number;
  get(id: string): Promise<ActionRequest | undefined>;
  require(id: string): Promise<ActionRequest>;
  getRow(q: SqlQueries, id: string): Promise<RequestRow | undefined>;
  findByIdempotencyKey(q: SqlQueries, tokenId: string, key: string): Promise<RequestRow | undefined>;
  list(filter?: RequestListFilter): Promise<{ requests: ActionRequest[]; nextBeforeSeq: number | null }>;
  /**
   * Moves a request from one of `from` to `to`, with its audit entry, in the
   * caller's transaction. Throws a 409 naming the current status when the
   * request is no longer in one of `from` (someone else got there first).
   */
  transition(
    tx: SqlTx,
    id: string,
    from: readonly RequestStatus[],
    to: RequestStatus,
    fields: Partial<RequestRow>,
    entry: Omit<AuditEntryInput, 'subject'>,
  ): Promise<ActionRequest>;
  /** Opens the sealed raw input: the exact value that was approved and will run. */
  openInput(row: RequestRow): unknown;
  snapshotNow(q: SqlQueries | undefined, row: Pick<RequestRow, 'token_id' | 'target_id' | 'profile_id' | 'connector_id' | 'action' | 'input_hash'>): Promise<ApprovalSnapshot>;
  /** Re-checks pending requests; stales every one whose snapshot drifted. Returns how many went stale. */
  revalidatePending(tx: SqlTx, filter: { tokenId?: string; targetId?: string; profileId?: string; connectorId?: string }): Promise<number>;
  /**
   * Re-checks the pending requests of one connector in a transaction of its
   * own, for a change made outside any store's transaction (a plugin was
   * installed, upgraded or removed). Returns how many went stale.
   */
  revalidateConnector(connectorId: string): Promise<number>;
  /** Stales pending requests of a target or profile that changed, with the reason. */
  staleFor(tx: SqlTx, filter: { targetId: string; profileId?: string }, reason: string): Promise<number>;
  decline(id: string, note: string | null, actor: string): Promise<ActionRequest>;
  /** The agent withdraws its own pending request. */
  cancel(id: string, tokenId: string, actor: string): Promise<ActionRequest>;
  /** Expires pending requests whose TTL passed. */
  expireDue(): Promise<number>;
  /** After a crash: requests left `running` become `outcome_unknown`. */
  recoverInterrupted(): Promise<number>;
  /** Retention: deletes finished requests older than the cutoff. */
  pruneFinished(cutoffIso: string): Promise<number>;
}

/**
 * How often the end of a run that could not be recorded is written again:
 * often enough that a disk which got space back is used within a fraction of
 * a second, rarely enough that a full disk costs nothing noticeable.
 */
export const UNRECORDED_RETRY_MS = 200;

/** Most requests a page lists; a screenful and a bounded response. */
const MAX_LIST_LIMIT = 500;
const MAX_NOTE_BYTES = 4096;

export function checkNote(note: string | null | undefined): string | null {
  if (note === null || note === undefined) return null;
  const trimmed = note.trim();
  if (trimmed === '') return null;
  if (Buffer.byteLength(trimmed, 'utf8') > MAX_NOTE_BYTES) throw errors.invalid(`A note may be at most ${MAX_NOTE_BYTES} bytes.`);
  return trimmed;
}

export function createApprovalStore(deps: {
  db: SqlDb;
  clock: Clock;
  audit: Pick<Audit, 'commit' | 'record'>;
  events: EventBus;
  sealer: Pick<Sealer, 'open'>;
  messages: Pick<MessageStore, 'sendToAgent'>;
  database: string;
  sources: SnapshotSources;
  redactText: (text: string) => string;
  log?: (message: string, error?: unknown) => void;
}): ApprovalStore {
  const { db, clock, audit, events, sealer } = deps;
  /** Requests re-indexed per transaction (see audit's INDEX_CHUNK). */
  const INDEX_CHUNK = 500;
  const FTS_COLUMNS = 'id, action, connector_id, target_name, profile_label, token_name, reason, input_preview, output_preview, status, status_reason, operator_note';
  // Rows whose insert or update marked them dirty (by trigger) are re-indexed in bulk, off the commit path.
  const indexer = createDeferredIndexer({
    db,
    chunkRows: INDEX_CHUNK,
    ...(deps.log ? { log: deps.log } : {}),
    async indexChunk(tx) {
      const range = await tx.get<{ hi: number | null; n: number }>('SELECT max(seq) AS hi, count(*) AS n FROM (SELECT seq FROM requests_fts_dirty ORDER BY seq LIMIT ?)', [
        INDEX_CHUNK,
      ]);
      if (!range?.hi) return 0;
      await tx.run('DELETE FROM requests_fts WHERE rowid IN (SELECT seq FROM requests_fts_dirty WHERE seq <= ?)', [range.hi]);
      await tx.run(`INSERT INTO requests_fts (rowid, ${FTS_COLUMNS}) SELECT seq, ${FTS_COLUMNS} FROM requests WHERE seq IN (SELECT seq FROM requests_fts_dirty WHERE seq <= ?)`, [range.hi]);
      await tx.run('DELETE FROM requests_fts_dirty WHERE seq <= ?', [range.hi]);
      return range.n;
    },
  });

  const subjectOf = (row: Pick<RequestRow, 'id' | 'token_id' | 'target_id' | 'profile_id'>) => ({
    requestId: row.id,
    tokenId: row.token_id,
    targetId: row.target_id,
    profileId: row.profile_id,
  });
  const announce = (tx: SqlTx, type: 'request.created' | 'request.updated', id: string, status: RequestStatus) => {
    tx.afterCommit(() => {
      indexer.schedule();
      events.emit({ type, database: deps.database, requestId: id, status, at: isoAt(clock.now()) });
    });
  };

  const fullRow = (row: NewRequest): RequestRow => ({
    seq: 0,
    output_preview: null,
    output_truncated: 0,
    error: null,
    operator_note: null,
    decided_at: null,
    finished_at: null,
    operator_actor: null,
    ...row,
    updated_at: row.created_at,
  });
  const insertStatement = (full: RequestRow) => {
    const columns = Object.keys(full).filter((key) => key !== 'seq') as Array<keyof RequestRow>;
    return { sql: `INSERT INTO requests (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`, params: columns.map((key) => full[key]) };
  };
  const emit = (type: 'request.created' | 'request.updated', id: string, status: RequestStatus) => {
    indexer.schedule();
    events.emit({ type, database: deps.database, requestId: id, status, at: isoAt(clock.now()) });
  };

  /** Most FTS rowids read per step of a word search: a step is one short hold of the connection. */
  const MAX_FTS_STEP = 4096;
  /**
   * How far a request's created_at may lag behind the order of its seq: the
   * time is taken when the call is admitted and the row is inserted
   * milliseconds later, so two concurrent calls can commit in the other
   * order. A second is far more than that gap.
   */
  const CREATED_SKEW = 1000;
  /**
   * The seq range that holds every request of a time range, found with one
   * seek of the created_at index per end, widened by CREATED_SKEW; the rows
   * are then checked against the exact times.
   */
  const seqRangeOf = async (since: string | undefined, until: string | undefined): Promise<{ from: number; to: number }> => {
    let from = 1;
    let to = Number.MAX_SAFE_INTEGER;
    if (since) {
      const before = isoAt(Date.parse(since) - CREATED_SKEW);
      const row = await db.get<{ seq: number }>('SELECT seq FROM requests WHERE created_at < ? ORDER BY created_at DESC LIMIT 1', [before]);
      from = row ? row.seq + 1 : 1;
    }
    if (until) {
      const after = isoAt(Date.parse(until) + CREATED_SKEW);
      const row = await db.get<{ seq: number }>('SELECT seq FROM requests WHERE created_at >= ? ORDER BY created_at LIMIT 1', [after]);
      to = row ? row.seq - 1 : Number.MAX_SAFE_INTEGER;
    }
    return { from, to };
  };

  // ---- runs whose end could not be recorded (issue 16 item 2) ---------------
  // The action ran, but its completion entry could not be committed (full or
  // unwritable disk). The caller was told its result is withheld and its
  // outcome unknown; from that moment every read (REST, MCP polling, lists)
  // says `outcome_unknown`, not `running`. The row and its audit entry are
  // written by a retry once the disk takes writes again; a gateway that stops
  // first leaves the row `running`, which the next unlock turns into
  // `outcome_unknown` (recoverInterrupted) as before.
  interface Unrecorded {
    fields: Partial<RequestRow>;
    entry: AuditEntryInput;
  }
  const unrecorded = new Map<string, Unrecorded>();
  let retryTimer: NodeJS.Timeout | undefined;
  let retryLogged = false;
  const overlay = <T extends RequestRow | undefined>(row: T): T => {
    if (!row || row.status !== 'running') return row;
    const pending = unrecorded.get(row.id);
    return pending ? ({ ...row, ...pending.fields } as T) : row;
  };
  const retryUnrecorded = async () => {
    retryTimer = undefined;
    if (db.closed) {
      unrecorded.clear();
      return;
    }
    for (const [id, pending] of [...unrecorded]) {
      const keys = Object.keys(pending.fields) as Array<keyof RequestRow>;
      try {
        await audit.commit({
          statements: [{ sql: `UPDATE requests SET ${keys.map((key) => `${key} = ?`).join(', ')} WHERE id = ? AND status = 'running'`, params: [...keys.map((key) => pending.fields[key]), id] }],
          entries: [pending.entry],
        });
      } catch (error) {
        if (db.closed) {
          unrecorded.clear();
          return;
        }
        if (!retryLogged) deps.log?.(`the end of request ${id} still cannot be written; retrying every ${UNRECORDED_RETRY_MS} ms`, error);
        retryLogged = true;
        break;
      }
      unrecorded.delete(id);
      deps.log?.(`the end of request ${id} was written as outcome_unknown after the disk took writes again`);
      emit('request.updated', id, 'outcome_unknown');
    }
    if (unrecorded.size > 0) scheduleRetry();
    else retryLogged = false;
  };
  const scheduleRetry = () => {
    if (retryTimer || db.closed) return;
    retryTimer = setTimeout(() => void retryUnrecorded(), UNRECORDED_RETRY_MS);
    retryTimer.unref();
  };
  const markUnrecorded = (row: RequestRow, entry: Omit<AuditEntryInput, 'subject'>) => {
    const now = isoAt(clock.now());
    unrecorded.set(row.id, {
      fields: {
        status: 'outcome_unknown',
        finished_at: now,
        updated_at: now,
        status_reason: 'the action ran, but its end could not be written to the audit log (the disk was full or unwritable), so its result was withheld; whether it took effect is unknown',
      },
      entry: {
        actor: 'system',
        event: 'action.outcome_unknown',
        subject: subjectOf(row),
        // What could not be written, so the log keeps what the gateway saw of the end.
        payload: { action: row.action, reason: 'its completion could not be recorded when it ended', unrecorded: { event: entry.event, payload: entry.payload ?? {} } },
      },
    });
    events.emit({ type: 'request.updated', database: deps.database, requestId: row.id, status: 'outcome_unknown', at: now });
    scheduleRetry();
  };

  const store: ApprovalStore = {
    async insertBatched(row, entry) {
      const full = fullRow(row);
      await audit.commit({ statements: [insertStatement(full)], entries: [{ ...entry, subject: subjectOf(full) }] });
      emit('request.created', full.id, full.status);
      return { request: toRequest(full), row: full };
    },
    async finishBatched(row, to, fields, entry) {
      const updates: Partial<RequestRow> = { ...fields, status: to, updated_at: isoAt(clock.now()) };
      const keys = Object.keys(updates) as Array<keyof RequestRow>;
      try {
        await audit.commit({
          statements: [{ sql: `UPDATE requests SET ${keys.map((key) => `${key} = ?`).join(', ')} WHERE id = ? AND status = 'running'`, params: [...keys.map((key) => updates[key]), row.id] }],
          entries: [{ ...entry, subject: subjectOf(row) }],
        });
      } catch (error) {
        markUnrecorded(row, entry);
        throw error;
      }
      emit('request.updated', row.id, to);
      return toRequest({ ...row, ...updates });
    },
    async insert(tx, row, entry) {
      const full = fullRow(row);
      const statement = insertStatement(full);
      await tx.run(statement.sql, statement.params);
      await audit.record(tx, { ...entry, subject: subjectOf(full) });
      announce(tx, 'request.created', full.id, full.status);
      return toRequest(full);
    },
    unrecordedCount: () => unrecorded.size,
    async getRow(q, id) {
      return overlay(await q.get<RequestRow>('SELECT * FROM requests WHERE id = ?', [id]));
    },
    async get(id) {
      const row = await store.getRow(db, id);
      return row ? toRequest(row) : undefined;
    },
    async require(id) {
      const request = await store.get(id);
      if (!request) throw errors.notFound('Request', id);
      return request;
    },
    async findByIdempotencyKey(q, tokenId, key) {
      return overlay(await q.get<RequestRow>('SELECT * FROM requests WHERE token_id = ? AND idempotency_key = ?', [tokenId, key]));
    },
    async list(filter = {}) {
      const statuses = filter.status === undefined ? [] : Array.isArray(filter.status) ? filter.status : [filter.status];
      for (const status of statuses) {
        if (!REQUEST_STATUSES.includes(status)) throw errors.invalid(`"${status}" is not a request status; use one of ${REQUEST_STATUSES.join(', ')}.`);
      }
      const match = filter.q ? toFtsQuery(filter.q) : undefined;
      // Catching the index up writes; on a full or read-only disk the search goes on over what is indexed (reads keep working).
      if (match) {
        await indexer.catchUp().catch((error: unknown) => {
          if (!storageRefusal(error)) throw error;
          deps.log?.('the request index could not be caught up (storage); searching what it holds', error);
        });
      }
      // A run whose end is not written yet is still `running` in its row: found by either status, shown as what it is.
      const stored = unrecorded.size > 0 && statuses.includes('outcome_unknown') && !statuses.includes('running') ? [...statuses, 'running' as const] : statuses;
      const limit = Math.min(Math.max(filter.limit ?? 100, 1), MAX_LIST_LIMIT);
      const want = limit + 1;
      const range = await seqRangeOf(filter.since, filter.until);
      // Never below the oldest live request: the FTS index still holds pruned ones.
      range.from = Math.max(range.from, (await db.get<{ first: number | null }>('SELECT min(seq) AS first FROM requests'))?.first ?? 1);
      const upper = Math.min(range.to, (filter.beforeSeq ?? Number.MAX_SAFE_INTEGER) - 1);
      if (upper < range.from) return { requests: [], nextBeforeSeq: null };
      const filters = (status: RequestStatus | undefined) =>
        new Where()
          .add('status = ?', status)
          .add('token_id = ?', filter.tokenId)
          .add('target_id = ?', filter.targetId)
          .add('action = ?', filter.action)
          // Checked on the row, exactly; the seq range below is what the plan walks.
          .add('+created_at >= ?', filter.since)
          .add('+created_at < ?', filter.until)
          .add('seq >= ?', range.from)
          .add('seq <= ?', upper);
      let found: RequestRow[];
      if (match) {
        // Words: the full-text index hands its matches newest first, a step
        // at a time, and only those rows are read and filtered (see audit search).
        found = [];
        let below = upper + 1;
        let step = Math.min(Math.max(want, 64), MAX_FTS_STEP);
        const where = filters(undefined).in('status', stored);
        for (;;) {
          const ids = await db.all<{ rowid: number }>(
            'SELECT rowid FROM requests_fts WHERE requests_fts MATCH ? AND rowid < ? AND rowid >= ? ORDER BY rowid DESC LIMIT ?',
            [match, below, range.from, step],
          );
          if (ids.length === 0) break;
          found.push(
            ...(await db.all<RequestRow>(`SELECT * FROM requests ${where} AND seq IN (SELECT value FROM json_each(?)) ORDER BY seq DESC`, [
              ...where.params,
              JSON.stringify(ids.map((id) => id.rowid)),
            ])),
          );
          if (found.length >= want || ids.length < step) break;
          below = ids[ids.length - 1]!.rowid;
          step = Math.min(step * 4, MAX_FTS_STEP);
        }
        found = found.slice(0, want);
      } else {
        // One arm per status, each walking its index newest first and stopping after a page.
        const arms = (stored.length > 0 ? stored : [undefined]).map((status) => {
          const where = filters(status);
          return { sql: `SELECT * FROM (SELECT * FROM requests ${where} ORDER BY seq DESC LIMIT ?)`, params: [...where.params, want] };
        });
        found = await db.all<RequestRow>(`${arms.map((arm) => arm.sql).join(' UNION ALL ')} ORDER BY seq DESC LIMIT ?`, [...arms.flatMap((arm) => arm.params), want]);
      }
      const rows = found.map(overlay).filter((row) => statuses.length === 0 || statuses.includes(row.status));
      const page = rows.slice(0, limit);
      return { requests: page.map(toRequest), nextBeforeSeq: found.length > limit ? (page[page.length - 1] ?? found[limit - 1]!).seq : null };
    },
    async transition(tx, id, from, to, fields, entry) {
      const now = isoAt(clock.now());
      const updates: Partial<RequestRow> = { ...fields, status: to, updated_at: now };
      const keys = Object.keys(updates) as Array<keyof RequestRow>;
      const result = await tx.run(
        `UPDATE requests SET ${keys.map((key) => `${key} = ?`).join(', ')} WHERE id = ? AND status IN (${from.map(() => '?').join(', ')})`,
        [...keys.map((key) => updates[key]), id, ...from],
      );
      const row = await store.getRow(tx, id);
      if (!row) throw errors.notFound('Request', id);
      if (result.changes === 0) {
        throw new KernelError('request_state_conflict', `Request ${id} is ${row.status}, so it cannot become ${to}.`, {
          status: 409,
          details: { status: row.status },
        });
      }
      await audit.record(tx, { ...entry, subject: subjectOf(row) });
      announce(tx, 'request.updated', id, to);
      return toRequest(row);
    },
    openInput(row) {
      if (!row.input_sealed) throw new KernelError('input_unavailable', `Request ${row.id} has no sealed input to run.`, { status: 409 });
      return JSON.parse(sealer.open(row.input_sealed, inputAad(row.id))) as unknown;
    },
    snapshotNow(q, row) {
      return computeSnapshot(q, deps.sources, {
        tokenId: row.token_id,
        targetId: row.target_id,
        profileId: row.profile_id,
        connectorId: row.connector_id,
        action: row.action,
        inputHash: row.input_hash,
      });
    },
    async revalidatePending(tx, filter) {
      const where = new Where()
        .add("status = 'approval_pending'")
        .add('token_id = ?', filter.tokenId)
        .add('target_id = ?', filter.targetId)
        .add('profile_id = ?', filter.profileId)
        .add('connector_id = ?', filter.connectorId);
      const rows = await tx.all<RequestRow>(`SELECT * FROM requests ${where}`, where.params);
      let staled = 0;
      for (const row of rows) {
        const before = JSON.parse(row.snapshot ?? 'null') as ApprovalSnapshot | null;
        const now = await store.snapshotNow(tx, row);
        const drift = before ? describeDrift(before, now) : ['the request has no approval snapshot'];
        if (drift.length === 0) continue;
        await store.transition(tx, row.id, ['approval_pending'], 'stale', { status_reason: drift.join('; ') }, {
          actor: 'system',
          event: 'action.staled',
          payload: { action: row.action, reasons: drift },
        });
        staled += 1;
      }
      return staled;
    },
    revalidateConnector(connectorId) {
      return db.write((tx) => store.revalidatePending(tx, { connectorId }));
    },
    async staleFor(tx, filter, reason) {
      const rows = filter.profileId
        ? await tx.all<RequestRow>("SELECT id, action FROM requests WHERE status = 'approval_pending' AND profile_id = ?", [filter.profileId])
        : await tx.all<RequestRow>("SELECT id, action FROM requests WHERE status = 'approval_pending' AND target_id = ?", [filter.targetId]);
      for (const row of rows) {
        await store.transition(tx, row.id, ['approval_pending'], 'stale', { status_reason: reason }, {
          actor: 'system',
          event: 'action.staled',
          payload: { action: row.action, reasons: [reason] },
        });
      }
      return rows.length;
    },
    async decline(id, note, actor) {
      const cleanNote = checkNote(note);
      const shown = cleanNote === null ? null : deps.redactText(cleanNote);
      return db.write(async (tx) => {
        const row = await store.getRow(tx, id);
        if (!row) throw errors.notFound('Request', id);
        const request = await store.transition(
          tx,
          id,
          ['approval_pending'],
          'declined',
          { operator_note: shown, decided_at: isoAt(clock.now()), finished_at: isoAt(clock.now()), status_reason: 'declined by the operator' },
          { actor, event: 'action.declined', payload: { action: row.action, note: shown } },
        );
        if (cleanNote !== null) await deps.messages.sendToAgent({ tokenId: row.token_id, requestId: id, body: cleanNote }, actor, tx);
        return request;
      });
    },
    async cancel(id, tokenId, actor) {
      return db.write(async (tx) => {
        const row = await store.getRow(tx, id);
        // Another token's request is reported as absent: an agent learns nothing about requests it does not own.
        if (!row || row.token_id !== tokenId) throw errors.notFound('Request', id);
        // Cancelling twice answers the same (idempotent); only a request that moved on otherwise is a conflict.
        if (row.status === 'canceled') return toRequest(row);
        return store.transition(tx, id, ['approval_pending'], 'canceled', { finished_at: isoAt(clock.now()), status_reason: 'canceled by the agent' }, {
          actor,
          event: 'action.canceled',
          payload: { action: row.action },
        });
      });
    },
    async expireDue() {
      const nowIso = isoAt(clock.now());
      const due = await db.all<{ id: string }>("SELECT id FROM requests WHERE status = 'approval_pending' AND expires_at IS NOT NULL AND expires_at <= ?", [nowIso]);
      if (due.length === 0) return 0;
      return db.write(async (tx) => {
        let expired = 0;
        for (const { id } of due) {
          const row = await store.getRow(tx, id);
          if (!row || row.status !== 'approval_pending') continue;
          await store.transition(tx, id, ['approval_pending'], 'expired', { finished_at: nowIso, status_reason: 'nobody approved it before it expired' }, {
            actor: 'system',
            event: 'action.expired',
            payload: { action: row.action, expiresAt: row.expires_at },
          });
          expired += 1;
        }
        return expired;
      });
    },
    async recoverInterrupted() {
      return db.write(async (tx) => {
        const rows = await tx.all<RequestRow>("SELECT id, action FROM requests WHERE status = 'running'");
        for (const row of rows) {
          await store.transition(
            tx,
            row.id,
            ['running'],
            'outcome_unknown',
            { finished_at: isoAt(clock.now()), status_reason: 'the gateway stopped while the action was running; whether it finished is unknown' },
            { actor: 'system', event: 'action.outcome_unknown', payload: { action: row.action, reason: 'gateway restarted while running' } },
          );
        }
        return rows.length;
      });
    },
    async pruneFinished(cutoffIso) {
      // Oldest first through the created_at index, in short chunks
      // (runInChunks): retention never holds the database for long.
      const run = await runInChunks({
        db,
        async step(tx, maxRows) {
          const rows = await tx.all<{ seq: number }>(
            "SELECT seq FROM requests WHERE created_at < ? AND status NOT IN ('approval_pending', 'running') ORDER BY created_at LIMIT ?",
            [cutoffIso, maxRows],
          );
          if (rows.length === 0) return 0;
          const seqs = JSON.stringify(rows.map((row) => row.seq));
          // The full-text index keeps their entries (FTS5 tombstones are what
          // made a chunk slow, see the audit's prune): a search joins its
          // matches to live rows, and a reused seq is re-indexed through the
          // dirty list, whose first step deletes what the index held for it.
          await tx.run('DELETE FROM requests_fts_dirty WHERE seq IN (SELECT value FROM json_each(?))', [seqs]);
          await tx.run('DELETE FROM requests WHERE seq IN (SELECT value FROM json_each(?))', [seqs]);
          return rows.length;
        },
      });
      if (run.rows > 0) {
        await db.write((tx) => audit.record(tx, { actor: 'system', event: 'history.pruned', payload: { deletedRequests: run.rows, cutoff: cutoffIso } }));
      }
      return run.rows;
    },
  };
  return store;
}

