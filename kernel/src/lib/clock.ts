/** Time source, injected so expiry and TTL behaviour can be tested without sleeping. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** ISO-8601 UTC with milliseconds; sorts lexicographically in time order. */
export function isoAt(ms: number): string {
  return new Date(ms).toISOString();
}

/** A clock tests can move by hand. */
export function createManualClock(startMs = Date.parse('2026-01-01T00:00:00.000Z')): Clock & { advance(ms: number): void; set(ms: number): void } {
  let current = startMs;
  return {
    now: () => current,
    advance(ms: number) {
      current += ms;
    },
    set(ms: number) {
      current = ms;
    },
  };
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * Parses a duration such as `90s`, `15m`, `4h`, `1d`, `2w` into milliseconds.
 * Returns undefined for anything else so callers can give their own message.
 */
export function parseDurationMs(text: string): number | undefined {
  const match = /^(\d{1,6})\s*([smhdw])$/.exec(text.trim());
  if (!match) return undefined;
  return Number(match[1]) * (UNIT_MS[match[2]!] ?? 0);
}
