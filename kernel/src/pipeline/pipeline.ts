import { KernelError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { assertPrincipal, type AgentPrincipal, type OperatorPrincipal, type Principal } from '../lib/principal.js';
import { auditUnavailable } from '../audit/index.js';
import type { ActionDescriptor, ConnectorDescriptor, ProgressUpdate } from '../connectors/index.js';
import { checkNote, type ActionRequest, type RequestRow } from '../approvals/index.js';
import type { PipelineDatabase, PipelineDeps } from './ports.js';
import { createAuthorize, type CallInput } from './authorize.js';
import { createAdmit } from './admit.js';
import { createExecute, within } from './execute.js';
import { createSettle } from './settle.js';
import { recordRejected } from './refusals.js';

export interface CallOptions {
  /** Return `running` if the action takes longer than this; it goes on in the background. Default: wait for it. */
  waitMs?: number;
  onProgress?: (update: ProgressUpdate) => void;
}

export type CallOutcome = { kind: 'stopped'; message: string } | { kind: 'request'; request: ActionRequest; replayed: boolean };

export interface Pipeline {
  /**
   * A call through the stages: authorize -> admit -> execute -> settle. An
   * agent's is held to its grants and the MCP switch; the operator's own (UI,
   * CLI) needs neither and is recorded as theirs.
   */
  call(principal: Principal, input: CallInput, options?: CallOptions): Promise<CallOutcome>;
  /** Audits a call refused before it reached the pipeline (the tool's own arguments were malformed). */
  recordRejected(principal: AgentPrincipal, input: CallInput, error: KernelError): Promise<void>;
  /** The operator's Run on a pending request: re-checks the snapshot (admit), then execute -> settle from the sealed input. */
  runApproved(principal: OperatorPrincipal, requestId: string, note?: string | null, options?: CallOptions): Promise<ActionRequest>;
}

/**
 * The one path every action takes (invariants 4, 5, 6), as four named
 * stages, each in its own file and each owning one thing:
 *   authorize (switch, token, target, grant)      pipeline/authorize.ts
 *   admit     (schema, request row + intent entry) pipeline/admit.ts -> approvals
 *   execute   (invocation scope, plugin call)      pipeline/execute.ts -> executor
 *   settle    (redact, bound, completion entry)    pipeline/settle.ts -> approvals
 * Principals come from the edges (lib/principal.ts); nothing here sees a token string.
 */
export function createPipeline(deps: PipelineDeps): Pipeline {
  const log: Logger = deps.log ?? (() => undefined);
  const authorize = createAuthorize({ clock: deps.clock, log, database: deps.database, currentToken: deps.currentToken });
  const admit = createAdmit({ log });
  const execute = createExecute({ clock: deps.clock, log, executor: deps.executor, scopes: deps.scopes });
  const settle = createSettle({ clock: deps.clock, log });

  /** execute -> settle for a request that is `running` with its intent committed; waits up to waitMs. */
  const run = async (db: PipelineDatabase, row: RequestRow, connector: ConnectorDescriptor, action: ActionDescriptor, input: unknown, options: CallOptions) => {
    const done = db.inflight.begin();
    const execution = (async () => {
      try {
        return await settle(db, row, action, await execute(db, row, connector, action, input, options.onProgress));
      } finally {
        done();
      }
    })();
    if (options.waitMs === undefined) return execution;
    execution.catch((error) => log(`background action ${row.id} ended with an error`, error));
    const first = await within(execution, options.waitMs);
    return first !== 'timeout' ? first : db.approvals.require(row.id);
  };

  return {
    async recordRejected(principal, input, error) {
      assertPrincipal(principal, 'agent');
      const db = deps.database(principal.database);
      const token = deps.currentToken(principal);
      await recordRejected(db, { actor: `token:${token.id}`, subject: { tokenId: token.id } }, input, error.code, error.message, log);
    },

    async call(principal, input, options = {}) {
      assertPrincipal(principal);
      const authorization = await authorize(principal, input);
      if (authorization.kind === 'stopped') return authorization;
      const { authorized } = authorization;
      const admission = await admit(authorized, input);
      if (admission.kind === 'recorded') return { kind: 'request', request: admission.request, replayed: admission.replayed };
      const request = await run(authorized.db, admission.row, admission.connector, admission.action, authorized.input, options);
      return { kind: 'request', request, replayed: false };
    },

    async runApproved(principal, requestId, note, options = {}) {
      assertPrincipal(principal, 'operator');
      const db = deps.database(principal.database);
      const clean = checkNote(note);
      const shown = clean === null ? null : db.redaction.current().text(clean);
      await db.approvals.expireDue();
      let started: Awaited<ReturnType<PipelineDatabase['admissions']['startApproved']>>;
      try {
        started = await db.admissions.startApproved(requestId, principal.actor, { clean, shown });
      } catch (error) {
        if (error instanceof KernelError) throw error;
        log('could not record the approval and intent entry', error);
        throw auditUnavailable(error);
      }
      if (started.stale) return started.request;
      // The snapshot matched, so connector and action exist as approved.
      const connector = db.catalog.get(started.row.connector_id)!;
      const action = connector.actions.get(started.row.action)!;
      return run(db, started.row, connector, action, db.approvals.openInput(started.row), options);
    },
  };
}
