import type { Clock } from '../lib/clock.js';

/**
 * The crash budget of one plugin (one version of its code), shared by all
 * its processes: a plugin runs a process per credential profile, and its
 * crashes count together, so ten profiles do not buy a broken or hostile
 * plugin ten times the restarts. Over budget, the plugin is quarantined
 * (every process) until an operator restarts it.
 */
export class CrashBudget {
  private times: number[] = [];
  private quarantine: { since: number; reason: string } | null = null;
  crashes = 0;

  constructor(
    private readonly options: { crashes: number; windowMs: number },
    private readonly clock: Clock,
    private readonly onQuarantine: (reason: string) => void,
  ) {}

  get quarantined(): { since: number; reason: string } | null {
    return this.quarantine;
  }

  record(reason: string): void {
    this.crashes += 1;
    const now = this.clock.now();
    this.times = [...this.times.filter((at) => now - at < this.options.windowMs), now];
    if (this.times.length >= this.options.crashes && !this.quarantine) {
      this.quarantine = { since: now, reason: `${this.times.length} crashes within ${Math.round(this.options.windowMs / 1000)} s; last: ${reason}` };
      this.onQuarantine(this.quarantine.reason);
    }
  }

  /** Lifts a quarantine (operator action) and forgets past crashes. */
  release(): void {
    this.quarantine = null;
    this.times = [];
  }
}
