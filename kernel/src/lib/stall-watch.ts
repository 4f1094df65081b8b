/**
 * Notices when the gateway itself was stopped or stalled (issue 10 item 9).
 * Without bubblewrap there is no pid namespace between a plugin and the
 * gateway, and a plugin can stop the gateway with SIGSTOP (and let it go on
 * with SIGCONT): nothing can prevent that for a process of the same user, so
 * the gateway at least says it happened. Two signs:
 * - SIGCONT arrived: the process was stopped (SIGSTOP, SIGTSTP) and continued;
 * - a timer that should tick every `tickMs` ran `thresholdMs` late: the event
 *   loop did not run (stopped, or blocked by something synchronous).
 * Either is reported once per stall, with how long the gap was, to `onStall`,
 * which the gateway logs and records in the audit of each unlocked database.
 */
export interface Stall {
  /** How long nothing ran, as measured by the late timer (ms). */
  gapMs: number;
  /** `signalled`: a SIGCONT arrived (it was stopped by a signal); `stalled`: only the timer saw it. */
  kind: 'signalled' | 'stalled';
}

/** Defaults with their reasons. */
export const STALL_WATCH = {
  /** Ten ticks a second: cheap, and a stop of a few hundred ms is seen. */
  tickMs: 100,
  /** Half a second late is not a busy loop's hiccup (those are tens of ms); a SIGSTOP of a second is well above it. */
  thresholdMs: 500,
} as const;

export function watchForStalls(onStall: (stall: Stall) => void, options: { tickMs?: number; thresholdMs?: number; now?: () => number } = {}): () => void {
  const tickMs = options.tickMs ?? STALL_WATCH.tickMs;
  const thresholdMs = options.thresholdMs ?? STALL_WATCH.thresholdMs;
  const now = options.now ?? (() => performance.now());
  let last = now();
  let signalled = false;
  /** The longest gap of a stall not yet reported: reported one tick later, once a SIGCONT that belongs to it had its chance to arrive. */
  let pending = 0;
  const timer = setInterval(() => {
    const at = now();
    const gapMs = Math.round(at - last - tickMs);
    last = at;
    if (gapMs >= thresholdMs) {
      pending = Math.max(pending, gapMs);
      return;
    }
    if (pending > 0 || signalled) {
      onStall({ gapMs: pending, kind: signalled ? 'signalled' : 'stalled' });
      pending = 0;
      signalled = false;
    }
  }, tickMs);
  timer.unref();
  // The tick after the late one reports it, with the gap (the signal handler runs before the late timer or after it: either way once).
  const onCont = () => {
    signalled = true;
  };
  process.on('SIGCONT', onCont);
  return () => {
    clearInterval(timer);
    process.off('SIGCONT', onCont);
  };
}
