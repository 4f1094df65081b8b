import { spawn, type ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';
import { createMessageConnection, CancellationTokenSource, ConnectionError, ErrorCodes, ResponseError, type Message, type MessageConnection } from 'vscode-jsonrpc/node';
import {
  BoundedMessageReader,
  FramedMessageWriter,
  ConnectionCheckRequest,
  ExitNotification,
  InitializeRequest,
  InitializedNotification,
  InvocationProgress,
  InvokeRequest,
  LogNotification,
  MAX_MESSAGE_BYTES,
  PROTOCOL_VERSIONS,
  ProtocolViolation,
  ShutdownRequest,
  SignRequest,
  HostKeyRequest,
  V1WireErrorCodes,
  WireErrorCodes,
  type ConnectionCheckParams,
  type ConnectionCheckResult,
  type InitializeResult,
  type InvokeParams,
  type ProgressValue,
} from '@aipermission/plugin-sdk/protocol';
import type { SpawnSpec } from './sandbox.js';
import { watchScratch } from './scratch-quota.js';
import type { InvocationScope } from '../invocations/index.js';

/** Why a plugin process is not (or no longer) usable; the message is for the operator. */
export class PluginUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PluginUnavailable';
  }
}

/** The plugin died or was killed while a call was in flight: whether the action took effect is unknown. */
export class PluginLostDuringCall extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PluginLostDuringCall';
  }
}

/**
 * The call never reached a live plugin: the process had exited (or its pipe
 * was closed) before the request was written to it, or the write itself
 * failed. The action did not run, so retrying is safe.
 */
export class PluginNotReached extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PluginNotReached';
  }
}

/** What to do about a plugin that speaks another protocol version (PROTOCOL.md "Versioning": the message says how to fix it). */
const REBUILD = `rebuild it with the current @aipermission/plugin-sdk and install it again (a built-in: pnpm run build; a connector in another language: implement protocol version ${PROTOCOL_VERSIONS.join(', ')} of docs/protocol.md)`;

/** Why a handshake was refused, with what to do: a plugin answering with version 1's code was built with an SDK that speaks only version 1. */
function handshakeRefusal(error: ResponseError<unknown>): string {
  const said = `refused the handshake: ${error.message}`;
  if (error.code === V1WireErrorCodes.ProtocolVersionUnsupported) {
    return `${said} (it was built for plugin protocol version 1; this gateway speaks ${PROTOCOL_VERSIONS.join(', ')}: ${REBUILD})`;
  }
  if (error.code === WireErrorCodes.ProtocolVersionUnsupported) return `${said} (this gateway speaks plugin protocol version ${PROTOCOL_VERSIONS.join(', ')})`;
  return said;
}

/** Why a process ended on its own, said plainly where the system ended it for a limit (sandbox.ts limitArgs). */
function exitDescription(code: number | null, signal: NodeJS.Signals | null): string {
  if (signal === 'SIGXFSZ') return 'was ended by the system for writing a file larger than its scratch quota (RLIMIT_FSIZE)';
  if (signal === 'SIGXCPU') return 'was ended by the system for using more CPU time than allowed (RLIMIT_CPU)';
  return `exited unexpectedly (${signal ? `signal ${signal}` : `code ${code}`})`;
}

/** Bounds of the stop escalation; each step is given this long before the next, harsher one. */
export const STOP_STEPS_MS = { shutdown: 2_000, exit: 1_000, stdinClosed: 1_000, sigterm: 2_000, sigkill: 2_000 } as const;
/** Longest log line kept (bytes); a flood of one huge line is cut, not buffered. */
const MAX_LOG_LINE = 4096;
/**
 * What of one line is handed to `redact`, which redacts it whole and then
 * cuts it to its cap (plugin-text.ts): generous, so a secret is never split
 * by this cut before redaction sees it, and bounded, so redaction is.
 */
const MAX_LOG_LINE_REDACTED = 16 * MAX_LOG_LINE;
/** Log lines kept in memory per plugin process (the rest went to the gateway log). */
const LOG_RING = 200;

/**
 * What one plugin process may make the kernel do, per second and in all
 * (issue 10 item 5: a plugin flooding stderr slowed /api/status to seconds
 * and grew the gateway's log by 50 MB in 3 s; one sending 64 KiB method
 * names without reading its stdin grew the gateway by 800 MiB in 5 s).
 */
export interface PluginIoLimits {
  /** Log lines (stderr and plugin/log) taken per second, on average; the rest are dropped and counted. A connector logs a few lines per call. */
  logLinesPerSecond: number;
  /** Log lines taken at once before the rate applies (a start-up or a stack trace). */
  logBurst: number;
  /** Bytes of log one process may put in the gateway's log in all; past it lines are dropped and counted. */
  logBytesPerProcess: number;
  /** Plugin-to-kernel requests taken per second, on average (kernel/sign, kernel/hostKey: a few per call); over it the plugin is stopped. */
  requestsPerSecond: number;
  /** Plugin-to-kernel requests taken at once before the rate applies. */
  requestBurst: number;
  /** Answers to the plugin's requests not yet taken by it: more means it does not read its stdin, and it is stopped. */
  maxRequestsInFlight: number;
  /** Bytes the kernel wrote to the plugin's stdin that it has not read: more and it is stopped (a call's input is far below it). */
  maxUnreadBytes: number;
  /** Bytes a second the plugin may send on stdout, on average: every byte is parsed on the kernel's event loop. Over it (past the burst), it is stopped. */
  stdoutBytesPerSecond: number;
  /** Bytes it may send at once before that rate applies: sixteen calls each answering a 4 MiB output fit in it. */
  stdoutBurstBytes: number;
}

/** Defaults with their reasons (each in PluginIoLimits). */
export const PLUGIN_IO_LIMITS: PluginIoLimits = {
  logLinesPerSecond: 100,
  logBurst: 400,
  // 4 MiB: a long-running connector's worth of ordinary logging; its ring of recent lines keeps going in memory.
  logBytesPerProcess: 4 * 1024 * 1024,
  requestsPerSecond: 50,
  requestBurst: 200,
  maxRequestsInFlight: 64,
  // Two of the largest message either side accepts: room for a call's input while the plugin reads it.
  maxUnreadBytes: 2 * MAX_MESSAGE_BYTES,
  // 32 MiB a second is eight 4 MiB outputs a second, sustained; a stream of 8 MiB messages nobody asked for is parsed for seconds at most.
  stdoutBytesPerSecond: 32 * 1024 * 1024,
  stdoutBurstBytes: 96 * 1024 * 1024,
};

/** Longest piece of a plugin's own words (a method name) the kernel quotes back to it or to the log. */
const MAX_ECHO = 64;

/** At most MAX_ECHO characters of what a plugin sent, marked when cut, for an error message or a log line. */
export function echoOf(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  return text.length > MAX_ECHO ? `${text.slice(0, MAX_ECHO)}… (${text.length} characters)` : text;
}

/** A token bucket: `take()` is false once `burst` were taken faster than `perSecond`. */
class Bucket {
  private tokens: number;
  private at = Date.now();
  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }
  take(amount = 1): boolean {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.perSecond);
    this.at = now;
    if (this.tokens < amount) return false;
    this.tokens -= amount;
    return true;
  }
}

/**
 * The kernel's writer to a plugin's stdin, watched: a plugin that does not
 * read what it is sent (the pipe is full and the kernel's buffer grows past
 * `maxUnreadBytes`, or more than `maxRequestsInFlight` answers to its own
 * requests wait) is reported to `onStalled` and gets nothing more.
 */
class WatchedWriter extends FramedMessageWriter {
  /** Answers to the plugin's requests written but not yet taken by the pipe. */
  answersPending = 0;
  stopped = false;
  constructor(
    private readonly stdin: Writable,
    private readonly limits: Pick<PluginIoLimits, 'maxUnreadBytes' | 'maxRequestsInFlight'>,
    private readonly onStalled: (reason: string) => void,
    /** Told, per message, whether it went into the pipe whole (true) or not at all / not whole (false). */
    private readonly onWrite?: (message: Message, whole: Promise<boolean>) => void,
  ) {
    super(stdin);
  }
  override write(message: Message): Promise<void> {
    // Stopped: a plugin that broke a bound is answered nothing more.
    if (this.stopped) {
      this.onWrite?.(message, Promise.resolve(false));
      return Promise.resolve();
    }
    const answer = !('method' in message) && 'id' in message;
    if (answer) this.answersPending += 1;
    const written = super.write(message).finally(() => {
      if (answer) this.answersPending -= 1;
    });
    this.onWrite?.(
      message,
      written.then(
        () => true,
        () => false,
      ),
    );
    if (this.stdin.writableLength > this.limits.maxUnreadBytes) {
      this.onStalled(`it does not read what the kernel sends it (${this.stdin.writableLength} bytes unread, over the ${this.limits.maxUnreadBytes}-byte limit)`);
    } else if (this.answersPending > this.limits.maxRequestsInFlight) {
      this.onStalled(`it does not read the answers to its own requests (${this.answersPending} unread, over the limit of ${this.limits.maxRequestsInFlight})`);
    }
    return written.catch(() => undefined);
  }
}

export interface PluginProcessOptions {
  spec: SpawnSpec;
  /** How long the handshake may take, spawn included. */
  handshakeTimeoutMs: number;
  kernelInfo: { name: string; version: string };
  maxMessageBytes?: number;
  /** Bounds of what the process may make the kernel do (defaults: PLUGIN_IO_LIMITS). */
  ioLimits?: Partial<PluginIoLimits>;
  /** An on-disk scratch folder to hold to a quota (no bubblewrap: no tmpfs does it): over it, the plugin is stopped. */
  scratchQuota?: { dir: string; bytes: number };
  /**
   * Makes a log line safe to keep and print (plugin-text.ts logLine: every
   * secret handed to a plugin, built-in rules, one visible line, cut to
   * 4 KiB after redaction).
   */
  redact: (line: string) => string;
  log: (line: string) => void;
  /**
   * The live invocation scope a message from this plugin names, or undefined
   * (unknown, finished, or another connector's): what answers `kernel/sign`,
   * `kernel/hostKey` and `$/progress`. Without it every such message is refused.
   */
  resolveScope: (invocationId: unknown) => InvocationScope | undefined;
  /** The kernel's SSH signer and host-key check (transports); without them the capabilities are absent. */
  ssh?: PluginSshServices;
  /** `wasReady`: the process had completed its handshake (a crash of a running plugin, not a failed start). */
  onExit: (info: { code: number | null; signal: NodeJS.Signals | null; expected: boolean; wasReady: boolean; reason: string | undefined }) => void;
}

/**
 * What answers `kernel/sign` and `kernel/hostKey` for a scope this process
 * may name (invariants 2 and 3): the checks are the transports module's.
 * A refusal is a KernelError; its code goes back in the wire error's data.
 */
export interface PluginSshServices {
  sign(scope: InvocationScope, data: unknown): Promise<{ signature: string }>;
  hostKey(scope: InvocationScope, offer: { host?: unknown; port?: unknown; keyType?: unknown; fingerprint?: unknown }): Promise<{ trusted: boolean } & Record<string, unknown>>;
}

export type ProcessState = 'starting' | 'ready' | 'stopping' | 'exited';

/**
 * One running plugin: spawn, handshake, calls, log, and the bounded stop
 * escalation shutdown -> exit -> close stdin -> SIGTERM -> SIGKILL, which is
 * safe to call any number of times.
 */
export class PluginProcess {
  state: ProcessState = 'starting';
  readonly logLines: string[] = [];
  exitReason: string | undefined;
  private child!: ChildProcess;
  private connection!: MessageConnection;
  private exited!: Promise<void>;
  private stopping: Promise<void> | undefined;
  private inFlight = new Map<string, (error: Error) => void>();
  /**
   * Per call in flight, whether its request was written whole into the
   * plugin's stdin (true), failed to be written (false), or is still being
   * written. A process lost before the write completed never read the call.
   */
  private written = new Map<string, Promise<boolean>>();
  private wasReady = false;
  private broken = false;
  private readonly io: PluginIoLimits;
  private readonly logBucket: Bucket;
  private readonly requestBucket: Bucket;
  /** Log lines dropped since the last marker, and bytes given to the gateway's log so far. */
  private logDropped = 0;
  private logBytes = 0;
  private dropTimer: NodeJS.Timeout | undefined;
  private writer: WatchedWriter | undefined;

  /** Ready and not broken: a process that broke the protocol is never handed another call, even before its exit is seen. */
  get usable(): boolean {
    return this.state === 'ready' && !this.broken;
  }

  constructor(private readonly options: PluginProcessOptions) {
    this.io = { ...PLUGIN_IO_LIMITS, ...options.ioLimits };
    this.logBucket = new Bucket(this.io.logLinesPerSecond, this.io.logBurst);
    this.requestBucket = new Bucket(this.io.requestsPerSecond, this.io.requestBurst);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /**
   * A line of the plugin's log, if its rate and total allow (PluginIoLimits):
   * otherwise dropped, counted, and said once a second as "N lines dropped".
   * Counting is all a dropped line costs (no redaction, no write).
   */
  private pluginLog(text: string | Buffer) {
    if (this.logBytes < this.io.logBytesPerProcess && this.logBucket.take()) {
      this.flushDropped();
      const line = typeof text === 'string' ? text : text.toString('utf8');
      // What a plugin writes is its own words even when it starts like the kernel's.
      this.appendLog(line, false);
      return;
    }
    this.logDropped += 1;
    this.dropTimer ??= setTimeout(() => this.flushDropped(), 1_000);
    this.dropTimer.unref?.();
  }

  private flushDropped() {
    clearTimeout(this.dropTimer);
    this.dropTimer = undefined;
    if (this.logDropped === 0) return;
    const count = this.logDropped;
    this.logDropped = 0;
    const why =
      this.logBytes >= this.io.logBytesPerProcess
        ? `this process already logged ${this.io.logBytesPerProcess} bytes, the most one process may`
        : `it logged faster than ${this.io.logLinesPerSecond} lines a second`;
    this.appendLog(`[kernel] ${count} log line${count === 1 ? '' : 's'} dropped: ${why}`, true);
  }

  /** Kernel lines (`fromKernel`) are always kept; they are few and bounded. */
  private appendLog(text: string, fromKernel = text.startsWith('[kernel] ')) {
    // Redacted whole, then cut: a cut first could leave the start of a secret that ran across it.
    const line = this.options.redact(text.length > MAX_LOG_LINE_REDACTED ? text.slice(0, MAX_LOG_LINE_REDACTED) : text);
    this.logLines.push(line);
    if (this.logLines.length > LOG_RING) this.logLines.shift();
    if (!fromKernel) this.logBytes += line.length;
    this.options.log(line);
  }

  /** One line of stderr: blank lines are not kept. */
  private stderrLine(bytes: Buffer) {
    if (bytes.every((b) => b === 32 || b === 9 || b === 13)) return;
    this.pluginLog(bytes);
  }

  /**
   * Fails every call in flight with `error` (the process is gone): a call
   * whose request had been written may have run (the error stands); one
   * whose request never made it into the pipe did not (PluginNotReached).
   */
  private failInFlight(error: Error) {
    for (const [id, reject] of this.inFlight) {
      const written = this.written.get(id);
      if (!written) {
        reject(notReached(this.exitReason, error));
        continue;
      }
      void written.then((whole) => reject(whole ? error : notReached(this.exitReason, error)));
    }
    this.inFlight.clear();
  }

  /** Stops the plugin at once for a protocol violation; the stop escalation still applies. */
  private violate(reason: string) {
    if (this.broken) return;
    this.broken = true;
    if (this.writer) this.writer.stopped = true;
    if (this.exitReason === undefined) this.exitReason = reason;
    this.appendLog(`[kernel] ${reason}; stopping the plugin`);
    this.failInFlight(new PluginLostDuringCall(`The connector broke the protocol (${reason}) and was stopped.`));
    this.child.kill('SIGKILL');
  }

  async start(): Promise<InitializeResult> {
    const { spec } = this.options;
    const fdData = spec.fdData ?? [];
    this.child = spawn(spec.command, spec.args, { env: spec.env, cwd: spec.cwd, stdio: ['pipe', 'pipe', 'pipe', ...fdData.map(() => 'pipe' as const)] });
    fdData.forEach((data, index) => {
      const pipe = this.child.stdio[3 + index] as Writable | null;
      // A sandbox that dies while reading its files fails the start below; the broken pipe is not an error of its own.
      pipe?.on('error', () => undefined);
      pipe?.end(data);
    });
    const quota = this.options.scratchQuota;
    const unwatch = quota ? watchScratch(quota.dir, quota.bytes, (reason) => this.violate(reason)) : () => undefined;
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        unwatch();
        const expected = this.state === 'stopping';
        this.state = 'exited';
        if (!expected && this.exitReason === undefined) this.exitReason = exitDescription(code, signal);
        this.failInFlight(new PluginLostDuringCall(`The connector process ${this.exitReason ?? 'exited'} during the call.`));
        this.options.onExit({ code, signal, expected, wasReady: this.wasReady, reason: this.exitReason });
        resolve();
      });
    });
    this.child.once('error', (error) => {
      this.exitReason = `could not be started: ${error.message}`;
    });

    // stderr is the plugin's log: split into lines, each bounded, rate-limited and redacted (pluginLog).
    // Bytes, not strings: a flood costs a newline search per chunk, nothing more.
    let partial: Buffer[] = [];
    let partialBytes = 0;
    this.child.stderr!.on('data', (chunk: Buffer) => {
      let start = 0;
      for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
        const piece = chunk.subarray(start, nl);
        start = nl + 1;
        const line = partial.length ? Buffer.concat([...partial, piece]) : piece;
        partial = [];
        partialBytes = 0;
        if (line.length > 0) this.stderrLine(line);
      }
      if (start < chunk.length) {
        const rest = chunk.subarray(start);
        if (partialBytes + rest.length > MAX_LOG_LINE * 4) {
          // One endless line: kept in pieces of a bounded size, never buffered whole.
          this.stderrLine(Buffer.concat([...partial, rest]).subarray(0, MAX_LOG_LINE_REDACTED));
          partial = [];
          partialBytes = 0;
        } else {
          partial.push(Buffer.from(rest));
          partialBytes += rest.length;
        }
      }
    });

    // Every byte on stdout is parsed on the event loop: past its rate the plugin is stopped (a stream of large messages nobody asked for).
    const stdoutBucket = new Bucket(this.io.stdoutBytesPerSecond, this.io.stdoutBurstBytes);
    this.child.stdout!.on('data', (chunk: Buffer) => {
      if (!this.broken && !stdoutBucket.take(chunk.length)) {
        this.violate(`it sent the kernel more than ${this.io.stdoutBurstBytes} bytes at once, or more than ${this.io.stdoutBytesPerSecond} a second, on its protocol stream`);
      }
    });
    const reader = new BoundedMessageReader(this.child.stdout!, this.options.maxMessageBytes ?? MAX_MESSAGE_BYTES);
    reader.onError((error) => {
      if (error instanceof ProtocolViolation) this.violate(`protocol violation: ${error.message}`);
    });
    // Each call's request is written once; whether that write completed tells "may have run" from "never reached it".
    this.writer = new WatchedWriter(
      this.child.stdin!,
      this.io,
      (reason) => this.violate(reason),
      (message, whole) => {
        const invocationId = invocationIdOf(message);
        if (invocationId !== undefined && this.inFlight.has(invocationId)) this.written.set(invocationId, whole);
      },
    );
    this.connection = createMessageConnection(reader, this.writer);
    this.connection.onError(() => undefined);
    this.child.stdin!.on('error', () => undefined);
    // Plugin -> kernel requests that name an invocation get an answer only for a
    // live scope of this connector; a finished or foreign invocation gets nothing.
    // Every plugin-to-kernel request passes here first: over its rate, the plugin is stopped.
    const admitRequest = (method: string) => {
      if (this.broken) throw new ResponseError(WireErrorCodes.InvalidParams, 'The kernel stopped answering this plugin.');
      if (!this.requestBucket.take()) {
        this.violate(`it sent more than ${this.io.requestBurst} requests to the kernel at once, or more than ${this.io.requestsPerSecond} a second (the last: ${echoOf(method)})`);
        throw new ResponseError(WireErrorCodes.InvalidParams, 'Too many requests; the plugin is being stopped.');
      }
    };
    const scopeOf = (params: { invocationId?: unknown } | undefined) => {
      const scope = this.options.resolveScope(params?.invocationId);
      if (!scope) throw new ResponseError(WireErrorCodes.InvalidParams, 'No running invocation of this connector has that invocationId; the kernel answers only for the call in progress.');
      return scope;
    };
    // A refusal of the signer or host-key check: what was wrong and its typed code, never more.
    const refusal = (error: unknown) => {
      const code = typeof (error as { code?: unknown })?.code === 'string' ? (error as { code: string }).code : 'refused';
      const message = error instanceof Error ? error.message : 'refused';
      return new ResponseError(WireErrorCodes.InvalidParams, message, { code });
    };
    const ssh = this.options.ssh;
    this.connection.onRequest(SignRequest, async (params) => {
      admitRequest(SignRequest.method);
      const scope = scopeOf(params);
      if (!ssh) throw new ResponseError(WireErrorCodes.MethodNotFound, 'kernel/sign: this kernel offers no SSH signing (capability absent).');
      try {
        // Invariant 2: only a signature comes back, never key bytes.
        return await ssh.sign(scope, params?.data);
      } catch (error) {
        throw refusal(error);
      }
    });
    // plugin/log is a log line like one on stderr (protocol 3.9), bounded and redacted the same way.
    this.connection.onNotification(LogNotification, (params) => {
      const level = ['debug', 'info', 'warn', 'error'].includes(String(params?.level)) ? String(params.level) : 'info';
      if (typeof params?.message === 'string') this.pluginLog(`[${level}] ${params.message.length > MAX_LOG_LINE_REDACTED ? params.message.slice(0, MAX_LOG_LINE_REDACTED) : params.message}`);
    });
    // Any other method: refused, quoting at most a short prefix of its name (a 64 KiB name echoed back was the flood).
    this.connection.onRequest((method) => {
      admitRequest(method);
      throw new ResponseError(WireErrorCodes.MethodNotFound, `The kernel has no method "${echoOf(method)}".`);
    });
    // Unknown notifications are dropped unanswered (a notification has no answer to echo in).
    this.connection.onNotification(() => undefined);
    this.connection.onRequest(HostKeyRequest, async (params) => {
      admitRequest(HostKeyRequest.method);
      const scope = scopeOf(params);
      if (!ssh) throw new ResponseError(WireErrorCodes.MethodNotFound, 'kernel/hostKey: this kernel offers no host-key checks (capability absent).');
      try {
        return await ssh.hostKey(scope, { host: params?.host, port: params?.port, keyType: params?.keyType, fingerprint: params?.fingerprint });
      } catch (error) {
        throw refusal(error);
      }
    });
    this.connection.listen();

    const handshake = this.connection.sendRequest(InitializeRequest, {
      protocolVersions: [...PROTOCOL_VERSIONS],
      kernel: this.options.kernelInfo,
      // kernel/sign and kernel/hostKey are offered where the kernel gave this
      // process its SSH services; otherwise the plugin learns they are absent.
      capabilities: { sign: Boolean(ssh), hostKey: Boolean(ssh) },
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new PluginUnavailable(`did not complete the handshake within ${this.options.handshakeTimeoutMs} ms`)), this.options.handshakeTimeoutMs);
    });
    const died = this.exited.then(() => {
      throw new PluginUnavailable(this.exitReason ?? 'exited during the handshake');
    });
    try {
      const result = await Promise.race([handshake, timeout, died]);
      if (!PROTOCOL_VERSIONS.includes(result.protocolVersion)) {
        throw new PluginUnavailable(
          `answered with plugin protocol version ${String(result.protocolVersion).slice(0, 20)}, which this gateway does not speak (it speaks ${PROTOCOL_VERSIONS.join(', ')}): ${REBUILD}`,
        );
      }
      this.connection.sendNotification(InitializedNotification);
      this.state = 'ready';
      this.wasReady = true;
      return result;
    } catch (error) {
      const reason = error instanceof ResponseError ? handshakeRefusal(error) : error instanceof Error ? error.message : String(error);
      this.exitReason ??= reason;
      // It never became a working plugin: nothing to shut down politely.
      await this.kill(`the handshake failed (${reason})`);
      throw new PluginUnavailable(reason);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends one request, failing it if the process dies first. */
  private track<T>(id: string, send: (token: CancellationTokenSource) => Promise<T>, signal: AbortSignal): Promise<T> {
    if (!this.usable) return Promise.reject(new PluginUnavailable(this.broken ? 'broke the protocol' : `is ${this.state}`));
    const source = new CancellationTokenSource();
    const onAbort = () => source.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    return new Promise<T>((resolve, reject) => {
      this.inFlight.set(id, reject);
      let sent: Promise<T>;
      try {
        sent = send(source);
      } catch (error) {
        // vscode-jsonrpc refuses at once on a closed connection ("Connection is closed."): nothing was written.
        reject(isNeverSent(error) ? notReached(this.exitReason, error) : error);
        return;
      }
      sent.then(resolve, (error: unknown) => reject(isNeverSent(error) ? notReached(this.exitReason, error) : error));
    }).finally(() => {
      this.inFlight.delete(id);
      this.written.delete(id);
      signal.removeEventListener('abort', onAbort);
      source.dispose();
    });
  }

  invoke(params: InvokeParams, signal: AbortSignal, onProgress: (value: ProgressValue) => void): Promise<unknown> {
    // Progress reaches the caller only while the invocation's scope is live.
    const progress = this.connection.onProgress(InvocationProgress, params.invocationId, (value) => {
      if (this.options.resolveScope(params.invocationId)) onProgress(value);
    });
    return this.track(params.invocationId, (source) => this.connection.sendRequest(InvokeRequest, params, source.token), signal)
      .then((result) => result.output)
      .finally(() => progress.dispose());
  }

  check(params: ConnectionCheckParams, signal: AbortSignal): Promise<ConnectionCheckResult> {
    return this.track(params.invocationId, (source) => this.connection.sendRequest(ConnectionCheckRequest, params, source.token), signal);
  }

  /** Ends the process for good, right now (a call that ignored its cancel). */
  kill(reason: string): Promise<void> {
    this.exitReason ??= reason;
    this.appendLog(`[kernel] ${reason}; killing the plugin`);
    this.failInFlight(new PluginLostDuringCall(`The connector was stopped: ${reason}.`));
    this.state = 'stopping';
    this.child.kill('SIGKILL');
    return this.exited;
  }

  /** The bounded, idempotent stop escalation. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.state === 'exited' || !this.child) return;
      this.state = 'stopping';
      const isGone = () => this.child.exitCode !== null || this.child.signalCode !== null;
      const waitGone = (ms: number) =>
        Promise.race([this.exited.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(isGone()), ms).unref())]);
      const steps: Array<[name: string, act: () => unknown, waitMs: number]> = [
        // 1. Ask politely: the plugin closes its pools and answers.
        ['shutdown', () => this.connection.sendRequest(ShutdownRequest).catch(() => undefined), STOP_STEPS_MS.shutdown],
        ['exit', () => this.connection.sendNotification(ExitNotification).catch(() => undefined), STOP_STEPS_MS.exit],
        ['closing stdin', () => this.child.stdin!.end(), STOP_STEPS_MS.stdinClosed],
        ['SIGTERM', () => this.child.kill('SIGTERM'), STOP_STEPS_MS.sigterm],
        ['SIGKILL', () => this.child.kill('SIGKILL'), STOP_STEPS_MS.sigkill],
      ];
      for (const [name, act, waitMs] of steps) {
        if (isGone()) return;
        let answered: Promise<unknown> = Promise.resolve();
        try {
          answered = Promise.resolve(act());
        } catch {
          // a closed pipe: the next step handles it
        }
        // `shutdown` is a request: move on as soon as it is answered (or the process is gone).
        const done = name === 'shutdown' ? await Promise.race([answered.then(() => isGone()), waitGone(waitMs)]) : await waitGone(waitMs);
        if (done) return;
        if (name !== 'shutdown') this.appendLog(`[kernel] plugin still running after ${name}; escalating`);
      }
    })().finally(() => {
      this.connection?.dispose();
    });
    return this.stopping;
  }
}

/** The invocation a kernel -> plugin request is for (invoke and connection checks carry it), if any. */
function invocationIdOf(message: Message): string | undefined {
  const { id, params } = message as { id?: unknown; params?: { invocationId?: unknown } };
  return id !== undefined && typeof params?.invocationId === 'string' ? params.invocationId : undefined;
}

/** A request that provably never reached the plugin: refused on a closed connection, or its write failed (EPIPE, closed stream). */
function isNeverSent(error: unknown): boolean {
  if (error instanceof ConnectionError) return true;
  return error instanceof ResponseError && error.code === ErrorCodes.MessageWriteError;
}

function notReached(exitReason: string | undefined, cause: unknown): PluginNotReached {
  return new PluginNotReached(`The connector process ${exitReason ?? 'had stopped'} before the call reached it, so the action did not run.`, { cause });
}
