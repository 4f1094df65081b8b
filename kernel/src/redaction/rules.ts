/** A rule that rewrites every match in a text. */
export interface RedactionRule {
  name: string;
  apply(text: string): string;
}

/** A built-in rule: a vetted JavaScript regex (custom rules use RE2 instead, see redactor.ts). */
function regexRule(name: string, pattern: RegExp, replacement: string): RedactionRule {
  return {
    name,
    apply(text) {
      pattern.lastIndex = 0;
      return text.replace(pattern, replacement);
    },
  };
}

export const REDACTED = '[REDACTED]';

/**
 * Built-in rules, on by default (setting `redaction.builtin`). They are tuned
 * to over-redact rather than leak: a false positive hides a harmless value in
 * a preview, a false negative puts a secret in the audit log forever.
 */
export const BUILTIN_RULES: readonly RedactionRule[] = [
  // Also a truncated block (no END line) in bounded output.
  regexRule('pem-private-key', /-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----[\s\S]*?(?:-----END \1-----|$)/g, '[REDACTED PRIVATE KEY]'),
  regexRule('authorization-header', /\b(Bearer|Basic|Token|Digest)\s+[A-Za-z0-9._~+/=-]{8,}/g, `$1 ${REDACTED}`),
  regexRule('url-credentials', /\b([a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^\s:/@]*:)([^\s@/]+)(@)/g, `$1${REDACTED}$3`),
  // password=..., "token": "...", api_key: ..., PGPASSWORD=... and the like. The
  // lookahead leaves "Authorization: Bearer [REDACTED]" readable after the rule above.
  regexRule(
    'secret-assignment',
    /\b([A-Za-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|passphrase|auth)[A-Za-z0-9_.-]*)(["']?[ \t]*[:=][ \t]*["']?)(?!(?:Bearer|Basic|Token|Digest) )([^\s"',;&}\]]+)/gi,
    `$1$2${REDACTED}`,
  ),
  regexRule(
    'well-known-token',
    new RegExp(
      [
        'aip_[A-Za-z0-9_-]{20,}', // our own MCP tokens
        'gh[pousr]_[A-Za-z0-9]{20,}', // GitHub
        'github_pat_[A-Za-z0-9_]{20,}',
        'glpat-[A-Za-z0-9_-]{20,}', // GitLab
        'xox[abeprs]-[A-Za-z0-9-]{10,}', // Slack
        'sk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}', // OpenAI / Anthropic
        '(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}', // Stripe
        '(?:AKIA|ASIA)[0-9A-Z]{16}', // AWS access key ids
        'npm_[A-Za-z0-9]{36}',
        'AIza[0-9A-Za-z_-]{35}', // Google API keys
        'eyJ[A-Za-z0-9_-]{8,}\\.eyJ[A-Za-z0-9_-]{8,}\\.[A-Za-z0-9_-]{8,}', // JWTs
      ]
        .map((source) => `(?:${source})`)
        .join('|'),
      'g',
    ),
    REDACTED,
  ),
];

/**
 * Object keys whose values are secrets whatever they contain. Matched on the
 * key lower-cased with `_` and `-` removed, by suffix, so `db_password`,
 * `clientSecret` and `X-Api-Key` are caught and `tokenCount` is not.
 */
const SECRET_KEY_SUFFIXES = ['password', 'passwd', 'secret', 'token', 'apikey', 'accesskey', 'privatekey', 'passphrase', 'authorization', 'cookie', 'credential', 'credentials'];

export function isSecretKey(key: string): boolean {
  const normalized = key.toLowerCase().replace(/[_-]/g, '');
  return SECRET_KEY_SUFFIXES.some((suffix) => normalized.endsWith(suffix));
}
