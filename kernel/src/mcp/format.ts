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

/**
 * A result whose JSON is at most this long is repeated whole in the text
 * part, as the MCP spec recommends for clients that show only text: every
 * answer but a large output fits. Past it the text would double the message
 * (a 512 KiB read became 1 MB), so it carries a preview and says where the
 * rest is.
 */
export const TEXT_COPY_MAX_BYTES = 16 * 1024;
/** The start of a large result shown in the text part: enough to read what it is, a small fraction of the bound. */
export const TEXT_PREVIEW_BYTES = 8 * 1024;

/** Cuts JSON text to at most maxBytes of UTF-8 on a character boundary. */
function previewOf(json: string, maxBytes: number): string {
  const bytes = Buffer.from(json, 'utf8');
  let end = Math.min(maxBytes, bytes.length);
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end -= 1;
  return bytes.subarray(0, end).toString('utf8');
}

/**
 * The MCP CallToolResult: the value once, in structuredContent, and a text
 * rendering for models and clients that show only text. A small result's
 * text repeats it whole; a large one's text is the headline, a bounded
 * preview and a pointer to structuredContent, so the message is the value's
 * size plus a few KiB, never twice it.
 */
export function toCallToolResult(answer: ToolAnswer) {
  const pretty = JSON.stringify(answer.structured, null, 2);
  const prettyBytes = Buffer.byteLength(pretty, 'utf8');
  let text: string;
  if (prettyBytes <= TEXT_COPY_MAX_BYTES) {
    text = `${answer.headline}\n\n${pretty}`;
  } else {
    const compact = JSON.stringify(answer.structured);
    const bytes = Buffer.byteLength(compact, 'utf8');
    text =
      `${answer.headline}\n\nThe full result is ${bytes} bytes of JSON, sent once, in structuredContent; ` +
      `its first ${TEXT_PREVIEW_BYTES} bytes are below. If your client shows only this text, ask for less ` +
      `(a narrower query, a smaller range) to see all of it here.\n\n${previewOf(compact, TEXT_PREVIEW_BYTES)}…`;
  }
  return {
    content: [{ type: 'text' as const, text }],
    structuredContent: answer.structured,
    ...(answer.isError ? { isError: true } : {}),
  };
}
