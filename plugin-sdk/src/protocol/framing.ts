import type { Readable, Writable } from 'node:stream';
import { AbstractMessageReader, AbstractMessageWriter, type DataCallback, type Disposable, type Message, type MessageWriter } from 'vscode-jsonrpc/node';
import { MAX_MESSAGE_BYTES } from './messages.js';

/** The other side broke the framing: garbage on the stream, an oversize message, bad JSON. */
export class ProtocolViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolViolation';
  }
}

/** Longest header block accepted; real headers are ~40 bytes. */
const MAX_HEADER_BYTES = 1024;
const HEADER_LINE = /^[A-Za-z][A-Za-z0-9-]*: ?[^\r\n]*$/;
/** What the start of a header line may look like before it is complete. */
const HEADER_PREFIX = /^(?:[A-Za-z][A-Za-z0-9-]*(?::[^\r\n]*)?)?\r?$/;

/**
 * A Content-Length framed JSON-RPC reader that never trusts the other side:
 * it refuses a message larger than `maxMessageBytes` before buffering it,
 * reports anything that is not a header (a stray `console.log` on stdout) as
 * a protocol violation at once, and never grows its buffer past one message.
 * After a violation it stops reading; the caller decides what to do (the
 * kernel stops the plugin).
 */
export class BoundedMessageReader extends AbstractMessageReader {
  private buffer: Buffer = Buffer.alloc(0);
  private expected = -1;
  private stopped = false;

  constructor(
    private readonly readable: Readable,
    private readonly maxMessageBytes = MAX_MESSAGE_BYTES,
  ) {
    super();
  }

  listen(callback: DataCallback): Disposable {
    const onData = (chunk: Buffer) => this.onData(chunk, callback);
    const onEnd = () => {
      if (!this.stopped && (this.buffer.length > 0 || this.expected >= 0)) {
        this.violate(`the stream ended in the middle of a message (${this.buffer.length} bytes pending)`);
      }
      this.fireClose();
    };
    const onError = (error: Error) => this.fireError(error);
    this.readable.on('data', onData);
    this.readable.on('end', onEnd);
    this.readable.on('error', onError);
    return {
      dispose: () => {
        this.readable.off('data', onData);
        this.readable.off('end', onEnd);
        this.readable.off('error', onError);
      },
    };
  }

  private violate(message: string) {
    this.stopped = true;
    this.buffer = Buffer.alloc(0);
    this.fireError(new ProtocolViolation(message));
  }

  private onData(chunk: Buffer, callback: DataCallback) {
    if (this.stopped) return;
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    while (!this.stopped) {
      if (this.expected < 0) {
        const end = this.buffer.indexOf('\r\n\r\n');
        const headerText = (end < 0 ? this.buffer : this.buffer.subarray(0, end)).toString('latin1');
        // Check what has arrived so far as soon as a line is complete: a
        // stray print is reported now, not after a kilobyte of waiting.
        const lines = headerText.split('\r\n');
        const complete = end < 0 ? lines.slice(0, -1) : lines;
        const partial = end < 0 ? (lines[lines.length - 1] ?? '') : '';
        if (complete.some((line) => !HEADER_LINE.test(line)) || !HEADER_PREFIX.test(partial)) {
          this.violate(`output on the protocol stream that is not a message header: ${JSON.stringify(headerText.slice(0, 80))}`);
          return;
        }
        if (end < 0) {
          if (this.buffer.length > MAX_HEADER_BYTES) this.violate('a message header longer than 1 KiB');
          return;
        }
        const lengthLine = complete.find((line) => /^content-length:/i.test(line));
        const length = lengthLine ? Number(lengthLine.slice(lengthLine.indexOf(':') + 1).trim()) : Number.NaN;
        if (!Number.isInteger(length) || length < 0) {
          this.violate('a message header without a valid Content-Length');
          return;
        }
        if (length > this.maxMessageBytes) {
          this.violate(`a message of ${length} bytes, over the ${this.maxMessageBytes}-byte limit`);
          return;
        }
        this.expected = length;
        this.buffer = this.buffer.subarray(end + 4);
      }
      if (this.buffer.length < this.expected) return;
      const body = this.buffer.subarray(0, this.expected);
      this.buffer = this.buffer.subarray(this.expected);
      this.expected = -1;
      let message: Message;
      try {
        message = JSON.parse(body.toString('utf8')) as Message;
      } catch {
        this.violate('a message body that is not JSON');
        return;
      }
      callback(message);
    }
  }
}

/**
 * A Content-Length framed JSON-RPC writer that puts each message on the
 * stream in one write (header and body together) and does not wait for one
 * write's callback before the next. vscode-jsonrpc's StreamMessageWriter
 * writes the header, awaits the callback, then writes the body: two system
 * calls and an extra event-loop turn per message, and a reader that may wake
 * up for the header alone. Order is the stream's own; a stream error is
 * reported once through onError.
 */
export class FramedMessageWriter extends AbstractMessageWriter implements MessageWriter {
  private errorCount = 0;

  constructor(private readonly writable: Writable) {
    super();
    writable.on('error', (error: Error) => this.fireError(error, undefined, ++this.errorCount));
    writable.on('close', () => this.fireClose());
  }

  write(message: Message): Promise<void> {
    const body = JSON.stringify(message);
    const frame = Buffer.from(`Content-Length: ${Buffer.byteLength(body, 'utf8')}\r\n\r\n${body}`, 'utf8');
    return new Promise((resolve, reject) => {
      if (this.writable.destroyed || !this.writable.writable) {
        const error = new Error('the stream is closed');
        this.fireError(error, message, ++this.errorCount);
        reject(error);
        return;
      }
      this.writable.write(frame, (error) => {
        if (error) {
          this.fireError(error, message, ++this.errorCount);
          reject(error);
        } else resolve();
      });
    });
  }

  end(): void {
    this.writable.end();
  }
}
