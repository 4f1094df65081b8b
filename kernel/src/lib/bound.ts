/** Cuts a UTF-8 string to at most maxBytes without splitting a character. */
export function truncateUtf8(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  let end = Math.max(0, maxBytes);
  // Step back over continuation bytes (10xxxxxx) so the cut lands on a character boundary.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end -= 1;
  return bytes.subarray(0, end).toString('utf8');
}

export interface BoundedOutput {
  value: unknown;
  bytes: number;
  truncated: boolean;
}

/**
 * Enforces an action's output bound in the kernel, whatever the connector
 * did (the original tool only advised connectors to bound themselves). An
 * output over the bound is replaced by a marker with a text preview, so the
 * agent sees that it was cut and by how much instead of broken JSON.
 */
export function boundOutput(value: unknown, maxBytes: number): BoundedOutput {
  const text = JSON.stringify(value === undefined ? null : value);
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes <= maxBytes) return { value: value === undefined ? null : value, bytes, truncated: false };
  // Leave room for the marker object itself within the bound.
  const previewBytes = Math.max(0, maxBytes - 256);
  return {
    value: {
      truncated: true,
      originalBytes: bytes,
      maxOutputBytes: maxBytes,
      note: `The output was ${bytes} bytes, over this action's bound of ${maxBytes} bytes; only a preview of the JSON text is kept. Ask for less (a narrower query, a smaller limit).`,
      preview: truncateUtf8(text, previewBytes),
    },
    bytes,
    truncated: true,
  };
}
