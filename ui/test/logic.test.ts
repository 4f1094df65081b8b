/** The UI's component logic, without a browser: schema-to-form, the grants matrix, invisible-character display, queries. */
import { describe, expect, it } from 'vitest';
import { visibleText } from '@aipermission/kernel/display';
import { collect, fieldsFromNames, fieldsOf, initialValues, secretPlaceholder } from '../src/lib/schema-form.js';
import { buildMatrix, changesFor, destructiveAlways, formatRemaining, parseDuration } from '../src/lib/grant-matrix.js';
import { flagged, jsonSegments, segmentsOfEscaped, textSegments, visibleCanonicalJson } from '../src/lib/invisible.js';
import { auditQuery, nextPage, requestsQuery } from '../src/lib/queries.js';
import { actionsByRisk, formatBytes, isWeak, levelName, sandboxWarnings } from '../src/lib/plugins.js';
import type { ActionInfo, Grant, JsonSchema } from '../src/lib/types.js';

const REDIS_TARGET: JsonSchema = {
  type: 'object',
  required: ['host'],
  properties: {
    host: { type: 'string', minLength: 1, maxLength: 253 },
    port: { type: 'integer', minimum: 1, maximum: 65535, default: 6379 },
    tls: { type: 'boolean', default: false },
    tlsCaPem: { type: 'string', maxLength: 65536 },
    mode: { enum: ['a', 'b'] },
    tags: { type: 'array', items: { type: 'string' } },
  },
};
const PASSWORD_KIND: JsonSchema = {
  type: 'object',
  required: ['password'],
  properties: { username: { type: 'string', description: 'ACL user' }, password: { type: 'string', 'x-secret': true } },
};

describe('schema-to-form', () => {
  it('makes one field per property with the right input, required ones first', () => {
    const fields = fieldsOf(REDIS_TARGET);
    expect(fields.map((f) => [f.name, f.kind, f.required])).toEqual([
      ['host', 'text', true],
      ['port', 'integer', false],
      ['tls', 'boolean', false],
      ['tlsCaPem', 'multiline', false],
      ['mode', 'enum', false],
      ['tags', 'json', false],
    ]);
    expect(fields.find((f) => f.name === 'tlsCaPem')!.label).toBe('Tls Ca Pem');
    expect(fields.find((f) => f.name === 'mode')!.options).toEqual(['a', 'b']);
  });

  it('marks x-secret fields as password inputs and never fills them, even from a stored value', () => {
    const fields = fieldsOf(PASSWORD_KIND);
    expect(fields.find((f) => f.name === 'password')!.kind).toBe('secret');
    expect(initialValues(fields, { username: 'app', password: 'leaked-if-shown' })).toEqual({ password: '', username: 'app' });
    expect(secretPlaceholder('edit', true)).toBe('unchanged (type to replace)');
    expect(secretPlaceholder('create', false)).toBe('not shown again after saving');
  });

  it('starts a new form from the schema defaults', () => {
    expect(initialValues(fieldsOf(REDIS_TARGET))).toEqual({ host: '', port: '6379', tls: false, tlsCaPem: '', mode: '', tags: '' });
  });

  it('reads values back as the schema types, secret fields apart from config', () => {
    const fields = [...fieldsOf(REDIS_TARGET), ...fieldsOf(PASSWORD_KIND)];
    const out = collect(fields, { host: 'h', port: '6380', tls: true, tlsCaPem: '', mode: 'b', tags: '["x"]', username: '', password: 'pw' });
    expect(out).toEqual({ config: { host: 'h', port: 6380, tls: true, mode: 'b', tags: ['x'] }, secret: { password: 'pw' }, errors: {} });
  });

  it('names every wrong field in a sentence', () => {
    const out = collect(fieldsOf(REDIS_TARGET), { host: '', port: '70000', tls: false, tlsCaPem: '', mode: '', tags: '[oops' });
    expect(out.errors).toEqual({ host: 'Host is required.', port: 'Port must be at most 65535.', tags: 'Tags must be JSON (for example ["a", "b"] or {"k": 1}).' });
    expect(collect(fieldsOf(REDIS_TARGET), { host: 'h', port: '1.5' }).errors.port).toBe('Port must be a whole number.');
  });

  it('leaves an empty secret out when editing a profile that has one stored (unchanged), and requires it when creating', () => {
    const fields = fieldsOf(PASSWORD_KIND);
    expect(collect(fields, { username: 'u', password: '' }, 'edit', ['password'])).toEqual({ config: { username: 'u' }, secret: {}, errors: {} });
    expect(collect(fields, { username: 'u', password: '' }, 'create').errors).toEqual({ password: 'Password is required.' });
    expect(collect(fields, { username: 'u', password: 'new' }, 'edit', ['password']).secret).toEqual({ password: 'new' });
  });

  it('falls back to field names for a connector without a manifest schema', () => {
    expect(fieldsFromNames(['username', 'password'], ['password'], ['password']).map((f) => [f.name, f.kind, f.required])).toEqual([
      ['username', 'text', false],
      ['password', 'secret', true],
    ]);
  });
});

const action = (name: string, risk: ActionInfo['risk']): ActionInfo => ({ name, title: name, description: '', risk, limits: { timeoutMs: 1, maxOutputBytes: 1 }, inputSchema: {} });
const ACTIONS = [action('get_key', 'read'), action('scan_keys', 'read'), action('set_string', 'write'), action('delete_keys', 'destructive')];
const grant = (actionName: string, rule: Grant['rule'], extra: Partial<Grant> = {}): Grant => ({
  id: `grt_${actionName}`, tokenId: 't', targetId: 'g', profileId: 'p', action: actionName, rule, expiresAt: null, expired: false, effectiveRule: rule, overriddenBy: null, ...extra,
});

describe('grant matrix', () => {
  it('groups actions by risk with each row\'s state and the group\'s common state', () => {
    const matrix = buildMatrix(ACTIONS, [grant('get_key', 'always_run'), grant('scan_keys', 'always_run'), grant('set_string', 'approval_required'), grant('*', 'blocked')]);
    expect(matrix.map((g) => [g.risk, g.state, g.rows.map((r) => `${r.action.name}=${r.state}`)])).toEqual([
      ['read', 'always', ['get_key=always', 'scan_keys=always']],
      ['write', 'ask', ['set_string=ask']],
      ['destructive', 'none', ['delete_keys=none']],
    ]);
    expect(buildMatrix(ACTIONS, [grant('get_key', 'blocked')])[0]!.state).toBe('mixed');
  });

  it('shows an expired grant as none', () => {
    expect(buildMatrix(ACTIONS, [grant('get_key', 'always_run', { expired: true })])[0]!.rows[0]!.state).toBe('none');
  });

  it('sends only what changes: PUT the new rule, DELETE for none, nothing for a cell already so', () => {
    const rows = buildMatrix(ACTIONS, [grant('get_key', 'always_run')])[0]!.rows;
    expect(changesFor(rows, 'always')).toEqual([{ op: 'put', action: 'scan_keys', rule: 'always_run' }]);
    expect(changesFor(rows, 'none')).toEqual([{ op: 'delete', action: 'get_key', grantId: 'grt_get_key' }]);
    expect(changesFor(rows, 'ask', '4h')).toEqual([
      { op: 'put', action: 'get_key', rule: 'approval_required', expiresIn: '4h' },
      { op: 'put', action: 'scan_keys', rule: 'approval_required', expiresIn: '4h' },
    ]);
    // A temporary grant replaces a permanent row of the same rule.
    expect(changesFor(rows, 'always', '1h')).toHaveLength(2);
  });

  it('asks before always on a destructive action, naming it', () => {
    const all = buildMatrix(ACTIONS, []).flatMap((g) => g.rows);
    expect(destructiveAlways(all, 'always')).toEqual(['delete_keys']);
    expect(destructiveAlways(all, 'ask')).toEqual([]);
  });

  it('takes custom durations the API accepts and counts down', () => {
    expect(parseDuration(' 90m ')).toBe('90m');
    expect(parseDuration('2D')).toBe('2d');
    expect(parseDuration('0h')).toBeUndefined();
    expect(parseDuration('1 year')).toBeUndefined();
    expect(formatRemaining(4 * 3600_000 - 1000)).toBe('3h 59m');
    expect(formatRemaining(65_000)).toBe('1m 05s');
    expect(formatRemaining(9_000)).toBe('9s');
    expect(formatRemaining(26 * 3600_000)).toBe('1d 2h');
    expect(formatRemaining(0)).toBe('expired');
  });
});

describe('invisible-character display', () => {
  it('splits visible text into plain runs and flagged escapes that join back to the kernel\'s visibleText', () => {
    const text = 'a\u202eb\nc\u200bd\\u{202e}\u0007';
    const segments = textSegments(text);
    expect(segments.map((s) => s.text).join('')).toBe(visibleText(text));
    expect(flagged(segments)).toEqual([
      { text: '\\u{202e}', cls: 'format', codePoint: 'U+202E' },
      { text: '\\n', cls: 'control', codePoint: 'U+000A' },
      { text: '\\u{200b}', cls: 'format', codePoint: 'U+200B' },
      { text: '\\u{7}', cls: 'control', codePoint: 'U+0007' },
    ]);
  });

  it('never flags a backslash the text itself contains (an agent typing \\u{202e} is not hiding anything)', () => {
    const segments = textSegments('\\u{202e} and \\n');
    expect(flagged(segments)).toEqual([]);
    expect(segments.map((s) => s.text).join('')).toBe('\\\\u{202e} and \\\\n');
  });

  it('shows input as indented canonical JSON (sorted keys) with hidden characters escaped and flagged, JSON\'s own escapes kept', () => {
    const value = { z: 1, a: { y: 'x\u2066y', b: ['q"\\', '\u0000'] }, '\u202ekey': true };
    const text = visibleCanonicalJson(value);
    expect(text).toBe('{\n  "a": {\n    "b": [\n      "q\\"\\\\",\n      "\\u0000"\n    ],\n    "y": "x\\u{2066}y"\n  },\n  "z": 1,\n  "\\u{202e}key": true\n}');
    expect(flagged(jsonSegments(value)).map((f) => f.codePoint)).toEqual(['U+0000', 'U+2066', 'U+202E']);
  });

  it('stays exact on text that looks like escapes', () => {
    expect(segmentsOfEscaped('\\u{zz} \\q')).toEqual([{ text: '\\u{zz} \\q' }]);
  });
});

describe('history and audit queries', () => {
  it('builds the request and audit searches, leaving out what is empty', () => {
    expect(requestsQuery({ q: ' flush ', status: ['stale', 'expired'], tokenId: '', action: 'set_string', limit: 50 })).toBe('?q=flush&status=stale%2Cexpired&action=set_string&limit=50');
    expect(requestsQuery({})).toBe('');
    expect(requestsQuery({ until: '2026-02-01T00:00:00Z', page: 'c1' })).toBe('?until=2026-02-01T00%3A00%3A00.000Z&cursor=c1');
    expect(auditQuery({ event: 'grant', since: '2026-01-01T00:00:00Z', page: 'abc' })).toBe('?event=grant&since=2026-01-01T00%3A00%3A00.000Z&cursor=abc');
  });

  it('reads the next page from nextCursor (none on the last page)', () => {
    expect(nextPage({ nextCursor: 'abc' })).toBe('abc');
    expect(nextPage({ nextCursor: null })).toBeUndefined();
  });
});

describe('what the plugins page says about a sandbox level', () => {
  const strong = { level: 'bwrap+node-permission', bwrap: true, network: 'none (endpoint only)', networkIsolated: true, identity: 'nobody, in a user namespace of its own, no capabilities', noCapabilities: true, canSignalGateway: false, memoryLimitBytes: 1610612736, scratchQuotaBytes: 67108864 };
  it('warns of nothing for bubblewrap, and of each weakness in plain words without it', () => {
    expect(sandboxWarnings(strong)).toEqual([]);
    expect(isWeak(strong)).toBe(false);
    const weak = { ...strong, level: 'node-permission', bwrap: false, network: 'host network (no bubblewrap)', networkIsolated: false, canSignalGateway: true, noCapabilities: false, identity: 'root, with every capability (no bubblewrap)', memoryLimitBytes: null };
    const warnings = sandboxWarnings(weak);
    expect(warnings).toHaveLength(5);
    expect(warnings.join('\n')).toMatch(/No bubblewrap[\s\S]*signal your processes, the gateway included[\s\S]*host network[\s\S]*capabilities \(root[\s\S]*heap is capped/);
    expect(levelName(weak.level)).toBe('Node permissions only (no bubblewrap)');
  });
  it('formats byte limits and groups actions riskiest first', () => {
    expect([formatBytes(1610612736), formatBytes(67108864), formatBytes(1024), formatBytes(500), formatBytes(null)]).toEqual(['1.5 GiB', '64 MiB', '1 KiB', '500 bytes', 'not limited']);
    const groups = actionsByRisk([{ name: 'a', risk: 'read' }, { name: 'b', risk: 'destructive' }, { name: 'c', risk: 'write' }, { name: 'd', risk: 'read' }, { name: 'e', risk: 'odd' }]);
    expect(groups.map((g) => [g.risk, g.actions.map((a) => a.name).join('')])).toEqual([['destructive', 'b'], ['write', 'c'], ['read', 'ad'], ['odd', 'e']]);
  });
});
