import { createRedactor } from '../redaction/index.js';

/** The kernel's log: a message, and the error behind it when there is one. */
export type Logger = (message: string, error?: unknown) => void;

const redactor = createRedactor({ builtin: true });
/** Enough of a cause chain to find the bug; a loop of causes must not spin. */
const MAX_CAUSES = 5;

/**
 * The error behind a log line, with its stack and causes, redacted by the
 * built-in rules (a stack can quote a connection string or a token). The
 * client is only told "the details are in its log": they must be here.
 */
export function describeError(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < MAX_CAUSES; depth += 1) {
    if (current instanceof Error) {
      const code = (current as { code?: unknown }).code;
      parts.push(`${depth > 0 ? 'caused by: ' : ''}${current.stack ?? `${current.name}: ${current.message}`}${typeof code === 'string' && !String(current.stack).includes(code) ? ` [${code}]` : ''}`);
      current = current.cause;
    } else {
      parts.push(`${depth > 0 ? 'caused by: ' : ''}${typeof current === 'string' ? current : JSON.stringify(current)}`);
      break;
    }
  }
  return redactor.text(parts.join('\n'));
}

/** Writes `[aip] message` to stderr, then the error's stack and causes, indented. */
export function createStderrLogger(write: (text: string) => void = (text) => process.stderr.write(text)): Logger {
  return (message, error) => {
    const detail = error === undefined ? '' : `\n${describeError(error).replace(/^/gm, '    ')}`;
    write(`[aip] ${redactor.text(message)}${detail}\n`);
  };
}
