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

/** Longest custom pattern accepted; long patterns are where catastrophic backtracking hides. */
export const MAX_CUSTOM_PATTERN_LENGTH = 512;
/** A custom rule slower than this on the probe inputs is refused (it would stall every request). */
const PROBE_BUDGET_MS = 50;
const ALLOWED_FLAGS = /^[imsu]*$/;
/** Exact secret values shorter than this are not masked: masking "a" would shred every text. */
const MIN_SECRET_LENGTH = 4;

/** Compiles and vets a custom rule; throws a clear error naming what is wrong. */
export function compileCustomRule(input: CustomRuleInput): RedactionRule {
  const flags = input.flags ?? '';
  if (!ALLOWED_FLAGS.test(flags)) {
    throw new KernelError('invalid_redaction_rule', `Flags "${flags}" are not allowed; use any of i, m, s, u (g is always on).`);
  }
  if (input.pattern.length === 0 || input.pattern.length > MAX_CUSTOM_PATTERN_LENGTH) {
    throw new KernelError('invalid_redaction_rule', `The pattern must be 1-${MAX_CUSTOM_PATTERN_LENGTH} characters long.`);
  }
  let pattern: RegExp;
  try {
    pattern = new RegExp(input.pattern, `${flags}g`);
  } catch (error) {
    throw new KernelError('invalid_redaction_rule', `The pattern is not a valid regular expression: ${(error as Error).message}`);
  }
  if (new RegExp(input.pattern, flags).test('')) {
    throw new KernelError('invalid_redaction_rule', 'The pattern matches the empty string, so it would match everywhere. Make it match something.');
  }
  const probes = ['a'.repeat(4096) + '!', '0'.repeat(4096) + 'x', ' '.repeat(4096) + '\u0000', 'ab'.repeat(2048) + '$'];
  const started = performance.now();
  for (const probe of probes) probe.replace(pattern, '');
  if (performance.now() - started > PROBE_BUDGET_MS) {
    throw new KernelError(
      'invalid_redaction_rule',
      'The pattern is too slow on long inputs (likely catastrophic backtracking, e.g. nested quantifiers like (a+)+). Simplify it.',
    );
  }
  return { name: input.name, pattern, replacement: input.replacement ?? REDACTED };
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
    for (const rule of rules) {
      rule.pattern.lastIndex = 0;
      out = out.replace(rule.pattern, rule.replacement);
    }
    return out;
  };

  const walk = (value: unknown, depth: number): unknown => {
    // Depth guard: JSON from outside is bounded in size, but not in nesting.
    if (depth > 64) return '[REDACTED: nested too deep]';
    if (typeof value === 'string') return text(value);
    if (Array.isArray(value)) return value.map((item) => walk(item, depth + 1));
    if (value && typeof value === 'object') {
      const out: Record<string, unknown> = {};
      for (const [key, inner] of Object.entries(value as Record<string, unknown>)) {
        out[key] = isSecretKey(key) && inner !== null && inner !== '' && typeof inner !== 'boolean' ? REDACTED : walk(inner, depth + 1);
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
