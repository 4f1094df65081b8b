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

/** Words that make a key name a secret's: `db_password`, `api-key`, `X_AUTH_TOKEN`, ... */
const SECRET_WORD = /password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|passphrase|auth/gi;
/** Between a key and its value: `=`, `: `, `": "`, ... */
const ASSIGNMENT = /["']?[ \t]*[:=][ \t]*["']?/y;
/** A value that is a scheme and its own credential, left for the authorization-header rule. */
const SCHEME_VALUE = /(?:Bearer|Basic|Token|Digest) /iy;
const isKeyChar = (code: number) =>
  (code >= 48 && code <= 57) || (code >= 65 && code <= 90) || (code >= 97 && code <= 122) || code === 95 || code === 46 || code === 45; // 0-9 A-Z a-z _ . -
/** The value: up to whitespace or one of `"',;&}]`. */
const VALUE = /[^\s"',;&}\]]+/y;

/**
 * `key<separator>value` where the key (a run of letters, digits, `_`, `.`
 * and `-`) contains a secret word: the value is redacted, the key and the
 * separator stay readable. Written as a scan, not as one regex: the regex
 * (a key class, a word, the class again, a separator) backtracked over the
 * whole run of key characters from every word boundary, so 80 KB of
 * "a.a.a..." from a plugin took 15 s and 3.5 MB would have stalled the
 * gateway for hours. Here each character is looked at a bounded number of
 * times: a word's key is extended to its end once, and the scan resumes
 * after it.
 */
function secretAssignmentRule(): RedactionRule {
  return {
    name: 'secret-assignment',
    apply(text) {
      let out = '';
      let copied = 0;
      SECRET_WORD.lastIndex = 0;
      for (let word = SECRET_WORD.exec(text); word; word = SECRET_WORD.exec(text)) {
        // The rest of the key: every word inside it shares this end, so the scan goes on after it.
        let keyEnd = word.index + word[0].length;
        while (keyEnd < text.length && isKeyChar(text.charCodeAt(keyEnd))) keyEnd += 1;
        SECRET_WORD.lastIndex = keyEnd;
        ASSIGNMENT.lastIndex = keyEnd;
        const separator = ASSIGNMENT.exec(text);
        if (!separator) continue;
        const valueStart = keyEnd + separator[0].length;
        SCHEME_VALUE.lastIndex = valueStart;
        if (SCHEME_VALUE.test(text)) continue;
        VALUE.lastIndex = valueStart;
        const value = VALUE.exec(text);
        if (!value) continue;
        const valueEnd = valueStart + value[0].length;
        out += `${text.slice(copied, valueStart)}${REDACTED}`;
        copied = valueEnd;
        SECRET_WORD.lastIndex = valueEnd;
      }
      return copied === 0 ? text : out + text.slice(copied);
    },
  };
}

/**
 * Built-in rules, on by default (setting `redaction.builtin`). They are tuned
 * to over-redact rather than leak: a false positive hides a harmless value in
 * a preview, a false negative puts a secret in the audit log forever.
 */
export const BUILTIN_RULES: readonly RedactionRule[] = [
  // Also a truncated block (no END line) in bounded output.
  regexRule('pem-private-key', /-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----[\s\S]*?(?:-----END \1-----|$)/g, '[REDACTED PRIVATE KEY]'),
  regexRule('authorization-header', /\b(Bearer|Basic|Token|Digest)\s+[A-Za-z0-9._~+/=-]{8,}/g, `$1 ${REDACTED}`),
  // The scheme starts where no scheme character precedes it (a lookbehind, not \b): with \b every
  // position of a long "a.a.a..." run was a start that scanned the rest of the run (quadratic).
  regexRule('url-credentials', /(?<![a-zA-Z0-9+.-])([a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^\s:/@]*:)([^\s@/]+)(@)/g, `$1${REDACTED}$3`),
  // password=..., "token": "...", api_key: ..., PGPASSWORD=... and the like. Not a regex: see
  // secretAssignmentRule (linear time whatever the text; the regex it replaces was quadratic).
  secretAssignmentRule(),
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
        // JWTs, starting where no token character precedes (else every "eyJ" of a long run rescans it: quadratic).
        '(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\\.eyJ[A-Za-z0-9_-]{8,}\\.[A-Za-z0-9_-]{8,}',
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
