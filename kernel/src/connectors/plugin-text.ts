/**
 * plugin-text — the one place every string a connector sends is bounded and
 * redacted before anyone sees or stores it: outputs, error messages and
 * failure reasons, progress, connection-check results and log lines. A
 * connector is third-party code (invariant 8 for what it writes), so each
 * kind has an explicit cap, everything is redacted with the redactor the
 * caller hands in (built-in and custom rules, and every secret the kernel
 * ever handed the plugin process, not only the current lease), and prose a
 * display would show as it is (progress, log lines, check messages) is made
 * one visible line (lib/visible-text.ts).
 *
 * Redaction runs on the whole text before it is cut, so a cut never leaves
 * the first characters of a secret behind. What it cannot catch: a plugin
 * that encodes the lease it holds for the current call (base64, split in
 * halves). Code serving one credential profile never holds another's (one
 * process per profile, plugin-host), so what it can encode is only the
 * credential of the call it serves.
 */
import type { ConnectionCheckResult, ConnectionProblem } from '@aipermission/plugin-sdk/protocol';
import { boundOutput, truncateUtf8 } from '../lib/bound.js';
import type { Clock } from '../lib/clock.js';
import { visibleText } from '../lib/visible-text.js';
import type { Redactor } from '../redaction/index.js';
import type { ProgressUpdate } from './executor.js';

/** The caps, per kind of string. */
export const PLUGIN_TEXT_LIMITS = {
  /** An error message or failure reason: what the agent is answered, the request row and the audit keep. */
  errorMessageBytes: 4096,
  /** One progress message (a status line, not a report). */
  progressMessageBytes: 512,
  /** Progress counters are finite, non-negative and at most this: MCP progress must still be able to grow by one. */
  progressNumberMax: 1e15,
  /** Progress notifications forwarded per invocation: a burst of this many, then this many a second. */
  progressBurst: 10,
  progressPerSecond: 10,
  /** A connection check's message (one line beside the result). */
  checkMessageBytes: 2048,
  /** A connection check's details, as JSON. */
  checkDetailsBytes: 4096,
  /** One line of a plugin's log. */
  logLineBytes: 4096,
} as const;

const PROBLEMS: readonly ConnectionProblem[] = ['auth_failed', 'network', 'tls', 'timeout', 'config', 'unknown'];

const utf8Bytes = (text: string) => Buffer.byteLength(text, 'utf8');

/**
 * The longest prefix of `shown` (a visibleText rendering) of at most
 * maxBytes of UTF-8 that ends between two of its pieces: never inside an
 * escape (`\u{1b}`, `\n`, `\\`) or a surrogate pair. One pass.
 */
function cutVisible(shown: string, maxBytes: number): string {
  let bytes = 0;
  let end = 0;
  while (end < shown.length) {
    let next = end + 1;
    if (shown[end] === '\\') next = shown[end + 1] === 'u' && shown.indexOf('}', end) > end ? shown.indexOf('}', end) + 1 : end + 2;
    else if (/[\ud800-\udbff]/.test(shown[end]!) && /[\udc00-\udfff]/.test(shown[end + 1] ?? '')) next = end + 2;
    const size = utf8Bytes(shown.slice(end, next));
    if (bytes + size > maxBytes) break;
    bytes += size;
    end = next;
  }
  return shown.slice(0, end);
}

/**
 * Text (already redacted: a cut must never leave the start of a secret)
 * cut to at most maxBytes of UTF-8, with what was cut said at the end; the
 * note fits within the cap. `visible`: made one visible line first.
 */
function cutText(text: string, maxBytes: number, visible: boolean): string {
  // Nothing beyond maxBytes characters can be kept: a character is at least one byte, and rendering only lengthens.
  const head = text.length > maxBytes ? text.slice(0, maxBytes) : text;
  const shown = visible ? visibleText(head) : head;
  if (head === text && utf8Bytes(shown) <= maxBytes) return shown;
  const note = `… (cut: ${utf8Bytes(text)} bytes, at most ${maxBytes} are kept)`;
  const room = maxBytes - utf8Bytes(note);
  // Rendering a prefix gives a prefix of the rendering, so one rendering is cut once.
  return `${visible ? cutVisible(shown, room) : truncateUtf8(shown, room)}${note}`;
}

function finiteCount(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= PLUGIN_TEXT_LIMITS.progressNumberMax ? value : undefined;
}

const isPlainObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

export interface PluginText {
  /**
   * An output, redacted (keys too) and held to the action's bound. Call it
   * after the output was checked against the action's schema: a cut output
   * is a marker object.
   */
  output(value: unknown, maxBytes: number): ReturnType<typeof boundOutput>;
  /**
   * An error message or failure reason: redacted and at most 4 KiB. Its
   * characters stay as they came (displays escape them; the sentence shown
   * beside a status is `line()` of it).
   */
  message(text: string): string;
  /** The same, made one visible line (a status reason). */
  line(text: string): string;
  /** A progress value, or undefined when it is not one: only message, completed and total, each checked. */
  progress(value: unknown): ProgressUpdate | undefined;
  /** A connection check answer, believed only in its protocol shape. */
  checkResult(value: unknown): ConnectionCheckResult;
  /** One log line: redacted, one visible line, at most 4 KiB. */
  logLine(text: string): string;
}

/** The central bound and redaction, with the redactor that applies to this plugin process and database. */
export function pluginText(redactor: Redactor): PluginText {
  const message = (text: string) => cutText(redactor.text(text), PLUGIN_TEXT_LIMITS.errorMessageBytes, false);
  const line = (text: string, maxBytes: number) => cutText(redactor.text(text), maxBytes, true);
  // A counter that is a secret of digits (the password "12345678" sent as completed: 12345678) is dropped too.
  const count = (value: unknown) => {
    const n = finiteCount(value);
    return n !== undefined && redactor.text(String(n)) === String(n) ? n : undefined;
  };
  return {
    output: (value, maxBytes) => boundOutput(redactor.value(value), maxBytes),
    message,
    line: (text) => line(text, PLUGIN_TEXT_LIMITS.errorMessageBytes),
    progress(value) {
      if (!isPlainObject(value)) return undefined;
      const update: ProgressUpdate = {};
      if (typeof value.message === 'string') update.message = line(value.message, PLUGIN_TEXT_LIMITS.progressMessageBytes);
      const completed = count(value.completed);
      const total = count(value.total);
      if (completed !== undefined) update.completed = completed;
      if (total !== undefined) update.total = total;
      return update;
    },
    checkResult(value) {
      if (!isPlainObject(value)) return { ok: false, problem: 'unknown', message: 'The connector did not answer the connection check with a result.' };
      const ok = value.ok === true;
      const result: ConnectionCheckResult = { ok };
      const problem = PROBLEMS.find((p) => p === value.problem);
      if (!ok) result.problem = problem ?? 'unknown';
      if (typeof value.message === 'string') result.message = line(value.message, PLUGIN_TEXT_LIMITS.checkMessageBytes);
      else if (!ok) result.message = 'The connector did not say what failed.';
      if (isPlainObject(value.details)) result.details = boundOutput(redactor.value(value.details), PLUGIN_TEXT_LIMITS.checkDetailsBytes).value as Record<string, unknown>;
      return result;
    },
    logLine: (text) => line(text, PLUGIN_TEXT_LIMITS.logLineBytes),
  };
}

/**
 * Progress of one invocation, rate-limited: a burst, then a steady rate; a
 * report that arrives while none may go waits, and a newer one replaces it,
 * so the agent always ends up with the latest. Nothing is sent after close()
 * (the call ended). Returns how many reports were dropped.
 */
export function createProgressGate(forward: (update: ProgressUpdate) => void, clock: Clock = { now: () => Date.now() }) {
  const { progressBurst: burst, progressPerSecond: rate } = PLUGIN_TEXT_LIMITS;
  let tokens: number = burst;
  let refilledAt = clock.now();
  let waiting: ProgressUpdate | undefined;
  let timer: NodeJS.Timeout | undefined;
  let dropped = 0;
  let closed = false;
  const refill = () => {
    const now = clock.now();
    tokens = Math.min(burst, tokens + ((now - refilledAt) / 1000) * rate);
    refilledAt = now;
  };
  const flush = () => {
    timer = undefined;
    if (closed || !waiting) return;
    refill();
    if (tokens < 1) {
      timer = setTimeout(flush, Math.ceil(((1 - tokens) / rate) * 1000));
      return;
    }
    tokens -= 1;
    const next = waiting;
    waiting = undefined;
    forward(next);
  };
  return {
    push(update: ProgressUpdate) {
      if (closed) return;
      if (waiting) dropped += 1;
      waiting = update;
      if (!timer) flush();
    },
    close(): number {
      closed = true;
      clearTimeout(timer);
      if (waiting) dropped += 1;
      waiting = undefined;
      return dropped;
    },
  };
}
