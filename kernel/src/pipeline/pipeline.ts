import { isActionError } from '@aipermission/plugin-sdk';
import { canonicalHash, canonicalJson, sha256Hex } from '../lib/canonical.mjs';
import { isoAt, type Clock } from '../lib/clock.js';
import { errors, KernelError } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import { visibleText } from '../lib/visible-text.js';
import { auditUnavailable } from '../audit/index.js';
import { grantRefusal } from '../grants/index.js';
import { KERNEL_LIMITS, OutcomeUnknown, type ActionDescriptor, type ActionExecutor, type ConnectorDescriptor, type ProgressUpdate } from '../connectors/index.js';
import { checkNote, inputAad, snapshotHash, describeDrift, type ActionError, type ActionRequest, type ApprovalSnapshot, type RequestRow } from '../approvals/index.js';
import type { TokenRecord } from '../tokens/index.js';
import type { Workspace } from '../workspace/index.js';
import { truncateUtf8, boundOutput } from './bound.js';

export interface CallInput {
  /** `<kind>:<target_id>:<profile_id>` */
  targetRef: string;
  action: string;
  input?: unknown;
  reason?: string;
  idempotencyKey?: string;
}

export interface CallOptions {
  /** Return `running` if the action takes longer than this; it goes on in the background. Default: wait for it. */
  waitMs?: number;
  onProgress?: (update: ProgressUpdate) => void;
}

export type CallOutcome =
  | { kind: 'stopped'; message: string }
  | { kind: 'request'; request: ActionRequest; replayed: boolean };

export interface AuthenticatedToken {
  workspace: Workspace;
  token: TokenRecord;
}

export interface Pipeline {
  /** The agent's call: auth -> switch -> grant -> validate -> snapshot -> audit intent -> execute -> bound/redact -> audit completion. */
  call(rawToken: string, input: CallInput, options?: CallOptions): Promise<CallOutcome>;
  /** Audits a call refused before it reached the pipeline (the tool's own arguments were malformed). */
  recordRejected(rawToken: string, input: CallInput, error: KernelError): Promise<void>;
  /** The operator's Run on a pending request: re-checks the snapshot, then executes the sealed input. */
  runApproved(workspace: Workspace, requestId: string, actor: string, note?: string | null, options?: CallOptions): Promise<ActionRequest>;
}

/** The snapshot as stored: its canonical text and that text's hash (encoded once). */
function snapshotColumns(snapshot: ApprovalSnapshot): { snapshot: string; snapshot_hash: string } {
  const text = canonicalJson(snapshot);
  return { snapshot: text, snapshot_hash: sha256Hex(text) };
}

const TARGET_REF = /^([a-z][a-z0-9_-]{0,63}):(tgt_[0-9a-z]{16}):(prf_[0-9a-z]{16})$/;
const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,128}$/;
/** After cancelling at the deadline, how long the executor gets to confirm before the outcome is declared unknown. */
const CANCEL_GRACE_MS = 5_000;
/** How much of an output an audit entry keeps; the request row keeps the (bounded) whole. */
const AUDIT_EXCERPT_BYTES = 2048;

export function parseTargetRef(ref: string): { kind: string; targetId: string; profileId: string } {
  const match = TARGET_REF.exec(ref);
  if (!match) {
    throw new KernelError(
      'invalid_target_ref',
      `"${truncateUtf8(ref, 200)}" is not a target_ref. It reads <kind>:<target_id>:<profile_id>; list_connector_targets shows yours.`,
      { status: 400 },
    );
  }
  return { kind: match[1]!, targetId: match[2]!, profileId: match[3]! };
}

/** Races a promise against a timer that is always cleared, so finished calls leave no timers behind. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function asActionError(error: unknown): ActionError {
  if (isActionError(error)) return { kind: error.kind, retryable: error.retryable, message: error.userMessage };
  // Anything else is a defect in the connector or host; its detail stays in
  // the log and never reaches the agent.
  return { kind: 'system', retryable: false, message: 'The connector failed unexpectedly. The operator can find details in the gateway log.' };
}

export function createPipeline(deps: {
  clock: Clock;
  executor: ActionExecutor;
  authenticate: (rawToken: string) => AuthenticatedToken;
  log?: (message: string, error?: unknown) => void;
}): Pipeline {
  const { clock, executor } = deps;
  const log = deps.log ?? (() => undefined);

  /** Records an attempt that was refused before a request existed (every attempt is audited). */
  const recordRejected = async (ws: Workspace, token: TokenRecord, input: CallInput, code: string, message: string) => {
    await ws.audit
      .commit({
        entries: [
          {
            actor: `token:${token.id}`,
            event: 'action.rejected',
            subject: { tokenId: token.id },
            payload: { targetRef: truncateUtf8(String(input.targetRef), 200), action: truncateUtf8(String(input.action), 100), code, message },
          },
        ],
      })
      .catch((error) => log('could not audit a rejected call', error));
  };

  /**
   * Runs a request that is already `running` with its intent entry committed.
   * Resolves with the final request; rejects only when the completion could
   * not be recorded.
   */
  const execute = async (
    ws: Workspace,
    row: RequestRow,
    connector: ConnectorDescriptor,
    action: ActionDescriptor,
    rawInput: unknown,
    options: CallOptions,
  ): Promise<ActionRequest> => {
    const done = ws.inflight.begin();
    const startedMs = clock.now();
    let outcome: { status: 'completed'; output: unknown } | { status: 'failed'; error: ActionError } | { status: 'outcome_unknown'; reason: string };
    let secrets: string[] = [];
    try {
      const target = ws.targets.cachedTarget(row.target_id);
      if (!target) throw new KernelError('unknown_target', 'The target was deleted while the action was starting.', { status: 409 });
      const lease = await ws.targets.lease(row.profile_id);
      secrets = Object.values(lease.secret).filter((value): value is string => typeof value === 'string');
      const controller = new AbortController();
      const invocation = executor.invoke({
        invocationId: row.id,
        connector,
        action,
        target: { id: target.id, kind: target.kind, config: target.config },
        profileId: row.profile_id,
        credentials: lease,
        input: rawInput,
        signal: controller.signal,
        onProgress: (update) => options.onProgress?.(update),
        policy: { requireBwrapForThirdParty: ws.settings.get().requireBwrapForThirdParty },
      });
      const settled = invocation.then(
        (output) => ({ ok: true as const, output }),
        (error: unknown) => ({ ok: false as const, error }),
      );
      let result = await within(settled, action.limits.timeoutMs);
      let timedOut = false;
      if (result === 'timeout') {
        timedOut = true;
        controller.abort(new Error('deadline'));
        result = await within(settled, CANCEL_GRACE_MS);
      }
      if (result === 'timeout') {
        outcome = { status: 'outcome_unknown', reason: `the action passed its ${action.limits.timeoutMs} ms deadline and did not confirm it stopped` };
      } else if (result.ok) {
        // Even past the deadline: it finished, so this is its result.
        const problem = action.validateOutput(result.output);
        outcome = problem
          ? { status: 'failed', error: { kind: 'system', retryable: false, message: `The connector returned output that does not match the action's output schema: ${problem}` } }
          : { status: 'completed', output: result.output };
      } else if (result.error instanceof OutcomeUnknown) {
        outcome = { status: 'outcome_unknown', reason: result.error.message };
      } else if (timedOut) {
        outcome = {
          status: 'failed',
          error: { kind: 'transient', retryable: true, message: `The action did not finish within its ${action.limits.timeoutMs} ms deadline and was cancelled.` },
        };
      } else {
        if (!isActionError(result.error)) log(`action ${row.id} failed unexpectedly`, result.error);
        outcome = { status: 'failed', error: asActionError(result.error) };
      }
    } catch (error) {
      log(`action ${row.id} could not start`, error);
      outcome = { status: 'failed', error: asActionError(error) };
    }

    // Redact with the lease's secret values too, then bound: what is stored
    // and returned never carries a credential and never exceeds the bound.
    const redactor = ws.redaction.current().withSecrets(secrets);
    const finishedIso = isoAt(clock.now());
    const durationMs = clock.now() - startedMs;
    try {
      if (outcome.status === 'completed') {
        const bounded = boundOutput(redactor.value(outcome.output), action.limits.maxOutputBytes);
        const text = JSON.stringify(bounded.value);
        return await ws.approvals.finishBatched(
          row,
          'completed',
          { output_preview: text, output_truncated: bounded.truncated ? 1 : 0, finished_at: finishedIso, status_reason: null },
          {
            actor: `token:${row.token_id}`,
            event: 'action.completed',
            payload: {
              action: row.action,
              durationMs,
              outputBytes: bounded.bytes,
              truncated: bounded.truncated,
              outputSha256: sha256Hex(text),
              outputExcerpt: truncateUtf8(text, AUDIT_EXCERPT_BYTES),
            },
          },
        );
      }
      if (outcome.status === 'failed') {
        const error = { ...outcome.error, message: redactor.text(outcome.error.message) };
        return await ws.approvals.finishBatched(
          row,
          'failed',
          // status_reason is the sentence displays show beside the status: a plugin's words (which may echo the agent's input) made
          // one visible line, so no display can be handed a forged line (invariant 8). error.message stays as the plugin wrote it.
          { error: canonicalJson(error), finished_at: finishedIso, status_reason: visibleText(error.message) },
          { actor: `token:${row.token_id}`, event: 'action.failed', payload: { action: row.action, durationMs, error } },
        );
      }
      return await ws.approvals.finishBatched(
        row,
        'outcome_unknown',
        { finished_at: finishedIso, status_reason: visibleText(outcome.reason) },
        { actor: 'system', event: 'action.outcome_unknown', payload: { action: row.action, durationMs, reason: outcome.reason } },
      );
    } catch (error) {
      log(`could not record the completion of ${row.id}`, error);
      throw new KernelError(
        'audit_unavailable',
        'The action ran, but its completion could not be written to the audit log, so its result is withheld and its outcome will show as unknown. Ask the operator to check the gateway log and the disk.',
        { status: 503, cause: error },
      );
    } finally {
      done();
    }
  };

  /** Starts execution and waits up to waitMs for it. */
  const executeAndWait = async (
    ws: Workspace,
    row: RequestRow,
    connector: ConnectorDescriptor,
    action: ActionDescriptor,
    rawInput: unknown,
    options: CallOptions,
  ): Promise<ActionRequest> => {
    const execution = execute(ws, row, connector, action, rawInput, options);
    if (options.waitMs === undefined) return execution;
    execution.catch((error) => log(`background action ${row.id} ended with an error`, error));
    const first = await within(execution, options.waitMs);
    if (first !== 'timeout') return first;
    return ws.approvals.require(row.id);
  };

  const resolveConnector = (ws: Workspace, kind: string, actionName: string) => {
    const connector = ws.catalog.get(kind);
    if (!connector) {
      throw new KernelError('connector_unavailable', `No connector for "${kind}" is installed, so this target cannot run actions now. Ask your operator.`, {
        status: 409,
      });
    }
    const action = connector.actions.get(actionName);
    if (!action) {
      throw new KernelError('unknown_action', `The ${kind} connector has no action "${truncateUtf8(actionName, 100)}". get_connector_actions lists the ones you may call.`, {
        status: 404,
      });
    }
    return { connector, action };
  };

  return {
    async recordRejected(rawToken, input, error) {
      const { workspace: ws, token } = deps.authenticate(rawToken);
      await recordRejected(ws, token, input, error.code, error.message);
    },
    async call(rawToken, input, options = {}) {
      const { workspace: ws, token } = deps.authenticate(rawToken);
      const actor = `token:${token.id}`;
      const reject = async (error: KernelError): Promise<never> => {
        await recordRejected(ws, token, input, error.code, error.message);
        throw error;
      };

      // 1. The global switch: discovery still works, nothing runs.
      if (!ws.mcp.isRunning()) {
        await ws.audit
          .commit({
            entries: [
              {
                actor,
                event: 'action.refused',
                subject: { tokenId: token.id },
                payload: { targetRef: truncateUtf8(String(input.targetRef), 200), action: truncateUtf8(String(input.action), 100), reason: 'stopped' },
              },
            ],
          })
          .catch((error) => log('could not audit a refused call', error));
        return { kind: 'stopped', message: 'The operator has switched MCP execution off for now. Nothing was run; ask your operator to switch it on.' };
      }

      let ref: ReturnType<typeof parseTargetRef>;
      try {
        ref = parseTargetRef(String(input.targetRef));
      } catch (error) {
        return reject(error as KernelError);
      }
      const target = ws.targets.cachedTarget(ref.targetId);
      const profile = target ? ws.targets.cachedProfile(ref.profileId) : undefined;
      if (!target || !profile || target.kind !== ref.kind || profile.targetId !== target.id) {
        return reject(
          new KernelError('unknown_target', `There is no target "${truncateUtf8(input.targetRef, 200)}". list_connector_targets shows the targets this token can use.`, {
            status: 404,
          }),
        );
      }
      if (typeof input.action !== 'string' || input.action.length === 0) return reject(errors.invalid('action_name is required.'));

      const reason = input.reason ?? '';
      if (typeof reason !== 'string' || Buffer.byteLength(reason, 'utf8') > KERNEL_LIMITS.maxReasonBytes) {
        return reject(errors.invalid(`reason must be a string of at most ${KERNEL_LIMITS.maxReasonBytes} bytes.`));
      }
      const rawInput = input.input === undefined ? {} : input.input;
      let inputText: string;
      try {
        inputText = canonicalJson(rawInput);
      } catch {
        return reject(errors.invalid('input must be JSON.'));
      }
      const redactor = ws.redaction.current();
      const inputPreview = canonicalJson(redactor.value(rawInput));
      const inputHash = sha256Hex(inputText);
      const nowIso = isoAt(clock.now());
      const base = {
        token_id: token.id,
        token_name: token.name,
        target_id: target.id,
        target_name: target.name,
        profile_id: profile.id,
        profile_label: profile.label,
        connector_id: target.kind,
        action: truncateUtf8(input.action, 100),
        reason: redactor.text(reason),
        input_hash: inputHash,
        created_at: nowIso,
      };

      // 2. The grant, before anything about the action's schema is looked at
      //    (an unauthorized token learns nothing from validation errors).
      const decision = await ws.grants.evaluate(token.id, target.id, profile.id, input.action);
      if (decision.decision === 'denied' || decision.decision === 'blocked') {
        try {
          await ws.approvals.insertBatched(
              {
                ...base,
                id: newId('req'),
                status: 'blocked',
                rule: decision.decision,
                input_sealed: null,
                // A refused call keeps a bounded preview: enough for history, no room for a flood.
                input_preview: Buffer.byteLength(inputPreview, 'utf8') <= 16_384 ? inputPreview : canonicalJson({ truncated: true }),
                idempotency_key: null,
                request_fingerprint: '',
                snapshot: null,
                snapshot_hash: null,
                status_reason: decision.decision === 'denied' ? 'no grant' : 'blocked by a grant',
                expires_at: null,
                started_at: null,
                finished_at: nowIso,
              },
              { actor, event: 'action.blocked', payload: { action: base.action, rule: decision.decision, reason: base.reason } },
          );
        } catch (error) {
          log('could not record a blocked call', error);
        }
        throw grantRefusal();
      }

      // 3. Now the action and its input.
      let resolved: ReturnType<typeof resolveConnector>;
      try {
        resolved = resolveConnector(ws, target.kind, input.action);
      } catch (error) {
        return reject(error as KernelError);
      }
      const { connector, action } = resolved;
      if (Buffer.byteLength(inputText, 'utf8') > KERNEL_LIMITS.maxInputBytes) {
        return reject(errors.invalid(`The input is ${Buffer.byteLength(inputText, 'utf8')} bytes; the most an action accepts is ${KERNEL_LIMITS.maxInputBytes} bytes.`));
      }
      const problem = action.validateInput(rawInput);
      if (problem) {
        return reject(new KernelError('invalid_input', `The input for ${target.kind}.${action.name} is invalid: ${problem}`, { status: 400 }));
      }
      const key = input.idempotencyKey;
      if (key !== undefined && (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key))) {
        return reject(errors.invalid('idempotency_key must be 1-128 characters of letters, digits and . _ : -'));
      }
      const fingerprint = canonicalHash({ targetId: target.id, profileId: profile.id, action: action.name, inputHash });
      const rule = decision.decision;

      // 4. Snapshot + request row (+ the write-ahead intent entry for always_run), atomically.
      const id = newId('req');
      const pending = rule === 'approval_required';
      const snapshotSubject = { token_id: token.id, target_id: target.id, profile_id: profile.id, connector_id: target.kind, action: action.name, input_hash: inputHash };
      const newRow = (snapshot: ApprovalSnapshot) => {
        const stored = snapshotColumns(snapshot);
        return {
        ...base,
        action: action.name,
        id,
        status: pending ? ('approval_pending' as const) : ('running' as const),
        rule,
        // Only a pending request runs later, from its sealed input, after its
        // snapshot is re-checked; an always_run request runs now from memory,
        // and its snapshot hash is in the intent entry.
        input_sealed: pending ? ws.handle.sealer.seal(inputText, inputAad(id)) : null,
        input_preview: inputPreview,
        idempotency_key: key ?? null,
        request_fingerprint: key === undefined ? '' : fingerprint,
        snapshot: pending ? stored.snapshot : null,
        snapshot_hash: stored.snapshot_hash,
        status_reason: null,
        expires_at: pending ? isoAt(clock.now() + ws.settings.get().approvalTtlSeconds * 1000) : null,
        started_at: pending ? null : nowIso,
        };
      };
      const intent = (row: ReturnType<typeof newRow>) => ({
        actor,
        event: pending ? 'action.requested' : 'action.started',
        payload: {
          action: action.name,
          connector: { id: connector.id, version: connector.version },
          rule,
          reason: base.reason,
          input: JSON.parse(inputPreview) as unknown,
          inputHash,
          snapshotHash: row.snapshot_hash,
          ...(pending ? { expiresAt: row.expires_at } : {}),
        },
      });
      let created: { row: RequestRow; request: ActionRequest | undefined; replayed: boolean };
      try {
        if (key === undefined) {
          // The hot path: everything above came from memory; the row and its
          // intent entry go through the group-commit writer.
          const row = newRow(await ws.approvals.snapshotNow(undefined, snapshotSubject));
          created = { ...(await ws.approvals.insertBatched(row, intent(row))), replayed: false };
        } else {
          // With an idempotency key, the lookup and the insert share one transaction.
          created = await ws.db.write(async (tx) => {
            const existing = await ws.approvals.findByIdempotencyKey(tx, token.id, key);
            if (existing) {
              if (existing.request_fingerprint !== fingerprint) {
                throw new KernelError(
                  'idempotency_conflict',
                  `idempotency_key "${key}" was already used for a different request (${existing.id}). Use a new key for a new request.`,
                  { status: 409 },
                );
              }
              return { row: existing, request: undefined, replayed: true };
            }
            const row = newRow(await ws.approvals.snapshotNow(tx, snapshotSubject));
            const request = await ws.approvals.insert(tx, row, intent(row));
            return { row: (await ws.approvals.getRow(tx, id))!, request, replayed: false };
          });
        }
      } catch (error) {
        if (error instanceof KernelError) {
          if (error.code === 'idempotency_conflict') await recordRejected(ws, token, input, error.code, error.message);
          throw error;
        }
        // The write-ahead entry could not be committed: nothing runs (fail closed).
        log('could not write the request and its intent entry', error);
        throw auditUnavailable(error);
      }
      ws.tokens.touch(token.id);
      if (created.replayed || created.row.status !== 'running') {
        const request = created.request ?? (await ws.approvals.require(created.row.id));
        return { kind: 'request', request, replayed: created.replayed };
      }
      // 5. Execute (always_run).
      const request = await executeAndWait(ws, created.row, connector, action, rawInput, options);
      return { kind: 'request', request, replayed: false };
    },

    async runApproved(ws, requestId, actor, note, options = {}) {
      const cleanNote = checkNote(note);
      const shownNote = cleanNote === null ? null : ws.redaction.current().text(cleanNote);
      await ws.approvals.expireDue();
      const row = await ws.approvals.getRow(ws.db, requestId);
      if (!row) throw errors.notFound('Request', requestId);
      if (row.status !== 'approval_pending') {
        throw new KernelError('request_state_conflict', `Request ${requestId} is ${row.status}; only a pending request can be run.`, { status: 409, details: { status: row.status } });
      }
      const connector = ws.catalog.get(row.connector_id);
      const action = connector?.actions.get(row.action);
      let started: { stale: false; row: RequestRow } | { stale: true; request: ActionRequest };
      try {
        started = await ws.db.write(async (tx) => {
          // Invariant 5: recompute the approval context; any drift and the request goes stale instead of running.
          const before = JSON.parse(row.snapshot ?? 'null') as ApprovalSnapshot | null;
          const now = await ws.approvals.snapshotNow(tx, row);
          const drift = before ? describeDrift(before, now) : ['the request has no approval snapshot'];
          if (drift.length === 0 && snapshotHash(now) !== row.snapshot_hash) drift.push('the approval context changed');
          if (drift.length > 0) {
            const request = await ws.approvals.transition(tx, requestId, ['approval_pending'], 'stale', { status_reason: drift.join('; '), finished_at: isoAt(clock.now()) }, {
              actor: 'system',
              event: 'action.staled',
              payload: { action: row.action, reasons: drift },
            });
            return { stale: true as const, request };
          }
          const nowIso = isoAt(clock.now());
          await ws.approvals.transition(tx, requestId, ['approval_pending'], 'running', { decided_at: nowIso, started_at: nowIso, operator_note: shownNote }, {
            actor,
            event: 'action.approved',
            payload: { action: row.action, note: shownNote, snapshotHash: row.snapshot_hash },
          });
          // The write-ahead intent entry, committed with the approval before the connector is called.
          await ws.audit.record(tx, {
            actor: `token:${row.token_id}`,
            event: 'action.started',
            subject: { requestId, tokenId: row.token_id, targetId: row.target_id, profileId: row.profile_id },
            payload: { action: row.action, inputHash: row.input_hash, snapshotHash: row.snapshot_hash, approvedBy: actor },
          });
          if (cleanNote !== null) await ws.messages.sendToAgent({ tokenId: row.token_id, requestId, body: cleanNote }, actor, tx);
          return { stale: false as const, row: (await ws.approvals.getRow(tx, requestId))! };
        });
      } catch (error) {
        if (error instanceof KernelError) throw error;
        log('could not record the approval and intent entry', error);
        throw auditUnavailable(error);
      }
      if (started.stale) return started.request;
      // The snapshot matched, so connector and action exist as approved.
      const rawInput = ws.approvals.openInput(started.row);
      return executeAndWait(ws, started.row, connector!, action!, rawInput, options);
    },
  };
}
