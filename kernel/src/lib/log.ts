import { write as fsWrite, writeSync } from 'node:fs';
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

/**
 * What the log may hold in memory while the file or terminal behind it is
 * slower than what is logged (1 MiB): past it lines are dropped and counted,
 * so a flood (a plugin's, an agent's) costs the gateway neither memory nor
 * a blocked event loop.
 */
export const LOG_QUEUE_MAX_BYTES = 1024 * 1024;
/** How long to wait before writing again to a pipe that said EAGAIN (full, non-blocking). */
const RETRY_MS = 20;

/**
 * A bounded, asynchronous writer to a file descriptor (stderr by default).
 * `process.stderr.write` is synchronous for files and pipes on Linux: every
 * line a flood makes would be written on the event loop, which then answers
 * nothing else (a plugin's stderr flood slowed /api/status to seconds).
 * Here lines are queued and written by the thread pool one batch at a time;
 * what does not fit in `maxQueuedBytes` is dropped and counted, and the count
 * is written as a line of its own ("N log lines dropped") as soon as there is
 * room. At exit what is still queued is written synchronously (it is bounded).
 */
export function createAsyncFdSink(fd = 2, maxQueuedBytes = LOG_QUEUE_MAX_BYTES): { write(text: string): void; flushSync(): void; readonly dropped: number } {
  let queue: string[] = [];
  let queuedBytes = 0;
  let writing = false;
  let dropped = 0;
  let droppedTotal = 0;
  const take = (): Buffer => {
    const data = Buffer.from(queue.join(''), 'utf8');
    queue = [];
    queuedBytes = 0;
    return data;
  };
  const noteDrops = () => {
    if (dropped === 0) return;
    const marker = `[aip] ${dropped} log line${dropped === 1 ? '' : 's'} dropped: more was logged than could be written (at most ${maxQueuedBytes} bytes wait in memory)\n`;
    dropped = 0;
    queue.push(marker);
    queuedBytes += marker.length;
  };
  const pump = () => {
    if (writing) return;
    noteDrops();
    if (queuedBytes === 0) return;
    writing = true;
    const data = take();
    const writeFrom = (offset: number) => {
      fsWrite(fd, data, offset, data.length - offset, null, (error, written) => {
        if (error) {
          if ((error as NodeJS.ErrnoException).code === 'EAGAIN') {
            setTimeout(() => writeFrom(offset), RETRY_MS).unref();
            return;
          }
          // The log is gone (a closed pipe): nothing to tell, nowhere to tell it.
          writing = false;
          return;
        }
        if (offset + written < data.length) return writeFrom(offset + written);
        writing = false;
        pump();
      });
    };
    writeFrom(0);
  };
  const sink = {
    write(text: string) {
      if (queuedBytes + text.length > maxQueuedBytes) {
        dropped += 1;
        droppedTotal += 1;
        return;
      }
      queue.push(text);
      queuedBytes += text.length;
      pump();
    },
    flushSync() {
      noteDrops();
      if (queuedBytes === 0) return;
      try {
        writeSync(fd, take());
      } catch {
        // nowhere to write
      }
    },
    get dropped() {
      return droppedTotal;
    },
  };
  return sink;
}

let stderrSink: ReturnType<typeof createAsyncFdSink> | undefined;
/** The one asynchronous stderr sink of this process (flushed at exit). */
function sharedStderrSink() {
  if (!stderrSink) {
    const sink = createAsyncFdSink(2);
    stderrSink = sink;
    process.once('exit', () => sink.flushSync());
  }
  return stderrSink;
}

/**
 * Writes `[aip] message` to stderr (through the bounded asynchronous sink
 * above unless `write` is given), then the error's stack and causes, indented.
 */
export function createStderrLogger(write?: (text: string) => void): Logger {
  const out = write ?? ((text: string) => sharedStderrSink().write(text));
  return (message, error) => {
    const detail = error === undefined ? '' : `\n${describeError(error).replace(/^/gm, '    ')}`;
    out(`[aip] ${redactor.text(message)}${detail}\n`);
  };
}
