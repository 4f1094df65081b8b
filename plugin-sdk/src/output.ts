/** Byte length of a string in UTF-8. */
export function byteLength(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** Cuts text to at most maxBytes of UTF-8 without splitting a character. */
export function truncateText(text: string, maxBytes: number): { text: string; truncated: boolean; bytes: number } {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return { text, truncated: false, bytes: bytes.length };
  let end = Math.max(0, maxBytes);
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end -= 1;
  return { text: bytes.subarray(0, end).toString('utf8'), truncated: true, bytes: bytes.length };
}

/**
 * Spends a byte budget across items: takes items while their JSON fits,
 * so an action can honour `ctx.limits.maxOutputBytes` itself and say
 * how much it left out instead of being cut by the kernel.
 */
export function takeWithinBudget<T>(items: readonly T[], maxBytes: number): { items: T[]; truncated: boolean } {
  const kept: T[] = [];
  let used = 2;
  for (const item of items) {
    const size = byteLength(JSON.stringify(item)) + 1;
    if (used + size > maxBytes) return { items: kept, truncated: true };
    kept.push(item);
    used += size;
  }
  return { items: kept, truncated: false };
}

/** Bytes as text when they are valid UTF-8, else base64: outputs stay JSON and say which. */
export function encodeBytes(bytes: Uint8Array): { encoding: 'utf8' | 'base64'; data: string } {
  const buffer = Buffer.from(bytes);
  const text = buffer.toString('utf8');
  return Buffer.from(text, 'utf8').equals(buffer) ? { encoding: 'utf8', data: text } : { encoding: 'base64', data: buffer.toString('base64') };
}
