import { RE2JS } from 're2js';
import { KernelError } from '../lib/errors.js';
import { BUILTIN_RULES, isSecretKey, REDACTED, type RedactionRule } from './rules.js';

/** Applied to everything shown or stored in clear: previews, outputs, logs, audit payloads, notes. */
export interface Redactor {
  text(value: string): string;
  /** Deep copy with every string redacted and values under secret-named keys replaced. */
  value<T>(value: T): T;
  /** A redactor that also masks these exact values (the declared secrets of one credential lease). */
  withSecrets(secrets: readonly string[]): Redactor;
}

export interface CustomRuleInput {
  name: string;
  pattern: string;
  flags?: string;
  replacement?: string;
}

/** Longest custom pattern accepted; a rule is a sentence-sized pattern, not a program. */
export const MAX_CUSTOM_PATTERN_LENGTH = 512;
const FLAG_BITS: Record<string, number> = { i: RE2JS.CASE_INSENSITIVE, m: RE2JS.MULTILINE, s: RE2JS.DOTALL };
/** Exact secret values shorter than this are not masked: masking "a" would shred every text. */
const MIN_SECRET_LENGTH = 4;

/**
 * Compiles and vets a custom rule; throws a clear error naming what is wrong.
 * Custom patterns run on RE2 (re2js), which matches in linear time, so an
 * operator's pattern can never stall the gateway with catastrophic
 * backtracking, whatever text it meets.
 */
export function compileCustomRule(input: CustomRuleInput): RedactionRule {
  const flags = input.flags ?? '';
  if (!/^[ims]*$/.test(flags)) {
    throw new KernelError('invalid_redaction_rule', `Flags "${flags}" are not allowed; use any of i (ignore case), m (multi-line), s (dot matches newline).`);
  }
  if (input.pattern.length === 0 || input.pattern.length > MAX_CUSTOM_PATTERN_LENGTH) {
    throw new KernelError('invalid_redaction_rule', `The pattern must be 1-${MAX_CUSTOM_PATTERN_LENGTH} characters long.`);
  }
  let pattern: RE2JS;
  try {
    pattern = RE2JS.compile(input.pattern, [...flags].reduce((bits, flag) => bits | (FLAG_BITS[flag] ?? 0), 0));
  } catch (error) {
    throw new KernelError(
      'invalid_redaction_rule',
      `The pattern is not a valid RE2 regular expression (${(error as Error).message}). Lookarounds and back-references are not supported.`,
    );
  }
  if (pattern.matcher('').find()) {
    throw new KernelError('invalid_redaction_rule', 'The pattern matches the empty string, so it would match everywhere. Make it match something.');
  }
  const replacement = input.replacement ?? REDACTED;
  return { name: input.name, apply: (text) => pattern.matcher(text).replaceAll(replacement) };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function createRedactor(options: { builtin: boolean; custom?: readonly RedactionRule[]; secrets?: readonly string[] }): Redactor {
  const rules = [...(options.builtin ? BUILTIN_RULES : []), ...(options.custom ?? [])];
  const secrets = [...new Set((options.secrets ?? []).filter((s) => typeof s === 'string' && s.length >= MIN_SECRET_LENGTH))]
    // Longest first so a secret that contains another is masked whole.
    .sort((a, b) => b.length - a.length);
  const secretPattern = secrets.length > 0 ? new RegExp(secrets.map(escapeRegExp).join('|'), 'g') : undefined;

  const text = (value: string): string => {
    let out = value;
    if (secretPattern) out = out.replace(secretPattern, REDACTED);
    for (const rule of rules) out = rule.apply(out);
    return out;
  };

  const walk = (value: unknown, depth: number): unknown => {
    // Depth guard: JSON from outside is bounded in size, but not in nesting.
    if (depth > 64) return '[REDACTED: nested too deep]';
    if (typeof value === 'string') return text(value);
    // A secret of digits can come back as a JSON number (a plugin writes 12345678 for the password "12345678").
    if (typeof value === 'number' && secretPattern && text(String(value)) !== String(value)) return REDACTED;
    if (Array.isArray(value)) return value.map((item) => walk(item, depth + 1));
    if (value && typeof value === 'object') {
      const out: Record<string, unknown> = {};
      for (const [key, inner] of Object.entries(value as Record<string, unknown>)) {
        // A key is text too: a connector can put a secret in a key name ({"<password>": true}).
        let shownKey = text(key);
        // Two keys that redact alike stay two entries.
        for (let n = 2; Object.hasOwn(out, shownKey); n += 1) shownKey = `${text(key)} (${n})`;
        // defineProperty: a "__proto__" key from JSON is data, not the prototype.
        Object.defineProperty(out, shownKey, {
          value: isSecretKey(key) && inner !== null && inner !== '' && typeof inner !== 'boolean' ? REDACTED : walk(inner, depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return out;
    }
    return value;
  };

  return {
    text,
    value: <T>(value: T) => walk(value, 0) as T,
    withSecrets: (more) => createRedactor({ ...options, secrets: [...(options.secrets ?? []), ...more] }),
  };
}
