import type { InvocationScopes } from '../invocations/index.js';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionCheckParams, ConnectionCheckResult, InvokeParams, ProgressValue } from '@aipermission/plugin-sdk/protocol';
import { canonicalHash } from '../lib/canonical.mjs';
import type { Clock } from '../lib/clock.js';
import { PluginLostDuringCall, PluginProcess, PluginUnavailable, type PluginIoLimits, type PluginSshServices } from './process.js';
import { buildSpawnSpec, SANDBOX_ENDPOINT_DIR, type BwrapMode, type SandboxLevel } from './sandbox.js';
import { MAX_UNIX_PATH_BYTES, type EndpointPlace } from '../transports/index.js';
import type { PinnedFile } from './builtin-pins.js';
import { CrashBudget } from './crash-budget.js';
import type { PluginSource } from './registry.js';

export interface SupervisorOptions {
  /** Idle time after which the process is stopped (restarted lazily on the next call). */
  idleMs: number;
  /** Calls one plugin process runs at once; the rest wait in line. */
  maxConcurrent: number;
  /** Crashes allowed within `windowMs` before quarantine. */
  restartBudget: { crashes: number; windowMs: number };
  handshakeTimeoutMs: number;
  /** After a call's deadline the plugin is asked to cancel; if it has not answered this much later, it is killed. */
  cancelGraceMs: number;
  /** Bounds of what one process may make the kernel do (process.ts PLUGIN_IO_LIMITS; tests change them). */
  ioLimits?: Partial<PluginIoLimits>;
  bwrap: BwrapMode;
  scratchDir: string;
  /** Where this plugin's endpoint socket folders are made (bubblewrap only; `<data>/plugin-endpoints`). */
  endpointRoot: string;
  /** Closes the endpoints the kernel opened for this plugin (named by its endpointOwner); stop() calls it. */
  closeEndpoints?: (owner: string) => Promise<void>;
  kernelInfo: { name: string; version: string };
  clock: Clock;
  log: (line: string) => void;
  redact: (line: string) => string;
  /** The registry of invocation scopes; messages of this connector's process are answered from it. */
  scopes: Pick<InvocationScopes, 'resolve'>;
  /** Answers kernel/sign and kernel/hostKey (absent: the capabilities are off). */
  ssh?: PluginSshServices;
  /**
   * Checked before every spawn (the code's integrity); throws to refuse.
   * Returns where the checked code is to be run from, when that is not the
   * package folder itself.
   */
  beforeStart?: () => Promise<PreparedCode>;
  /** Shared by the processes of one plugin (one per credential profile); a supervisor alone gets one of its own. */
  crashBudget?: CrashBudget;
  /** Called when this supervisor has no call left (in flight or waiting), or its process exited: a slot may be free. */
  onIdle?: () => void;
}

/** The code a spawn runs, as the check before it prepared it. */
export interface PreparedCode {
  /** Run from this folder instead of the package folder (a private copy of verified bytes). */
  pluginDir?: string;
  /** Hand the sandbox exactly these files (bubblewrap only; see buildSpawnSpec). */
  files?: readonly PinnedFile[];
  /** Called once the process is gone (removes a private copy). */
  dispose?: () => Promise<void>;
}

/** Defaults with their reasons. */
export const SUPERVISOR_DEFAULTS = {
  /** Five idle minutes: an agent session's pauses keep the process warm; a finished one frees it. */
  idleMs: 5 * 60_000,
  /** Sixteen calls at once per plugin: connectors multiplex well, and it bounds what one plugin can hold. */
  maxConcurrent: 16,
  /** Three crashes in three minutes is a broken plugin, not bad luck. */
  restartBudget: { crashes: 3, windowMs: 3 * 60_000 },
  /** Cold start is ~100 ms; five seconds allows a loaded machine, not a hung plugin. */
  handshakeTimeoutMs: 5_000,
  /** Two seconds to answer a cancel; a well-behaved plugin answers in milliseconds. */
  cancelGraceMs: 2_000,
} as const;

export type PluginState = 'stopped' | 'starting' | 'ready' | 'stopping' | 'quarantined';

export interface PluginStatus {
  id: string;
  version: string;
  state: PluginState;
  pid: number | null;
  startedAt: string | null;
  inFlight: number;
  queued: number;
  starts: number;
  crashes: number;
  lastError: string | null;
  quarantined: { since: string; reason: string } | null;
  sandbox: SandboxLevel;
  /** Processes running (one per credential profile in use; the host bounds how many). */
  processes: number;
  /** The pids of the ready ones (pid is one of them). */
  pids: number[];
}

/**
 * Keeps one plugin's process: started lazily, shared by calls up to a
 * concurrency bound, stopped when idle, restarted after a crash within a
 * budget, then quarantined (with a clear status) until an operator restarts it.
 */
export class PluginSupervisor {
  private process: PluginProcess | undefined;
  private lastProcess: PluginProcess | undefined;
  private starting: Promise<PluginProcess> | undefined;
  private readonly budget: CrashBudget;
  private idleTimer: NodeJS.Timeout | undefined;
  private waiters: Array<() => void> = [];
  private active = 0;
  private starts = 0;
  private crashes = 0;
  private lastError: string | null = null;
  private startedAt: number | null = null;
  private readonly sandbox: SandboxLevel;
  /** The removal of the last process's scratch folder, awaited before the next start uses the folder. */
  private scratchRemoval: Promise<void> = Promise.resolve();
  /** Removals of private code copies still running (stop waits for them). */
  private readonly disposals = new Set<Promise<void>>();
  /** The folder of this plugin's endpoint sockets (bubblewrap), made once and kept across process restarts until stop(). */
  private endpointDir: Promise<string> | undefined;
  private static owners = 0;
  /** Names this supervisor's endpoints in the transports (closed together by stop()). */
  readonly endpointOwner: string;

  constructor(
    readonly source: PluginSource,
    private readonly options: SupervisorOptions,
  ) {
    this.sandbox = buildSpawnSpec({ pluginDir: source.dir, entry: source.entry, scratchDir: options.scratchDir, bwrap: options.bwrap }).sandbox;
    PluginSupervisor.owners += 1;
    this.endpointOwner = `${source.manifest.id}#${PluginSupervisor.owners}`;
    this.budget =
      options.crashBudget ??
      new CrashBudget(options.restartBudget, options.clock, (reason) => options.log(`[kernel] plugin ${source.manifest.id} quarantined: ${reason}`));
  }

  get pluginId(): string {
    return this.source.manifest.id;
  }

  /** No call in flight or waiting for a slot. */
  idle(): boolean {
    return this.active === 0 && this.waiters.length === 0;
  }

  /** A process is running, starting or stopping (it counts against the host's process limits). */
  get hasProcess(): boolean {
    return this.process !== undefined || this.starting !== undefined;
  }

  status(): PluginStatus {
    const quarantine = this.budget.quarantined;
    const state: PluginState = quarantine
      ? 'quarantined'
      : this.starting
        ? 'starting'
        : this.process?.state === 'ready'
          ? 'ready'
          : this.process?.state === 'stopping'
            ? 'stopping'
            : 'stopped';
    return {
      id: this.source.manifest.id,
      version: this.source.manifest.version,
      state,
      pid: this.process?.state === 'ready' ? (this.process.pid ?? null) : null,
      startedAt: this.startedAt !== null && state === 'ready' ? new Date(this.startedAt).toISOString() : null,
      inFlight: this.active,
      queued: this.waiters.length,
      starts: this.starts,
      crashes: this.crashes,
      lastError: this.lastError,
      quarantined: quarantine ? { since: new Date(quarantine.since).toISOString(), reason: quarantine.reason } : null,
      sandbox: this.sandbox,
      processes: this.hasProcess ? 1 : 0,
      pids: this.process?.state === 'ready' && this.process.pid !== undefined ? [this.process.pid] : [],
    };
  }

  /** The log of the current process, or of the last one after it exited (its last words). */
  get logLines(): readonly string[] {
    return (this.process ?? this.lastProcess)?.logLines ?? [];
  }

  /**
   * Where the kernel puts this plugin's endpoints: a unix socket folder that
   * its bubblewrap sandbox shows read-only at /run/ep, or loopback TCP
   * without bubblewrap.
   */
  async endpointPlace(): Promise<EndpointPlace> {
    if (!this.sandbox.bwrap) return 'loopback';
    return { unixDir: await this.ensureEndpointDir(), sandboxPath: SANDBOX_ENDPOINT_DIR };
  }

  private ensureEndpointDir(): Promise<string> {
    this.endpointDir ??= (async () => {
      await mkdir(this.options.endpointRoot, { recursive: true, mode: 0o700 });
      const dir = await mkdtemp(join(this.options.endpointRoot, 'ep-'));
      // A unix socket path has at most 107 bytes; a deep data directory gets a folder under the system's temporary one instead.
      if (Buffer.byteLength(join(dir, '0000000000.sock')) <= MAX_UNIX_PATH_BYTES) return dir;
      await rm(dir, { recursive: true, force: true });
      return mkdtemp(join(tmpdir(), 'aip-ep-'));
    })();
    const made = this.endpointDir;
    made.catch(() => {
      if (this.endpointDir === made) this.endpointDir = undefined;
    });
    return made;
  }

  /** Lifts a quarantine (operator action) and forgets past crashes. */
  release(): void {
    this.budget.release();
  }

  private recordCrash(reason: string) {
    this.crashes += 1;
    this.lastError = reason;
    this.budget.record(reason);
  }

  private async ensureStarted(): Promise<PluginProcess> {
    const quarantine = this.budget.quarantined;
    if (quarantine) {
      throw new PluginUnavailable(`is quarantined (${quarantine.reason}). The operator can restart it with: aip plugin restart ${this.source.manifest.id}`);
    }
    if (this.process?.usable) return this.process;
    this.starting ??= (async () => {
      try {
        return await this.spawnAndHandshake();
      } catch (error) {
        // Counted here, inside the shared start, so callers waiting on the same start count it once.
        const reason = error instanceof Error ? error.message : String(error);
        this.recordCrash(`failed to start: ${reason}`);
        throw new PluginUnavailable(`failed to start: ${reason}`);
      }
    })().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async spawnAndHandshake(): Promise<PluginProcess> {
    const code = (await this.options.beforeStart?.()) ?? {};
    let disposed = false;
    const dispose = () => {
      if (disposed || !code.dispose) return;
      disposed = true;
      const done = code.dispose().catch((error: Error) => this.options.log(`[kernel] could not remove a private plugin copy: ${error.message}`));
      this.disposals.add(done);
      void done.finally(() => this.disposals.delete(done));
    };
    try {
      await this.scratchRemoval;
      await mkdir(this.options.scratchDir, { recursive: true, mode: 0o700 });
      const spec = buildSpawnSpec({
        pluginDir: code.pluginDir ?? this.source.dir,
        entry: this.source.entry,
        scratchDir: this.options.scratchDir,
        bwrap: this.options.bwrap,
        ...(code.files ? { pluginFiles: code.files } : {}),
        ...(this.sandbox.bwrap ? { endpointDir: await this.ensureEndpointDir() } : {}),
      });
      const id = this.source.manifest.id;
      const proc = new PluginProcess({
        spec,
        handshakeTimeoutMs: this.options.handshakeTimeoutMs,
        ...(this.options.ioLimits ? { ioLimits: this.options.ioLimits } : {}),
        // Under bubblewrap scratch is a size-limited tmpfs; on disk the host holds it to the quota.
        ...(spec.sandbox.bwrap ? {} : { scratchQuota: { dir: this.options.scratchDir, bytes: spec.sandbox.scratchQuotaBytes } }),
        kernelInfo: this.options.kernelInfo,
        redact: this.options.redact,
        resolveScope: (invocationId) => this.options.scopes.resolve(invocationId, id),
        ...(this.options.ssh ? { ssh: this.options.ssh } : {}),
        log: (line) => this.options.log(`[plugin ${id}] ${line}`),
        onExit: ({ expected, wasReady, reason }) => {
          if (this.process === proc) this.process = undefined;
          dispose();
          // Scratch lives as long as its process (issue 10 item 6): what it kept there is not left readable on disk.
          this.scratchRemoval = rm(this.options.scratchDir, { recursive: true, force: true }).catch((error: Error) => this.options.log(`[kernel] could not remove a plugin's scratch folder: ${error.message}`));
          // A failed start is counted where it fails (below), once.
          if (!expected && wasReady) this.recordCrash(reason ?? 'exited unexpectedly');
          this.options.onIdle?.();
        },
      });
      this.starts += 1;
      this.process = proc;
      this.lastProcess = proc;
      const result = await proc.start();
      // The code that runs must be the code that was approved (or built): same manifest. (The source's manifest is the approved one: the catalog compared its hash with the database's approval.)
      let answered: string;
      try {
        answered = canonicalHash(result.manifest);
      } catch {
        answered = 'none (not JSON)';
      }
      if (answered !== this.source.manifestHash) {
        await proc.kill('it answered the handshake with another manifest than the approved one');
        throw new PluginUnavailable(
          `answered with a different manifest than the one approved (sha256 ${answered.slice(0, 12)}…, approved ${this.source.manifestHash.slice(0, 12)}…), so it is not started. Re-approve it: aip plugin install (or verify) ${id}`,
        );
      }
      this.startedAt = this.options.clock.now();
      this.lastError = null;
      return proc;
    } catch (error) {
      // The start failed: the process is gone or being killed, and a start that failed before it existed has no exit to dispose on.
      dispose();
      throw error;
    }
  }

  private async acquire(signal: AbortSignal): Promise<void> {
    if (this.active < this.options.maxConcurrent) {
      this.active += 1;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.waiters = this.waiters.filter((waiter) => waiter !== go);
        reject(new PluginUnavailable('was busy, and the call was cancelled while waiting for a free slot'));
      };
      const go = () => {
        signal.removeEventListener('abort', onAbort);
        this.active += 1;
        resolve();
      };
      this.waiters.push(go);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private release_() {
    this.active -= 1;
    const next = this.waiters.shift();
    if (next) next();
    if (this.active === 0 && this.waiters.length === 0) {
      this.armIdle();
      this.options.onIdle?.();
    }
  }

  private armIdle() {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.active === 0 && this.process) void this.process.stop();
    }, this.options.idleMs);
    this.idleTimer.unref();
  }

  /**
   * One call with its deadline: at `deadlineMs` the plugin is asked to cancel
   * (via the signal the caller aborts); if it has not answered `cancelGraceMs`
   * after the abort, it is killed and the call fails as lost.
   */
  private async call<T>(signal: AbortSignal, run: (proc: PluginProcess) => Promise<T>): Promise<T> {
    clearTimeout(this.idleTimer);
    await this.acquire(signal);
    try {
      const proc = await this.ensureStarted();
      const work = run(proc);
      let graceTimer: NodeJS.Timeout | undefined;
      const killedAfterGrace = new Promise<never>((_, reject) => {
        const arm = () => {
          graceTimer = setTimeout(() => {
            void proc.kill(`a call did not answer its cancel within ${this.options.cancelGraceMs} ms`);
            this.recordCrash('ignored a cancel and was killed');
            reject(new PluginLostDuringCall(`The connector did not stop within ${this.options.cancelGraceMs} ms of being cancelled and was killed.`));
          }, this.options.cancelGraceMs);
        };
        if (signal.aborted) arm();
        else signal.addEventListener('abort', arm, { once: true });
      });
      killedAfterGrace.catch(() => undefined);
      try {
        return await Promise.race([work, killedAfterGrace]);
      } finally {
        clearTimeout(graceTimer);
      }
    } finally {
      this.release_();
    }
  }

  invoke(params: InvokeParams, signal: AbortSignal, onProgress: (value: ProgressValue) => void): Promise<unknown> {
    return this.call(signal, (proc) => proc.invoke(params, signal, onProgress));
  }

  check(params: ConnectionCheckParams, signal: AbortSignal): Promise<ConnectionCheckResult> {
    return this.call(signal, (proc) => proc.check(params, signal));
  }

  /** Stops the process (if any) with the full escalation, then closes its endpoints; idempotent. */
  async stop(): Promise<void> {
    clearTimeout(this.idleTimer);
    const starting = this.starting;
    if (starting) await starting.catch(() => undefined);
    await this.process?.stop();
    await Promise.all([...this.disposals]);
    await this.scratchRemoval;
    await this.options.closeEndpoints?.(this.endpointOwner);
    const dir = this.endpointDir;
    this.endpointDir = undefined;
    const path = await dir?.catch(() => undefined);
    if (path) await rm(path, { recursive: true, force: true }).catch(() => undefined);
  }
}
