import type { ActionRequest, RequestStatus } from '../approvals/index.js';
import type { Message } from '../messages/index.js';

/** What a tool answers: structured content for programs, a text rendering for models, isError for failures. */
export interface ToolAnswer {
  structured: Record<string, unknown>;
  headline: string;
  isError?: boolean;
}

/** How long an agent should wait before polling again, per non-final status. */
export const RETRY_AFTER_SECONDS: Partial<Record<RequestStatus, number>> = {
  // A human reads and decides: polling faster than every 10 s only adds noise.
  approval_pending: 10,
  // Connectors report progress; a couple of seconds keeps a long action responsive.
  running: 2,
};

const HINTS: Record<RequestStatus, string> = {
  approval_pending:
    'Waiting for the operator to approve or decline this request. Call get_connector_action_request with this request_id after retry_after_seconds. Do not send the same request again.',
  running: 'The action is still running. Call get_connector_action_request with this request_id after retry_after_seconds.',
  completed: 'The action completed; its output is in `output`.',
  failed: 'The action failed; `error` says why and whether retrying can help.',
  declined: 'The operator declined this request. Do not retry it unless the operator asks you to; their note, if any, is in operator_note.',
  blocked: 'This token may not run that action on that target. Ask your operator if you need it; do not try to get around the rule.',
  stale:
    'What was approved no longer matches the current configuration (see status_reason), so nothing ran. Send a fresh request if you still need it.',
  expired: 'Nobody approved the request in time, so nothing ran. Send a fresh request if you still need it.',
  canceled: 'The request was canceled before it ran.',
  outcome_unknown:
    'The gateway lost track of this action while it ran; it may or may not have taken effect. Check the target before deciding to retry, and tell your operator.',
};

export function hintFor(status: RequestStatus): string {
  return HINTS[status];
}

/** A request as the agent sees it: its own request, redacted, bounded, with what to do next. */
export function requestAnswer(request: ActionRequest): ToolAnswer {
  const structured: Record<string, unknown> = {
    request_id: request.id,
    status: request.status,
    target_ref: request.targetRef,
    action: request.action,
    created_at: request.createdAt,
  };
  if (request.status === 'completed') {
    structured.output = request.output;
    if (request.outputTruncated) structured.output_truncated = true;
  }
  if (request.error) structured.error = request.error;
  if (request.statusReason && request.status !== 'completed') structured.status_reason = request.statusReason;
  if (request.operatorNote) structured.operator_note = request.operatorNote;
  if (request.expiresAt && request.status === 'approval_pending') structured.expires_at = request.expiresAt;
  if (request.finishedAt) structured.finished_at = request.finishedAt;
  const retry = RETRY_AFTER_SECONDS[request.status];
  if (retry !== undefined) structured.retry_after_seconds = retry;
  structured.assistant_hint = HINTS[request.status];
  const headline =
    request.status === 'completed'
      ? `${request.action} completed (request ${request.id}).`
      : request.status === 'failed'
        ? `${request.action} failed: ${request.error?.message ?? 'unknown error'} (request ${request.id}).`
        : `Request ${request.id} is ${request.status}.${request.statusReason ? ` ${request.statusReason}.` : ''}`;
  return { structured, headline, isError: request.status === 'failed' };
}

/** A kernel refusal or error as a tool result: the code, the message, and never a way around. */
export function errorAnswer(code: string, message: string): ToolAnswer {
  return { structured: { error: { code, message } }, headline: message, isError: true };
}

/** Notes from the operator, delivered with whatever this response answers. */
export function withNotes(answer: ToolAnswer, notes: readonly Message[]): ToolAnswer {
  if (notes.length === 0) return answer;
  return {
    ...answer,
    structured: {
      ...answer.structured,
      operator_messages: notes.map((note) => ({ id: note.id, text: note.body, sent_at: note.createdAt, ...(note.requestId ? { request_id: note.requestId } : {}) })),
    },
    headline: `${answer.headline}\n\nMessage${notes.length > 1 ? 's' : ''} from your operator:\n${notes.map((note) => `- ${note.body}`).join('\n')}`,
  };
}

/** The MCP CallToolResult: structured content plus a bounded text rendering of the same. */
export function toCallToolResult(answer: ToolAnswer) {
  return {
    content: [{ type: 'text' as const, text: `${answer.headline}\n\n${JSON.stringify(answer.structured, null, 2)}` }],
    structuredContent: answer.structured,
    ...(answer.isError ? { isError: true } : {}),
  };
}
