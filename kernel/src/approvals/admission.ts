import { canonicalJson, sha256Hex } from '../lib/canonical.mjs';
import { isoAt, type Clock } from '../lib/clock.js';
import { errors, KernelError } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import type { SqlDb } from '../vault/index.js';
import type { Audit } from '../audit/index.js';
import type { MessageStore } from '../messages/index.js';
import { inputAad, type ActionRequest, type ApprovalStore, type NewRequest, type RequestRow } from './requests.js';
import { describeDrift, snapshotHash, type ApprovalSnapshot } from './snapshot.js';

/** What the pipeline knows of a call once it is authorized: who, on what, with which rule. */
export interface AdmittedCall {
  actor: string;
  /** The agent's token; empty when the operator runs the action directly (operatorActor says who). */
  tokenId: string;
  tokenName: string;
  operatorActor?: string;
  target: { id: string; name: string; kind: string };
  profile: { id: string; label: string };
  connector: { id: string; version: string };
  action: string;
  /** The redacted reason (what is stored and shown). */
  reason: string;
  inputText: string;
  inputHash: string;
  /** The redacted canonical input (what is stored and shown). */
  inputPreview: string;
  createdAt: string;
}

export interface Admissions {
  /**
   * A refused call's request row (status `blocked`) and its `action.blocked`
   * entry, so history shows every attempt.
   */
  recordBlocked(call: AdmittedCall, rule: 'denied' | 'blocked'): Promise<void>;
  /**
   * The request row, its approval snapshot and its write-ahead entry
   * (`action.started` for always_run, `action.requested` for approval),
   * atomically; with an idempotency key, the earlier request it names instead.
   */
  admit(call: AdmittedCall, rule: 'always_run' | 'approval_required', idempotency: { key: string; fingerprint: string } | undefined): Promise<{ row: RequestRow; request: ActionRequest | undefined; replayed: boolean }>;
  /**
   * The operator's Run: re-checks the snapshot (invariant 5; any drift makes
   * the request stale instead), then records the approval, the intent entry
   * and the operator's note in one transaction.
   */
  startApproved(requestId: string, actor: string, note: { clean: string | null; shown: string | null }): Promise<{ stale: false; row: RequestRow } | { stale: true; request: ActionRequest }>;
}

/** A refused call keeps a bounded preview: enough for history, no room for a flood. */
const BLOCKED_PREVIEW_BYTES = 16_384;

/**
 * The approvals module's ownership of the request row and its intent entry:
 * the pipeline says what was decided, this writes it (through the
 * group-commit writer on the hot path).
 */
export function createAdmissions(deps: {
  db: SqlDb;
  clock: Clock;
  audit: Pick<Audit, 'record'>;
  store: ApprovalStore;
  messages: Pick<MessageStore, 'sendToAgent'>;
  seal: (text: string, aad: string) => Uint8Array;
  approvalTtlSeconds: () => number;
}): Admissions {
  const { clock, store } = deps;

  const baseOf = (call: AdmittedCall) => ({
    token_id: call.tokenId,
    token_name: call.tokenName,
    target_id: call.target.id,
    target_name: call.target.name,
    profile_id: call.profile.id,
    profile_label: call.profile.label,
    connector_id: call.target.kind,
    action: call.action,
    reason: call.reason,
    input_hash: call.inputHash,
    created_at: call.createdAt,
    operator_actor: call.operatorActor ?? null,
  });

  return {
    async recordBlocked(call, rule) {
      const row: NewRequest = {
        ...baseOf(call),
        id: newId('req'),
        status: 'blocked',
        rule,
        input_sealed: null,
        input_preview: Buffer.byteLength(call.inputPreview, 'utf8') <= BLOCKED_PREVIEW_BYTES ? call.inputPreview : canonicalJson({ truncated: true }),
        idempotency_key: null,
        request_fingerprint: '',
        snapshot: null,
        snapshot_hash: null,
        status_reason: rule === 'denied' ? 'no grant' : 'blocked by a grant',
        expires_at: null,
        started_at: null,
        finished_at: call.createdAt,
      };
      await store.insertBatched(row, { actor: call.actor, event: 'action.blocked', payload: { action: call.action, rule, reason: call.reason } });
    },

    async admit(call, rule, idempotency) {
      const id = newId('req');
      const pending = rule === 'approval_required';
      const subject = { token_id: call.tokenId, target_id: call.target.id, profile_id: call.profile.id, connector_id: call.target.kind, action: call.action, input_hash: call.inputHash };
      const newRow = (snapshot: ApprovalSnapshot): NewRequest => {
        const text = canonicalJson(snapshot);
        return {
          ...baseOf(call),
          id,
          status: pending ? 'approval_pending' : 'running',
          rule,
          // Only a pending request runs later, from its sealed input, after its
          // snapshot is re-checked; an always_run request runs now from memory,
          // and its snapshot hash is in the intent entry.
          input_sealed: pending ? deps.seal(call.inputText, inputAad(id)) : null,
          input_preview: call.inputPreview,
          idempotency_key: idempotency?.key ?? null,
          request_fingerprint: idempotency?.fingerprint ?? '',
          snapshot: pending ? text : null,
          snapshot_hash: sha256Hex(text),
          status_reason: null,
          expires_at: pending ? isoAt(clock.now() + deps.approvalTtlSeconds() * 1000) : null,
          started_at: pending ? null : call.createdAt,
        };
      };
      const intent = (row: NewRequest) => ({
        actor: call.actor,
        event: pending ? 'action.requested' : 'action.started',
        payload: {
          action: call.action,
          connector: call.connector,
          rule,
          reason: call.reason,
          input: JSON.parse(call.inputPreview) as unknown,
          inputHash: call.inputHash,
          snapshotHash: row.snapshot_hash,
          ...(pending ? { expiresAt: row.expires_at } : {}),
        },
      });
      if (!idempotency) {
        // The hot path: everything came from memory; the row and its intent
        // entry go through the group-commit writer.
        const row = newRow(await store.snapshotNow(undefined, subject));
        return { ...(await store.insertBatched(row, intent(row))), replayed: false };
      }
      // With an idempotency key, the lookup and the insert share one transaction.
      return deps.db.write(async (tx) => {
        const existing = await store.findByIdempotencyKey(tx, call.tokenId, idempotency.key);
        if (existing) {
          if (existing.request_fingerprint !== idempotency.fingerprint) {
            throw new KernelError(
              'idempotency_conflict',
              `idempotency_key "${idempotency.key}" was already used for a different request (${existing.id}). Use a new key for a new request.`,
              { status: 409 },
            );
          }
          return { row: existing, request: undefined, replayed: true };
        }
        const row = newRow(await store.snapshotNow(tx, subject));
        const request = await store.insert(tx, row, intent(row));
        return { row: (await store.getRow(tx, id))!, request, replayed: false };
      });
    },

    async startApproved(requestId, actor, note) {
      const row = await store.getRow(deps.db, requestId);
      if (!row) throw errors.notFound('Request', requestId);
      if (row.status !== 'approval_pending') {
        throw new KernelError('request_state_conflict', `Request ${requestId} is ${row.status}; only a pending request can be run.`, { status: 409, details: { status: row.status } });
      }
      return deps.db.write(async (tx) => {
        // Invariant 5: recompute the approval context; any drift and the request goes stale instead of running.
        const before = JSON.parse(row.snapshot ?? 'null') as ApprovalSnapshot | null;
        const now = await store.snapshotNow(tx, row);
        const drift = before ? describeDrift(before, now) : ['the request has no approval snapshot'];
        if (drift.length === 0 && snapshotHash(now) !== row.snapshot_hash) drift.push('the approval context changed');
        if (drift.length > 0) {
          const request = await store.transition(tx, requestId, ['approval_pending'], 'stale', { status_reason: drift.join('; '), finished_at: isoAt(clock.now()) }, {
            actor: 'system',
            event: 'action.staled',
            payload: { action: row.action, reasons: drift },
          });
          return { stale: true as const, request };
        }
        const nowIso = isoAt(clock.now());
        await store.transition(tx, requestId, ['approval_pending'], 'running', { decided_at: nowIso, started_at: nowIso, operator_note: note.shown }, {
          actor,
          event: 'action.approved',
          payload: { action: row.action, note: note.shown, snapshotHash: row.snapshot_hash },
        });
        // The write-ahead intent entry, committed with the approval before the connector is called.
        await deps.audit.record(tx, {
          actor: `token:${row.token_id}`,
          event: 'action.started',
          subject: { requestId, tokenId: row.token_id, targetId: row.target_id, profileId: row.profile_id },
          payload: { action: row.action, inputHash: row.input_hash, snapshotHash: row.snapshot_hash, approvedBy: actor },
        });
        if (note.clean !== null) await deps.messages.sendToAgent({ tokenId: row.token_id, requestId, body: note.clean }, actor, tx);
        return { stale: false as const, row: (await store.getRow(tx, requestId))! };
      });
    },
  };
}
