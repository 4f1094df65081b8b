/**
 * Invisible, control and bidirectional characters made visible and flagged.
 *
 * The escaping itself is the kernel's (`@aipermission/kernel/display`, the
 * same functions the CLI prints through), so the page and the terminal show
 * the same text. This module only splits that visible text into plain runs
 * and escapes, so the page can mark each escape and say what it stood for:
 * in the escaped text a backslash always starts an escape (a literal one is
 * doubled), so the split is unambiguous.
 */
import { hiddenCharacterClass, visibleJson, visibleText } from '@aipermission/kernel/display';

export interface Segment {
  text: string;
  /** Set on an escape that stands for a hidden character: its class (`format`, `control`, ...) and code point. */
  flag?: { cls: string; codePoint: string };
}

const SIMPLE: Record<string, number> = { n: 0x0a, r: 0x0d, t: 0x09, b: 0x08, f: 0x0c };

function classOf(codePoint: number): string {
  return hiddenCharacterClass(String.fromCodePoint(codePoint)) ?? 'combining';
}

const hex = (codePoint: number) => `U+${codePoint.toString(16).toUpperCase().padStart(4, '0')}`;

/** Splits escaped text (visibleText or visibleJson output) into plain runs and flagged escapes. */
export function segmentsOfEscaped(escaped: string): Segment[] {
  const out: Segment[] = [];
  let plain = '';
  const flush = () => {
    if (plain) out.push({ text: plain });
    plain = '';
  };
  for (let i = 0; i < escaped.length; i += 1) {
    const char = escaped[i]!;
    if (char !== '\\' || i + 1 >= escaped.length) {
      plain += char;
      continue;
    }
    const next = escaped[i + 1]!;
    if (next === '\\' || next === '"' || next === '/') {
      plain += char + next;
      i += 1;
      continue;
    }
    let length = 2;
    let codePoint: number | undefined = SIMPLE[next];
    if (next === 'u' && escaped[i + 2] === '{') {
      const end = escaped.indexOf('}', i + 3);
      if (end > 0) {
        codePoint = Number.parseInt(escaped.slice(i + 3, end), 16);
        length = end - i + 1;
      }
    } else if (next === 'u' && /^[0-9a-fA-F]{4}$/.test(escaped.slice(i + 2, i + 6))) {
      codePoint = Number.parseInt(escaped.slice(i + 2, i + 6), 16);
      length = 6;
    }
    if (codePoint === undefined || Number.isNaN(codePoint)) {
      plain += char;
      continue;
    }
    flush();
    out.push({ text: escaped.slice(i, i + length), flag: { cls: classOf(codePoint), codePoint: hex(codePoint) } });
    i += length - 1;
  }
  flush();
  return out;
}

/** Plain text (a name, a reason, a message) as one visible line, split for display. */
export function textSegments(text: string): Segment[] {
  return segmentsOfEscaped(visibleText(text));
}

/** Sorts object keys at every depth: the canonical form the kernel hashes (its inputHash), so what is shown is what is bound. */
export function canonicalize(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonicalize);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) out[key] = canonicalize((value as Record<string, unknown>)[key]);
    return out;
  }
  return value;
}

/**
 * A value as indented canonical JSON whose every string (keys too) went
 * through visibleJson: still readable JSON, with nothing hidden in it.
 */
export function visibleCanonicalJson(value: unknown, indent = 2): string {
  const write = (node: unknown, depth: number): string => {
    const pad = ' '.repeat(indent * (depth + 1));
    const close = ' '.repeat(indent * depth);
    if (Array.isArray(node)) {
      if (node.length === 0) return '[]';
      return `[\n${node.map((item) => pad + write(item, depth + 1)).join(',\n')}\n${close}]`;
    }
    if (node !== null && typeof node === 'object') {
      const keys = Object.keys(node);
      if (keys.length === 0) return '{}';
      return `{\n${keys.map((key) => `${pad}${visibleJson(key)}: ${write((node as Record<string, unknown>)[key], depth + 1)}`).join(',\n')}\n${close}}`;
    }
    return visibleJson(node === undefined ? null : node);
  };
  return write(canonicalize(value), 0);
}

export function jsonSegments(value: unknown): Segment[] {
  return segmentsOfEscaped(visibleCanonicalJson(value));
}

/** The flagged escapes of some segments, for a summary under the input ("2 hidden characters: U+202E format, ..."). */
export function flagged(segments: Segment[]): { text: string; cls: string; codePoint: string }[] {
  return segments.flatMap((segment) => (segment.flag ? [{ text: segment.text, ...segment.flag }] : []));
}

/** What each class means, in the words the operator is shown next to a flag. */
export const CLASS_NAMES: Record<string, string> = {
  control: 'control character',
  format: 'invisible format or bidirectional character',
  'line-separator': 'line/paragraph separator',
  space: 'unusual space',
  surrogate: 'unpaired surrogate',
  'private-use': 'private-use character',
  unassigned: 'unassigned code point',
  ignorable: 'invisible (default-ignorable) character',
  blank: 'blank-looking character',
  combining: 'excess combining mark',
};
