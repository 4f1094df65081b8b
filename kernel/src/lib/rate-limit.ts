import type { Clock } from './clock.js';

/**
 * A sliding-window counter of failures per key. Used for failed token
 * authentications and failed password proofs: the agent shares the machine
 * (invariant 8), so it must not be able to guess at full speed.
 */
export interface FailureLimiter {
  /** Milliseconds until `key` may try again, or 0 when it may try now. */
  retryAfterMs(key: string): number;
  recordFailure(key: string): void;
  reset(key: string): void;
}

export function createFailureLimiter(options: { maxFailures: number; windowMs: number; clock: Clock }): FailureLimiter {
  const failures = new Map<string, number[]>();
  const prune = (key: string, now: number): number[] => {
    const list = (failures.get(key) ?? []).filter((at) => now - at < options.windowMs);
    if (list.length === 0) failures.delete(key);
    else failures.set(key, list);
    return list;
  };
  return {
    retryAfterMs(key) {
      const now = options.clock.now();
      const list = prune(key, now);
      if (list.length < options.maxFailures) return 0;
      const oldest = list[list.length - options.maxFailures]!;
      return Math.max(1, oldest + options.windowMs - now);
    },
    recordFailure(key) {
      const now = options.clock.now();
      const list = prune(key, now);
      list.push(now);
      // Keep memory bounded however hard someone hammers: only the newest
      // maxFailures timestamps matter for the decision.
      failures.set(key, list.slice(-options.maxFailures));
    },
    reset(key) {
      failures.delete(key);
    },
  };
}
