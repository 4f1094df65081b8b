import { KernelError } from './errors.js';

/**
 * Password checks, queued per database instead of refused (invariant 8).
 *
 * The agent shares the machine, so it can guess passwords; it must not be
 * able to guess fast, and it must not be able to lock the operator out by
 * guessing wrong. Refusing after N failures did the second: five wrong
 * guesses a minute kept the operator's correct password out for good. Here
 * every check waits its turn instead: one check at a time per database (each
 * is a full key derivation), and once `freeFailures` wrong guesses fell
 * within `windowMs`, checks start at most one per `spacingMs`. A correct
 * password is never refused for what someone else guessed; it waits behind
 * the guesses already queued. Only a flood past `maxWaiting` queued checks
 * is refused, to keep memory bounded.
 */
export interface PasswordGate {
  /** Runs `check` (true: the password was right) in `key`'s turn and records the outcome. */
  run(key: string, check: () => Promise<boolean>): Promise<boolean>;
  /** Checks waiting or running for `key`. */
  waiting(key: string): number;
}

export interface PasswordGateOptions {
  /** Wrong guesses per window that cost nothing but their key derivation. */
  freeFailures: number;
  windowMs: number;
  /** The pace of checks once the free failures are used up. */
  spacingMs: number;
  maxWaiting: number;
  /** Real time: the pace is about wall-clock seconds, whatever clock the kernel's records use. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

interface Lane {
  tail: Promise<unknown>;
  waiting: number;
  failures: number[];
  lastStartAt: number;
}

/**
 * Defaults: five free failures a minute (a typo or two never waits), then
 * one check a second (86,400 guesses a day at most, below what a copy of the
 * file allows offline on this machine, which is the real bound; see
 * docs/security.md), and 64 waiting checks (about a minute of queue).
 */
export const PASSWORD_GATE_DEFAULTS: PasswordGateOptions = { freeFailures: 5, windowMs: 60_000, spacingMs: 1_000, maxWaiting: 64 };

export function createPasswordGate(options: PasswordGateOptions = PASSWORD_GATE_DEFAULTS): PasswordGate {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const lanes = new Map<string, Lane>();

  const laneFor = (key: string): Lane => {
    let lane = lanes.get(key);
    if (!lane) {
      lane = { tail: Promise.resolve(), waiting: 0, failures: [], lastStartAt: -Infinity };
      lanes.set(key, lane);
    }
    return lane;
  };

  return {
    run(key, check) {
      const lane = laneFor(key);
      if (lane.waiting >= options.maxWaiting) {
        return Promise.reject(
          new KernelError(
            'too_many_attempts',
            `${lane.waiting} password checks are already waiting for database "${key}". Try again in a minute. Stopping never needs the password: aip switch off, aip lock.`,
            { status: 429, details: { retryAfterSeconds: Math.ceil((lane.waiting * options.spacingMs) / 1000) } },
          ),
        );
      }
      lane.waiting += 1;
      const turn = lane.tail.then(async () => {
        const at = now();
        lane.failures = lane.failures.filter((failedAt) => at - failedAt < options.windowMs);
        if (lane.failures.length >= options.freeFailures) {
          const wait = lane.lastStartAt + options.spacingMs - at;
          if (wait > 0) await sleep(wait);
        }
        lane.lastStartAt = now();
        const ok = await check();
        if (ok) lane.failures = [];
        else lane.failures = [...lane.failures, now()].slice(-options.freeFailures);
        return ok;
      });
      const done = turn.finally(() => {
        lane.waiting -= 1;
        if (lane.waiting === 0 && lane.failures.length === 0) lanes.delete(key);
      });
      lane.tail = done.catch(() => undefined);
      return done;
    },
    waiting: (key) => lanes.get(key)?.waiting ?? 0,
  };
}
