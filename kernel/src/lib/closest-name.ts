/**
 * "Did you mean ...?" for names people type: connector kinds, credential
 * kinds, MCP client names. Names are short, so the quadratic table is tiny.
 */

/**
 * Edit distance counting a swap of two neighbours as one edit ("redsi" is one
 * from "redis"), for "did you mean". Names are short, so the table is tiny.
 */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i += 1) {
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/** The closest of `names` to `typed` when it is close enough to be a typo (or a prefix of it), else undefined. */
export function closestName(typed: string, names: readonly string[]): string | undefined {
  const lower = typed.toLowerCase();
  let best: { name: string; distance: number } | undefined;
  for (const name of names) {
    const distance = name.startsWith(lower) || lower.startsWith(name) ? Math.min(1, editDistance(lower, name)) : editDistance(lower, name);
    if (!best || distance < best.distance) best = { name, distance };
  }
  return best && best.distance <= Math.max(1, Math.floor(Math.max(lower.length, best.name.length) / 3)) ? best.name : undefined;
}
