/**
 * visible-text — the one way the operator is shown text that somebody else
 * wrote: an agent's reason, input and messages, a plugin's output, errors and
 * log lines, names. Invariant 8: the agent is a local adversary, and what it
 * writes must not be able to change what the operator sees around it. A
 * newline must not draw a forged `input:` line under a destructive request, a
 * bidi override must not reverse the text after it, a zero-width or blank
 * look-alike must not hide a character, a carriage return or an ANSI escape
 * must not overwrite the line.
 *
 * So every character in the classes below is replaced by a visible escape:
 * `\n`, `\r`, `\t` for those three, `\u{hex}` (the code point, lowercase hex)
 * for every other one. A literal backslash is shown as `\\`, so the text
 * `\u{202e}` typed by an agent reads `\\u{202e}` and can never pass for an
 * escape this function produced. The result is one line.
 *
 * The CLI prints everything it did not write itself through this file, and the
 * web UI imports the same functions (`@aipermission/kernel/display`), so both
 * show the same thing. It uses nothing but the language: no Node APIs.
 *
 * The character classes use the JavaScript engine's Unicode tables (Node 20:
 * Unicode 15+); a code point unassigned there is escaped, since no font of
 * that engine's time draws it either.
 */

/** One class of characters that is always escaped, and why. The table the tests and the docs follow. */
export interface HiddenCharacterClass {
  id: string;
  description: string;
  pattern: RegExp;
}

export const HIDDEN_CHARACTER_CLASSES: readonly HiddenCharacterClass[] = [
  { id: 'control', description: 'controls: C0 (including \\n, \\r, \\t and ESC), DEL and C1', pattern: /\p{Cc}/u },
  {
    id: 'format',
    description: 'format characters (Cf): soft hyphen, U+061C, U+180E, zero-widths, bidi embeddings, overrides and isolates, word joiners, U+FEFF, tags',
    pattern: /\p{Cf}/u,
  },
  { id: 'line-separator', description: 'line and paragraph separators U+2028 and U+2029', pattern: /[\p{Zl}\p{Zp}]/u },
  { id: 'space', description: 'every space separator except U+0020 (no-break, en/em, thin, hair, ideographic, ...)', pattern: /(?! )\p{Zs}/u },
  { id: 'surrogate', description: 'unpaired surrogates', pattern: /\p{Cs}/u },
  { id: 'private-use', description: 'private-use characters', pattern: /\p{Co}/u },
  { id: 'unassigned', description: 'unassigned code points and noncharacters', pattern: /\p{Cn}/u },
  {
    id: 'ignorable',
    description: 'default-ignorable characters: variation selectors, U+034F, Hangul fillers U+115F U+1160 U+3164 U+FFA0, U+17B4 U+17B5, ...',
    pattern: /\p{Default_Ignorable_Code_Point}/u,
  },
  { id: 'blank', description: 'characters that draw as blank: U+2800 braille blank, U+1D159 null notehead', pattern: /[\u2800\u{1d159}]/u },
];

/** Every class above, as one test. */
const HIDDEN = new RegExp(HIDDEN_CHARACTER_CLASSES.map((c) => c.pattern.source).join('|'), 'u');
const MARK = /\p{M}/u;
/**
 * Combining marks shown on one base character; the rest are escaped. Real
 * text stacks at most three or four (Vietnamese, Hebrew points with
 * cantillation); dozens ("zalgo") draw over the lines above and below.
 */
export const MAX_COMBINING_MARKS = 4;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\\': '\\\\' };

/** The class a character is escaped for, or undefined when it is shown as itself. */
export function hiddenCharacterClass(char: string): string | undefined {
  return HIDDEN_CHARACTER_CLASSES.find((c) => c.pattern.test(char))?.id;
}

type Mode = 'text' | 'json-preview' | 'json';

const escapeFor = (char: string, mode: Mode): string => {
  const named = mode === 'text' ? NAMED[char] : undefined;
  if (named) return named;
  if (mode === 'json') {
    // Valid JSON: \uXXXX per UTF-16 unit, so a parser reads back the same string.
    return Array.from({ length: char.length }, (_, i) => `\\u${char.charCodeAt(i).toString(16).padStart(4, '0')}`).join('');
  }
  return `\\u{${char.codePointAt(0)!.toString(16)}}`;
};

function render(text: string, mode: Mode, maxLength: number): string {
  let out = '';
  let marks = 0;
  // A combining mark needs a base character shown as itself; on an escape it would decorate our `}`.
  let base = false;
  let index = 0;
  for (const char of text) {
    let piece: string;
    let escaped: boolean;
    if (mode === 'text' ? char === '\\' || HIDDEN.test(char) : char.codePointAt(0)! >= 0x20 && HIDDEN.test(char)) {
      // JSON output already escapes C0 controls, unpaired surrogates and backslashes inside strings; its raw newlines are its own layout.
      piece = escapeFor(char, mode);
      escaped = piece !== char;
    } else if (MARK.test(char)) {
      escaped = !base || marks >= MAX_COMBINING_MARKS;
      piece = escaped ? escapeFor(char, mode) : char;
      if (!escaped) marks += 1;
    } else {
      piece = char;
      escaped = false;
    }
    if (out.length + piece.length > maxLength) {
      return `${out}… (${[...text.slice(index)].length} more characters)`;
    }
    out += piece;
    index += char.length;
    if (escaped) {
      base = false;
      marks = 0;
    } else if (!MARK.test(char)) {
      // In JSON a string's opening quote is no base: a mark there would restyle the quote.
      base = !(mode !== 'text' && char === '"');
      marks = 0;
    }
  }
  return out;
}

export interface VisibleTextOptions {
  /**
   * Show at most this many characters (escapes count as what they show),
   * never cutting inside an escape; a cut ends in `… (N more characters)`.
   */
  maxLength?: number;
}

/**
 * Plain text as one visible line: every hidden, control, format or bidi
 * character escaped, a backslash doubled (see the file comment).
 */
export function visibleText(text: string, options: VisibleTextOptions = {}): string {
  return render(text, 'text', options.maxLength ?? Infinity);
}

/**
 * A value as compact, one-line JSON for reading (previews): JSON's own
 * escapes stay as they are (`\n`, `\"`, `\\`, `\u0007` mean what JSON says),
 * and every character JSON leaves raw but hides (bidi, zero-width, DEL, C1,
 * U+2028, ...) is shown as `\u{hex}`, which JSON never writes, so the two
 * cannot be confused.
 */
export function visibleJson(value: unknown, options: VisibleTextOptions = {}): string {
  return render(String(JSON.stringify(value)), 'json-preview', options.maxLength ?? Infinity);
}

/**
 * Indented JSON that stays valid JSON (`--json` output): hidden characters
 * become `\uXXXX` escapes, so a parser reads back exactly the same value and
 * a terminal shows nothing hidden.
 */
export function visibleJsonDocument(value: unknown, indent = 2): string {
  return render(String(JSON.stringify(value, null, indent)), 'json', Infinity);
}
