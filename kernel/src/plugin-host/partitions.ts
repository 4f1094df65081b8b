/**
 * One plugin process per credential profile. A process serves many calls,
 * and whatever one call hands it (the lease) it can keep: in module memory,
 * in its scratch folder. So the calls of one profile go to a process of
 * their own, keyed by the plugin's code, the database and the profile, and
 * code serving one profile never holds another profile's lease: a copy kept
 * during profile A's call is not reachable from a call on profile B. Each
 * such process also gets a scratch folder of its own, and plugin messages
 * that name an invocation are answered only for an invocation of the
 * process's own profile.
 *
 * How many processes that makes is bounded here: at most
 * `maxProcessesPerPlugin` of one plugin and `maxProcesses` in all. A call
 * that needs a new one when the limit is reached stops the least recently
 * used idle process (its profile starts again on its next call), or waits
 * for one to become idle, until its own deadline.
 */
import { createHash } from 'node:crypto';
import { confinedPath } from '../lib/confine.js';
import type { InvocationScope, InvocationScopes } from '../invocations/index.js';
import { PluginUnavailable } from './process.js';
import { scratchDirFor } from './registry.js';
import type { PluginStatus } from './supervisor.js';

/** What a plugin process is dedicated to: one credential profile of one database. */
export interface Partition {
  database: string;
  profileId: string;
}

export const partitionOf = (scope: Pick<InvocationScope, 'database' | 'profileId'>): Partition => ({ database: scope.database, profileId: scope.profileId });

/** The supervisor key of a plugin's code and a partition. */
export const partitionKey = (codeKey: string, partition: Partition) => `${codeKey}|${partition.database}|${partition.profileId}`;

/**
 * A partition's scratch folder, `<data>/plugin-scratch/<id>/p-<hash>`: named
 * by a hash, so nothing of the database or profile name reaches a path.
 */
export function partitionScratchDir(dataDir: string, pluginId: string, partition: Partition): string {
  const name = createHash('sha256').update(`${partition.database}\u0000${partition.profileId}`).digest('hex').slice(0, 24);
  return confinedPath(scratchDirFor(dataDir, pluginId), `p-${name}`);
}

/** The scopes as one partition's process may see them: only invocations of its own profile. */
export function scopesOfPartition(scopes: Pick<InvocationScopes, 'resolve'>, partition: Partition): Pick<InvocationScopes, 'resolve'> {
  return {
    resolve(invocationId, connectorId) {
      const scope = scopes.resolve(invocationId, connectorId);
      return scope && scope.database === partition.database && scope.profileId === partition.profileId ? scope : undefined;
    },
  };
}

/** Defaults with their reasons. */
export const PROCESS_LIMITS = {
  /** Eight processes of one plugin: eight profiles used at once; a ninth waits for the least recently used to stop. */
  maxProcessesPerPlugin: 8,
  /** Thirty-two in all: at ~50-100 MiB each, what a workstation can spare for connectors. */
  maxProcesses: 32,
} as const;

/** What the budget needs of a supervisor. */
export interface Occupant {
  readonly pluginId: string;
  /** A process is running, starting or stopping. */
  readonly hasProcess: boolean;
  /** No call in flight or waiting. */
  idle(): boolean;
  stop(): Promise<void>;
}

interface Seat {
  reserved: number;
  lastUsed: number;
  evicting: boolean;
}

export class ProcessBudget<T extends Occupant> {
  private readonly seats = new WeakMap<T, Seat>();
  private waiters = new Set<() => void>();

  constructor(
    private readonly limits: { maxProcessesPerPlugin: number; maxProcesses: number },
    private readonly occupants: () => Iterable<T>,
    private readonly now: () => number,
  ) {}

  private seat(occupant: T): Seat {
    let seat = this.seats.get(occupant);
    if (!seat) this.seats.set(occupant, (seat = { reserved: 0, lastUsed: 0, evicting: false }));
    return seat;
  }

  /** Holds a process (or will, within its call): running, or reserved by a call on its way to it. */
  private holds(occupant: T): boolean {
    return occupant.hasProcess || this.seat(occupant).reserved > 0;
  }

  /** Something changed (a call ended, a process exited): waiting calls look again. */
  notify(): void {
    for (const wake of [...this.waiters]) wake();
  }

  /**
   * Waits until `occupant` may run a call, stopping an idle process of
   * another profile if a limit is reached, and reserves its place until the
   * returned release is called (when the call ends).
   */
  async admit(occupant: T, signal: AbortSignal): Promise<() => void> {
    for (;;) {
      if (signal.aborted) throw this.busy(occupant);
      const seat = this.seat(occupant);
      if (!seat.evicting) {
        // Checked and reserved in one synchronous step: two calls cannot both take the last place.
        const all = [...this.occupants()].filter((o) => o !== occupant && this.holds(o));
        const mine = all.filter((o) => o.pluginId === occupant.pluginId);
        const overPlugin = mine.length >= this.limits.maxProcessesPerPlugin;
        const overAll = all.length >= this.limits.maxProcesses;
        if (this.holds(occupant) || (!overPlugin && !overAll)) {
          seat.reserved += 1;
          seat.lastUsed = this.now();
          let released = false;
          return () => {
            if (released) return;
            released = true;
            seat.reserved -= 1;
            seat.lastUsed = this.now();
            this.notify();
          };
        }
        const candidates = (overPlugin ? mine : all).filter((o) => o.hasProcess && o.idle() && this.seat(o).reserved === 0 && !this.seat(o).evicting);
        const victim = candidates.sort((a, b) => this.seat(a).lastUsed - this.seat(b).lastUsed)[0];
        if (victim) {
          const victimSeat = this.seat(victim);
          victimSeat.evicting = true;
          try {
            await victim.stop();
          } finally {
            victimSeat.evicting = false;
            this.notify();
          }
          continue;
        }
      }
      await this.changed(signal, () => this.busy(occupant));
    }
  }

  private busy(occupant: T): PluginUnavailable {
    return new PluginUnavailable(
      `has no free process: it runs one process per credential profile, at most ${this.limits.maxProcessesPerPlugin} of ${occupant.pluginId} and ${this.limits.maxProcesses} in all, and every one was busy until the call was cancelled. Try again shortly`,
    );
  }

  private changed(signal: AbortSignal, cancelled: () => Error): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const wake = () => {
        this.waiters.delete(wake);
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        this.waiters.delete(wake);
        reject(cancelled());
      };
      this.waiters.add(wake);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

/**
 * One status for a plugin from the statuses of its processes (one per
 * profile in use), for `aip plugin list` and the plugins route: the busiest
 * state, the counters summed, one of the errors.
 */
export function combinedStatus(base: Pick<PluginStatus, 'id' | 'version' | 'sandbox'>, statuses: readonly PluginStatus[], quarantine: { since: number; reason: string } | null): PluginStatus {
  const rank: Record<PluginStatus['state'], number> = { quarantined: 4, ready: 3, starting: 2, stopping: 1, stopped: 0 };
  const ready = statuses.filter((s) => s.state === 'ready');
  const state = quarantine ? 'quarantined' : statuses.reduce<PluginStatus['state']>((best, s) => (rank[s.state] > rank[best] ? s.state : best), 'stopped');
  const started = ready.map((s) => s.startedAt).filter((at): at is string => at !== null).sort();
  const withError = statuses.filter((s) => s.lastError !== null);
  return {
    ...base,
    state,
    pid: ready[0]?.pid ?? null,
    startedAt: started[0] ?? null,
    inFlight: statuses.reduce((sum, s) => sum + s.inFlight, 0),
    queued: statuses.reduce((sum, s) => sum + s.queued, 0),
    starts: statuses.reduce((sum, s) => sum + s.starts, 0),
    crashes: statuses.reduce((sum, s) => sum + s.crashes, 0),
    lastError: withError.at(-1)?.lastError ?? null,
    quarantined: quarantine ? { since: new Date(quarantine.since).toISOString(), reason: quarantine.reason } : null,
    processes: statuses.reduce((sum, s) => sum + s.processes, 0),
    pids: statuses.flatMap((s) => s.pids),
  };
}
