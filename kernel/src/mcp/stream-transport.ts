import type { Duplex } from 'node:stream';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { isJSONRPCErrorResponse, isJSONRPCRequest, isJSONRPCResultResponse, type JSONRPCMessage, type RequestId } from '@modelcontextprotocol/sdk/types.js';
import { parseLine, type JsonRpcErrorMessage } from './jsonrpc.js';
import type { ByteBudget } from './byte-budget.js';

export interface StreamTransportOptions {
  /** The largest message (one line) accepted; a longer one, or one that never ends, closes the connection. */
  maxLineBytes: number;
  /** After the peer half-closes, how long answers to its requests still in flight may take before the connection ends. */
  drainMs: number;
  /** Shared with every other message being read: the bytes of an unfinished line count against it; what does not fit closes the connection. */
  budget?: ByteBudget;
}

/**
 * How long an ended connection waits for the peer to take the last bytes
 * before it is destroyed: a peer that stops reading never holds the socket.
 */
const LINGER_MS = 2000;

/**
 * MCP's stdio framing (newline-delimited JSON-RPC) on one socket: the
 * gateway's side of the `aip mcp` bridge. In place of the SDK's
 * StdioServerTransport, which buffers a line by re-copying it on every chunk,
 * drops malformed lines without an answer, and never notices the peer
 * half-closing, this one:
 * - bounds each line as it arrives (no copy until the line is whole; a line
 *   over the cap closes the connection): invariant 8, an agent's endless line
 *   costs the gateway at most the cap;
 * - answers a line that is not JSON with -32700 and a message that is not
 *   JSON-RPC with -32600, as JSON-RPC requires (id when readable, else null);
 * - ends the session when the peer half-closes (the bridge's stdin ended):
 *   answers still in flight get `drainMs`, then the connection closes, so no
 *   closed bridge keeps a session or leaves a socket in CLOSE-WAIT.
 */
export class StreamTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;

  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private readonly inFlight = new Set<RequestId>();
  private peerEnded = false;
  private closed = false;
  private drainTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: Duplex,
    private readonly options: StreamTransportOptions,
  ) {}

  async start(): Promise<void> {
    this.socket.on('data', this.onData);
    this.socket.on('end', this.onEnd);
    this.socket.once('close', () => this.finish());
    this.socket.on('error', (error: Error) => {
      this.onerror?.(error);
      this.finish();
    });
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if ((isJSONRPCResultResponse(message) || isJSONRPCErrorResponse(message)) && message.id !== undefined) this.inFlight.delete(message.id);
    await this.write(message);
    if (this.peerEnded && this.inFlight.size === 0) this.finish();
  }

  async close(): Promise<void> {
    this.finish();
  }

  private write(message: JSONRPCMessage | JsonRpcErrorMessage): Promise<void> {
    if (this.closed || this.socket.destroyed || !this.socket.writable) return Promise.resolve();
    return new Promise((resolve) => {
      if (this.socket.write(`${JSON.stringify(message)}\n`)) return resolve();
      // Backpressure: wait for the peer to read, or for the connection to go.
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.once('drain', done);
      this.socket.once('close', done);
    });
  }

  private readonly onData = (chunk: Buffer): void => {
    let start = 0;
    while (!this.closed) {
      const newline = chunk.indexOf(0x0a, start);
      if (newline < 0) break;
      const piece = chunk.subarray(start, newline);
      start = newline + 1;
      if (this.pendingBytes + piece.length > this.options.maxLineBytes) return this.overflow();
      const line = this.pending.length === 0 ? piece : Buffer.concat([...this.pending, piece]);
      this.dropPending();
      this.handleLine(line);
    }
    if (this.closed || start >= chunk.length) return;
    const rest = chunk.subarray(start);
    if (this.pendingBytes + rest.length > this.options.maxLineBytes) return this.overflow();
    if (this.options.budget && !this.options.budget.take(rest.length)) return this.overflow('a message past the budget shared by all messages being read');
    // A tail of a chunk is copied: its subarray would keep the whole chunk alive, uncounted.
    this.pending.push(start === 0 ? chunk : Buffer.from(rest));
    this.pendingBytes += rest.length;
  };

  private dropPending(): void {
    this.options.budget?.give(this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
  }

  private handleLine(raw: Buffer): void {
    const text = raw.toString('utf8').replace(/\r$/, '');
    // Blank lines carry nothing (some clients send one after each message).
    if (text.trim() === '') return;
    const parsed = parseLine(text);
    if ('error' in parsed) {
      void this.write(parsed.error);
      return;
    }
    if (isJSONRPCRequest(parsed.message)) this.inFlight.add(parsed.message.id);
    this.onmessage?.(parsed.message);
  }

  /**
   * A message over the cap (ended or not), or over what the shared budget has
   * left: stop reading and close the connection. Nothing past the cap is
   * buffered or read. No answer is written first: a peer that is not reading
   * would then never see the connection end (its unread answer holds back
   * the end of the stream).
   */
  private overflow(reason = `a message over ${this.options.maxLineBytes} bytes`): void {
    this.onerror?.(new Error(`${reason} closed the connection`));
    this.finish();
  }

  private readonly onEnd = (): void => {
    // The peer half-closed (the bridge's stdin ended): it sends nothing more.
    this.peerEnded = true;
    if (this.inFlight.size === 0) return this.finish();
    this.drainTimer = setTimeout(() => this.finish(), this.options.drainMs);
    this.drainTimer.unref();
  };

  /** Ends the connection once, whoever asked first (the peer, the server, a lock, an overflow). */
  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.drainTimer);
    this.socket.off('data', this.onData);
    // Nothing more is read: whatever the peer still sends stays unread.
    this.socket.pause();
    this.dropPending();
    if (!this.socket.destroyed) {
      this.socket.end();
      const destroy = () => this.socket.destroy();
      if (this.socket.writableFinished) destroy();
      else this.socket.once('finish', destroy);
      setTimeout(destroy, LINGER_MS).unref();
    }
    this.onclose?.();
  }
}
