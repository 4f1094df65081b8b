import { describe, expect, it } from 'vitest';
import { HIDDEN_CHARACTER_CLASSES, hiddenCharacterClass, MAX_COMBINING_MARKS, visibleJson, visibleJsonDocument, visibleText } from '../src/lib/visible-text.js';

const hex = (char: string) => char.codePointAt(0)!.toString(16);
const chars = (...codePoints: number[]) => codePoints.map((cp) => String.fromCodePoint(cp));
const range = (from: number, to: number) => chars(...Array.from({ length: to - from + 1 }, (_, i) => from + i));

/** One row per class of character an attacker hides text with: every one must come out as a visible escape. */
const HIDDEN: Array<{ id: string; what: string; samples: string[] }> = [
  { id: 'control', what: 'C0 controls, ESC, DEL and C1 (CSI, NEL)', samples: [...chars(0x00, 0x07, 0x08, 0x0b, 0x0c, 0x1b, 0x1f, 0x7f, 0x80, 0x85, 0x9b, 0x9f)] },
  {
    id: 'format',
    what: 'soft hyphen, U+061C, U+180E, zero-widths, bidi embeddings/overrides/isolates, word joiners, BOM, interlinear annotations, tags',
    samples: [...chars(0xad, 0x61c, 0x180e), ...range(0x200b, 0x200f), ...range(0x202a, 0x202e), ...range(0x2060, 0x2064), ...range(0x2066, 0x2069), ...chars(0xfeff, 0xfff9, 0xfffa, 0xfffb, 0xe0001, 0xe0041, 0xe007f)],
  },
  { id: 'line-separator', what: 'line and paragraph separators', samples: chars(0x2028, 0x2029) },
  { id: 'space', what: 'space separators other than U+0020', samples: [...chars(0xa0, 0x1680), ...range(0x2000, 0x200a), ...chars(0x202f, 0x205f, 0x3000)] },
  { id: 'surrogate', what: 'unpaired surrogates', samples: ['\ud800', '\udbff', '\udc00', '\udfff'] },
  { id: 'private-use', what: 'private-use characters', samples: chars(0xe000, 0xf8ff, 0xf0000, 0x10fffd) },
  { id: 'unassigned', what: 'unassigned code points and noncharacters', samples: chars(0x378, 0x2065, 0xfdd0, 0xfffe, 0xffff, 0x10ffff) },
  {
    id: 'ignorable',
    what: 'variation selectors, combining grapheme joiner, Hangul fillers, Khmer inherent vowels',
    samples: [...chars(0x34f, 0x115f, 0x1160, 0x17b4, 0x17b5, 0x3164, 0xffa0), ...range(0xfe00, 0xfe0f), ...chars(0xe0100, 0xe01ef)],
  },
  { id: 'blank', what: 'characters that draw as blank', samples: chars(0x2800, 0x1d159) },
];

describe('visibleText: every hidden character becomes a visible escape', () => {
  for (const row of HIDDEN) {
    it(`escapes ${row.what} as \\u{hex} (${row.id})`, () => {
      for (const char of row.samples) {
        const expected = { '\n': '\\n', '\r': '\\r', '\t': '\\t' }[char] ?? `\\u{${hex(char)}}`;
        expect(visibleText(`a${char}b`), `U+${hex(char)}`).toBe(`a${expected}b`);
        // The first class that claims it is the row's: the table in the docs and the UI legend agree with the function.
        expect(hiddenCharacterClass(char), `U+${hex(char)}`).toBe(row.id);
      }
    });
  }

  it('names \\n, \\r and \\t and shows a literal backslash as \\\\', () => {
    expect(visibleText('a\nb\rc\td\\e')).toBe('a\\nb\\rc\\td\\\\e');
  });

  it('has a class in the shared table for every row of this test', () => {
    expect(HIDDEN_CHARACTER_CLASSES.map((c) => c.id)).toEqual(HIDDEN.map((row) => row.id));
  });

  it('shows ordinary text of every script as it is', () => {
    for (const text of ['plain ASCII ~!@#$%^&*()_+{}|:"<>?', 'café naïve Ærø', '漢字かな한국어', 'مرحبا بالعالم', 'שלום', 'emoji 😀 🚀', 'e\u0301 (one combining mark)', 'ไทย ที่']) {
      expect(visibleText(text)).toBe(text);
    }
  });

  it('keeps a forged input line on the reason line it came in', () => {
    const reason = 'tidy the cache\n    input:  {"harmless":true}';
    const shown = visibleText(reason);
    expect(shown).toBe('tidy the cache\\n    input:  {"harmless":true}');
    expect(shown).not.toMatch(/[\n\r\u2028\u2029\u0085\v\f]/);
    // A carriage return cannot rewind the line either, nor an ANSI sequence move the cursor.
    expect(visibleText('ok\r    input: {}\u001b[2K\u001b[1A\u009b2K')).toBe('ok\\r    input: {}\\u{1b}[2K\\u{1b}[1A\\u{9b}2K');
  });

  it('never lets typed text pass for an escape it produced', () => {
    // The agent types the six characters \u{202e}; the function shows a real U+202E the same way. They must differ.
    expect(visibleText('\\u{202e}')).toBe('\\\\u{202e}');
    expect(visibleText('\\u{202e}')).not.toBe(visibleText('\u202e'));
    expect(visibleText('\\n')).not.toBe(visibleText('\n'));
    expect(visibleText('\\\n')).toBe('\\\\\\n');
    // Unambiguous in general: the escapes decode back to exactly the text, for any text at all.
    for (const text of randomTexts(400)) expect(decodeText(visibleText(text))).toBe(text);
  });

  it('shows at most four combining marks on a base, and none without one', () => {
    const zalgo = `e${'\u0301'.repeat(MAX_COMBINING_MARKS + 3)}`;
    expect(visibleText(zalgo)).toBe(`e${'\u0301'.repeat(MAX_COMBINING_MARKS)}${'\\u{301}'.repeat(3)}`);
    expect(visibleText('\u0338start')).toBe('\\u{338}start');
    // On an escape a mark would restyle the escape's own characters.
    expect(visibleText('\u200b\u20dd')).toBe('\\u{200b}\\u{20dd}');
  });

  it('cuts long text between escapes and says how much it left out', () => {
    expect(visibleText('x'.repeat(30), { maxLength: 10 })).toBe(`${'x'.repeat(10)}… (20 more characters)`);
    expect(visibleText('\u202e'.repeat(10), { maxLength: 20 })).toBe('\\u{202e}\\u{202e}… (8 more characters)');
    expect(visibleText('short', { maxLength: 10 })).toBe('short');
  });

  it('leaves no hidden character in any output, whatever the input', () => {
    for (const text of randomTexts(400)) {
      for (const char of visibleText(text)) expect(hiddenCharacterClass(char), `U+${hex(char)} from ${JSON.stringify(text)}`).toBeUndefined();
    }
  });
});

describe('visibleJson and visibleJsonDocument', () => {
  it('keeps JSON escapes and marks what JSON leaves raw with \\u{hex}, which JSON never writes', () => {
    expect(visibleJson({ key: 'a\u200bb\u202ec', bell: '\u0007', nl: 'x\ny' })).toBe('{"key":"a\\u{200b}b\\u{202e}c","bell":"\\u0007","nl":"x\\ny"}');
    // A typed "\u{202e}" is JSON-escaped to \\u{202e}: never the same as a real one.
    expect(visibleJson('\\u{202e}')).toBe('"\\\\u{202e}"');
    expect(visibleJson('\u202e')).toBe('"\\u{202e}"');
    expect(visibleJson('\u2028\u0085\u007f')).toBe('"\\u{2028}\\u{85}\\u{7f}"');
    for (const text of randomTexts(300)) expect(JSON.parse(jsonFromPreview(visibleJson({ text })))).toEqual({ text });
  });

  it('cuts a long preview and says so', () => {
    expect(visibleJson({ pad: 'a'.repeat(100), keys: ['prod:*'] }, { maxLength: 20 })).toMatch(/^\{"pad":"a{12}… \(\d+ more characters\)$/);
  });

  it('writes --json output that parses to the same value and shows nothing hidden', () => {
    const value = { reason: 'x\u202ey\u2066z\u00ad\u061c', nested: [{ k: '\u{e0041}\u2028' }], n: 1 };
    const text = visibleJsonDocument(value);
    expect(JSON.parse(text)).toEqual(value);
    expect(text).toContain('\\u202e');
    expect(text).toContain('\\udb40\\udc41');
    for (const char of text.replace(/\n/g, '')) expect(hiddenCharacterClass(char)).toBeUndefined();
  });
});

/** Reverses visibleText's escapes (the test's proof that they are unambiguous). */
function decodeText(shown: string): string {
  return shown.replace(/\\(n|r|t|\\|u\{([0-9a-f]+)\})/g, (_, kind: string, code?: string) =>
    code !== undefined ? codeUnit(parseInt(code, 16)) : ({ n: '\n', r: '\r', t: '\t', '\\': '\\' } as Record<string, string>)[kind]!,
  );
}

/** A lone surrogate was escaped by its own value; everything else by its code point. */
function codeUnit(cp: number): string {
  return cp >= 0xd800 && cp <= 0xdfff ? String.fromCharCode(cp) : String.fromCodePoint(cp);
}

/** Turns a preview's \u{hex} escapes into JSON's \uXXXX, reading JSON's own `\\` pairs as they are. */
function jsonFromPreview(shown: string): string {
  return shown.replace(/\\\\|\\u\{([0-9a-f]+)\}/g, (match, code?: string) => {
    if (code === undefined) return match;
    const text = codeUnit(parseInt(code, 16));
    return Array.from({ length: text.length }, (_, i) => `\\u${text.charCodeAt(i).toString(16).padStart(4, '0')}`).join('');
  });
}

/** Strings mixing ASCII, backslashes, escapes-lookalikes, marks and code points from the whole range (a fixed seed: the same every run). */
function randomTexts(count: number): string[] {
  let seed = 0x5eed;
  const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const pieces = ['a', ' ', '\\', 'u{', '}', '\\u{202e}', '\n', '"', '\u0301', '\u202e', '\ud800', '漢', '😀', '\u{e0041}'];
  return Array.from({ length: count }, () => {
    let text = '';
    const length = Math.floor(next() * 12);
    for (let i = 0; i < length; i += 1) {
      const roll = next();
      if (roll < 0.5) text += pieces[Math.floor(next() * pieces.length)];
      else if (roll < 0.8) text += String.fromCharCode(Math.floor(next() * 0x10000));
      else text += String.fromCodePoint(Math.floor(next() * 0x110000));
    }
    return text;
  });
}
