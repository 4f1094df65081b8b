import { describe, expect, it } from 'vitest';
import { compileCustomRule, createRedactor } from '../src/redaction/index.js';

const r = createRedactor({ builtin: true });

describe('built-in redaction', () => {
  it('hides PEM private keys, including a truncated one', () => {
    const pem = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----';
    expect(r.text(`key:\n${pem}\nafter`)).toBe('key:\n[REDACTED PRIVATE KEY]\nafter');
    expect(r.text('-----BEGIN RSA PRIVATE KEY-----\nMIIEow')).toBe('[REDACTED PRIVATE KEY]');
    expect(r.text('-----BEGIN PUBLIC KEY-----\nMIIB')).toContain('MIIB');
  });

  it('hides bearer tokens and authorization headers', () => {
    expect(r.text('Authorization: Bearer eyabc.def-ghi_jkl')).toBe('Authorization: Bearer [REDACTED]');
    expect(r.text('curl -H "Authorization: Basic dXNlcjpwYXNz"')).toContain('Basic [REDACTED]');
  });

  it('hides password= and token: style pairs', () => {
    expect(r.text('PGPASSWORD=hunter2 psql')).toBe('PGPASSWORD=[REDACTED] psql');
    expect(r.text('{"api_key": "abc123"}')).toBe('{"api_key": "[REDACTED]"}');
    expect(r.text('token: xyz')).toBe('token: [REDACTED]');
    expect(r.text('redis://user:pa55word@host:6379/0')).toBe('redis://user:[REDACTED]@host:6379/0');
  });

  it('hides well-known token prefixes', () => {
    for (const secret of [
      'aip_' + 'a'.repeat(43),
      'ghp_' + 'A'.repeat(36),
      'github_pat_' + 'B'.repeat(40),
      'xoxb-1234567890-abcdef',
      'sk-ant-api03-' + 'c'.repeat(30),
      'AKIAIOSFODNN7EXAMPLE',
      'glpat-' + 'd'.repeat(20),
      'AIza' + 'e'.repeat(35),
    ]) {
      expect(r.text(`x ${secret} y`)).toBe('x [REDACTED] y');
    }
  });

  it('masks values under secret-named keys and walks nested values', () => {
    expect(r.value({ user: 'app', password: 'x', nested: [{ clientSecret: 'y', note: 'token=abc' }], count: 3 })).toEqual({
      user: 'app',
      password: '[REDACTED]',
      nested: [{ clientSecret: '[REDACTED]', note: 'token=[REDACTED]' }],
      count: 3,
    });
    expect(r.value({ tokenCount: 5, max_tokens: 10 })).toEqual({ tokenCount: 5, max_tokens: 10 });
  });

  it('masks the exact secret values of a credential lease', () => {
    const leased = r.withSecrets(['correct horse battery', 'ab']);
    expect(leased.text('output: correct horse battery!')).toBe('output: [REDACTED]!');
    // Too short to mask safely.
    expect(leased.text('ab')).toBe('ab');
  });

  it('redacts object keys too: a secret used as a key name is masked, and keys that redact alike stay apart', () => {
    const leased = r.withSecrets(['Key-Secret-9999']);
    const out = leased.value({ 'Key-Secret-9999': true, nested: { 'x Key-Secret-9999': [1] }, '[REDACTED]': 'literal' });
    expect(JSON.stringify(out)).not.toContain('Key-Secret-9999');
    expect(out).toEqual({ '[REDACTED]': true, nested: { 'x [REDACTED]': [1] }, '[REDACTED] (2)': 'literal' });
    // A "__proto__" key from parsed JSON is kept as data, never set as the prototype.
    const parsed = leased.value(JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as Record<string, unknown>);
    expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
    expect(Object.keys(parsed)).toEqual(['__proto__', 'a']);
  });

  it('keeps the pairs it redacted before, written as a scan now (keys inside other text, several per line)', () => {
    expect(r.text('x:password=hunter2 and db.api-key: "k3y", "secret":"s" tokenCount=5')).toBe('x:password=[REDACTED] and db.api-key: "[REDACTED]", "secret":"[REDACTED]" tokenCount=[REDACTED]');
    expect(r.text('Authorization: Bearer abcdefghij, auth=Basic dXNlcjpwYXNz')).toBe('Authorization: Bearer [REDACTED], auth=Basic [REDACTED]');
    expect(r.text('password is nothing')).toBe('password is nothing');
    expect(r.text('eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlMTIz')).toBe('[REDACTED]');
  });

  it('runs in linear time on what a hostile plugin can send (every built-in rule, megabytes of adversarial text)', () => {
    const leased = r.withSecrets(['Some-Secret-Value-1']);
    for (const [name, unit] of [
      ['key characters', 'a.'],
      ['secret words', 'token'],
      ['separators', 'x:'],
      ['url schemes', 'a.b'],
      ['jwt prefixes', 'eyJ'],
      ['pem headers', '-----BEGIN A '],
      ['assignments', 'password= '],
    ] as const) {
      const text = unit.repeat(Math.ceil(1_000_000 / unit.length));
      const started = performance.now();
      leased.text(text);
      leased.value({ [text.slice(0, 100_000)]: text });
      // Before: 80 KB of "a.a.a..." took 15 s in one rule (quadratic); a megabyte now takes milliseconds.
      expect(performance.now() - started, name).toBeLessThan(1_500);
    }
  });

  it('can be switched off for the built-in rules', () => {
    expect(createRedactor({ builtin: false }).text('password=x')).toBe('password=x');
  });
});

describe('custom rules', () => {
  it('applies a stored pattern', () => {
    const rule = compileCustomRule({ name: 'employee ids', pattern: 'EMP-\\d{6}' });
    expect(createRedactor({ builtin: false, custom: [rule] }).text('owner EMP-123456.')).toBe('owner [REDACTED].');
  });

  it('refuses invalid, empty-matching or badly flagged patterns with a clear reason', () => {
    expect(() => compileCustomRule({ name: 'x', pattern: '(' })).toThrow(/not a valid RE2 regular expression/);
    expect(() => compileCustomRule({ name: 'x', pattern: '(?<=a)b' })).toThrow(/Lookarounds/);
    expect(() => compileCustomRule({ name: 'x', pattern: 'a*' })).toThrow(/matches the empty string/);
    expect(() => compileCustomRule({ name: 'x', pattern: 'x', flags: 'y' })).toThrow(/Flags/);
  });

  it('matches in linear time, so a catastrophic-backtracking pattern cannot stall the gateway', () => {
    const rule = compileCustomRule({ name: 'evil', pattern: '(a+)+b', flags: 'i' });
    const started = performance.now();
    const out = createRedactor({ builtin: false, custom: [rule] }).text('a'.repeat(200_000) + '!');
    expect(out.length).toBe(200_001);
    // A backtracking engine needs longer than the age of the universe here; RE2 needs milliseconds.
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('supports flags and group references in the replacement', () => {
    const rule = compileCustomRule({ name: 'ids', pattern: 'emp-(\\d{2})\\d{4}', flags: 'i', replacement: 'EMP-$1****' });
    expect(createRedactor({ builtin: false, custom: [rule] }).text('EMP-123456')).toBe('EMP-12****');
  });
});
