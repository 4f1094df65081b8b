import { canonicalJson, sha256Hex } from '../lib/canonical.mjs';
import { isoAt, type Clock } from '../lib/clock.js';
import { KernelError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { pluginText, type ActionDescriptor } from '../connectors/index.js';
import { requesterOf, type ActionRequest, type RequestRow } from '../approvals/index.js';
import type { PipelineDatabase } from './ports.js';
import type { Executed } from './execute.js';
import { truncateUtf8 } from './bound.js';

/** How much of an output an audit entry keeps; the request row keeps the (bounded) whole. */
const AUDIT_EXCERPT_BYTES = 2048;

/**
 * Stage 4, settle: what came back is redacted (the lease's secret values,
 * and every other secret the executor handed the code that ran it) and
 * bounded, through the central plugin-text bounds (connectors/plugin-text.ts):
 * the output to the action's bound, an error message or failure reason to
 * 4 KiB. Then the approvals module records the request's end with its
 * completion entry. What is stored and returned never carries a credential
 * and never exceeds the bound. If the completion cannot be written, the
 * result is withheld (503).
 */
export function createSettle(deps: { clock: Clock; log: Logger }) {
  const { clock, log } = deps;
  return async function settle(db: PipelineDatabase, row: RequestRow, action: ActionDescriptor, { outcome, secrets, durationMs }: Executed): Promise<ActionRequest> {
    const text = pluginText(db.redaction.current().withSecrets(secrets));
    const finishedIso = isoAt(clock.now());
    try {
      if (outcome.status === 'completed') {
        const bounded = text.output(outcome.output, action.limits.maxOutputBytes);
        const json = JSON.stringify(bounded.value);
        return await db.approvals.finishBatched(
          row,
          'completed',
          { output_preview: json, output_truncated: bounded.truncated ? 1 : 0, finished_at: finishedIso, status_reason: null },
          {
            actor: requesterOf(row),
            event: 'action.completed',
            payload: {
              action: row.action,
              durationMs,
              outputBytes: bounded.bytes,
              truncated: bounded.truncated,
              outputSha256: sha256Hex(json),
              outputExcerpt: truncateUtf8(json, AUDIT_EXCERPT_BYTES),
            },
          },
        );
      }
      if (outcome.status === 'failed') {
        const error = { ...outcome.error, message: text.message(outcome.error.message) };
        return await db.approvals.finishBatched(
          row,
          'failed',
          // status_reason is the sentence displays show beside the status: a plugin's words (which may echo the agent's input) made
          // one visible line, so no display can be handed a forged line (invariant 8). error.message stays as the plugin wrote it
          // (redacted and bounded).
          { error: canonicalJson(error), finished_at: finishedIso, status_reason: text.line(outcome.error.message) },
          { actor: requesterOf(row), event: 'action.failed', payload: { action: row.action, durationMs, error } },
        );
      }
      // The reason can quote the plugin (a protocol violation, a refused handshake): bounded and redacted like its messages.
      const reason = text.message(outcome.reason);
      return await db.approvals.finishBatched(
        row,
        'outcome_unknown',
        { finished_at: finishedIso, status_reason: text.line(outcome.reason) },
        { actor: 'system', event: 'action.outcome_unknown', payload: { action: row.action, durationMs, reason } },
      );
    } catch (error) {
      log(`could not record the completion of ${row.id}`, error);
      throw new KernelError(
        'audit_unavailable',
        `The action ran, but its completion could not be written to the audit log, so its result is withheld and request ${row.id} now shows as outcome_unknown: check the target before retrying. Ask the operator to check the gateway log and the disk.`,
        { status: 503, cause: error },
      );
    }
  };
}
