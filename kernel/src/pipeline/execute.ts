import { isActionError } from '@aipermission/plugin-sdk';
import type { Clock } from '../lib/clock.js';
import { KernelError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { createProgressGate, OutcomeUnknown, PLUGIN_TEXT_LIMITS, pluginText, type ActionDescriptor, type ActionExecutor, type ConnectorDescriptor, type ProgressUpdate } from '../connectors/index.js';
import type { RequestError, RequestRow } from '../approvals/index.js';
import type { InvocationScopes } from '../invocations/index.js';
import type { PipelineDatabase } from './ports.js';

/** After cancelling at the deadline, how long the executor gets to confirm before the outcome is declared unknown. */
const CANCEL_GRACE_MS = 5_000;

export type Outcome = { status: 'completed'; output: unknown } | { status: 'failed'; error: RequestError } | { status: 'outcome_unknown'; reason: string };

/**
 * What one plugin call came to, with the secrets to redact what is kept
 * with: its lease's, and every other one the executor ever handed to the
 * code that ran it (a plugin process may have kept an earlier lease).
 */
export interface Executed {
  outcome: Outcome;
  secrets: string[];
  durationMs: number;
}

/** Races a promise against a timer that is always cleared, so finished calls leave no timers behind. */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
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

/** A connector's failure as a request's error: the SDK's ActionError (its userMessage), or a defect kept out of the answer. */
export function asRequestError(error: unknown): RequestError {
  if (isActionError(error)) return { kind: error.kind, retryable: error.retryable, message: error.userMessage };
  // Anything else is a defect in the connector or host; its detail stays in
  // the log and never reaches the agent.
  return { kind: 'system', retryable: false, message: 'The connector failed unexpectedly. The operator can find details in the gateway log.' };
}

/**
 * Stage 3, execute: the one plugin call of a request whose intent entry is
 * committed. It opens the invocation scope (the one profile's credential,
 * what the kernel opens for the plugin), calls the executor, holds it to the
 * action's deadline (cancel, then a grace, then `outcome_unknown`), and
 * disposes the scope when the call is over, whatever happened. It never
 * throws: every ending is an outcome.
 */
export function createExecute(deps: { clock: Clock; log: Logger; executor: ActionExecutor; scopes: InvocationScopes }) {
  const { clock, log, executor, scopes } = deps;
  return async function execute(
    db: PipelineDatabase,
    row: RequestRow,
    connector: ConnectorDescriptor,
    action: ActionDescriptor,
    input: unknown,
    onProgress?: (update: ProgressUpdate) => void,
  ): Promise<Executed> {
    const startedMs = clock.now();
    let secrets: string[] = [];
    let outcome: Outcome;
    let scope: ReturnType<InvocationScopes['open']> | undefined;
    let progress: ReturnType<typeof createProgressGate> | undefined;
    try {
      const target = db.targets.cachedTarget(row.target_id);
      if (!target) throw new KernelError('unknown_target', 'The target was deleted while the action was starting.', { status: 409 });
      const credential = db.credentials.open(row.profile_id);
      secrets = [...credential.secretValues(), ...(executor.handedSecrets?.() ?? [])];
      scope = scopes.open({ invocationId: row.id, connectorId: connector.id, database: db.name, targetId: target.id, profileId: row.profile_id, credential });
      const controller = new AbortController();
      // Progress goes straight to the agent: through the central bound and redaction first, then a rate limit (plugin-text.ts).
      const text = onProgress ? pluginText(db.redaction.current().withSecrets(secrets)) : undefined;
      progress = onProgress ? createProgressGate(onProgress, clock) : undefined;
      const settled = executor
        .invoke({
          invocationId: row.id,
          connector,
          action,
          target: { id: target.id, kind: target.kind, config: target.config },
          scope,
          input,
          signal: controller.signal,
          onProgress: (value) => {
            const update = text?.progress(value);
            if (update) progress?.push(update);
          },
          policy: { requireBwrapForThirdParty: db.settings.get().requireBwrapForThirdParty },
        })
        .then(
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
        outcome = { status: 'failed', error: asRequestError(result.error) };
      }
    } catch (error) {
      log(`action ${row.id} could not start`, error);
      outcome = { status: 'failed', error: asRequestError(error) };
    } finally {
      // From here on a plugin message naming this invocation gets nothing.
      const dropped = progress?.close() ?? 0;
      if (dropped > 0) log(`action ${row.id}: ${dropped} progress reports were not forwarded (at most ${PLUGIN_TEXT_LIMITS.progressPerSecond} a second)`);
      await scope?.dispose();
    }
    // Whatever the executor handed out during the call is redacted too.
    secrets = [...new Set([...secrets, ...(executor.handedSecrets?.() ?? [])])];
    return { outcome, secrets, durationMs: clock.now() - startedMs };
  };
}
