import { visibleText } from './visible-text.js';

/** Longest part of an agent- or client-supplied value repeated in an error message. */
const MAX_QUOTED_CHARS = 80;

/**
 * A value quoted for an error message, in double quotes, through the one
 * shared escape for operator-facing text (visible-text.ts: controls, format
 * and bidi characters, separators and look-alike blanks become visible
 * escapes such as `\u{202e}`), cut at 80 characters. A message never repeats
 * a 5,000-character id or draws a reversed one.
 */
export function quoteForMessage(value: string): string {
  return `"${visibleText(value, { maxLength: MAX_QUOTED_CHARS }).replace(/"/g, '\\"')}"`;
}
