/** Longest part of an agent- or client-supplied value repeated in an error message. */
const MAX_QUOTED_CHARS = 80;

/**
 * A value quoted for an error message: JSON string syntax with every
 * control, format (bidi, zero-width, soft hyphen) and line/paragraph
 * separator character written as `\uXXXX`, cut at 80 characters. A
 * message never repeats a 5,000-character id or draws a reversed one.
 */
export function quoteForMessage(value: string): string {
  const cut = value.length > MAX_QUOTED_CHARS ? `${value.slice(0, MAX_QUOTED_CHARS)}...` : value;
  return JSON.stringify(cut).replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, (ch) => `\\u${ch.codePointAt(0)!.toString(16).padStart(4, '0')}`);
}
