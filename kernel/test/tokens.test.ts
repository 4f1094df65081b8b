import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from './helpers/kernel.js';
import { PASSWORD, OTHER_PASSWORD } from './helpers/temp.js';
import { hashToken, tokenProblem } from '../src/tokens/index.js';

let h: Harness;
beforeEach(async () => {
  h = await createHarness();
});
afterEach(async () => h.cleanup());

describe('MCP tokens', () => {
  it('creates aip_ + 43 base64url characters, stores only the hash and a prefix, and shows the token once', async () => {
    const { token, secret } = await h.ws.tokens.create({ name: 'claude-code' }, 'operator:test');
    expect(secret).toMatch(/^aip_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(secret.slice(4), 'base64url')).toHaveLength(32);
    expect(token.prefix).toBe(secret.slice(0, 12));
    const row = await h.ws.db.get<Record<string, unknown>>('SELECT * FROM tokens WHERE id = ?', [token.id]);
    expect(row!.hash).toBe(hashToken(secret));
    expect(JSON.stringify(row)).not.toContain(secret.slice(12));
    expect(JSON.stringify(await h.ws.tokens.list())).not.toContain(secret.slice(12));
    const audit = await h.ws.db.all<{ payload: string }>('SELECT payload FROM audit_log');
    expect(audit.map((a) => a.payload).join()).not.toContain(secret.slice(12));
  });

  it('authenticates a valid token to its database', async () => {
    const { token, secret } = await h.ws.tokens.create({ name: 'a' }, 'operator:test');
    const auth = h.kernel.authenticateToken(secret);
    expect(auth.database).toBe('main');
    expect(auth.tokenId).toBe(token.id);
    expect(auth).toEqual({ kind: 'agent', database: 'main', tokenId: token.id });
  });

  it('refuses an expired token', async () => {
    const { secret } = await h.ws.tokens.create({ name: 'short', expiresAt: new Date(h.clock.now() + 60_000).toISOString() }, 'operator:test');
    expect(() => h.kernel.authenticateToken(secret)).not.toThrow();
    h.clock.advance(61_000);
    expect(() => h.kernel.authenticateToken(secret)).toThrow(expect.objectContaining({ code: 'token_expired' }));
    await expect(h.ws.tokens.create({ name: 'past', expiresAt: new Date(h.clock.now() - 1).toISOString() }, 'operator:test')).rejects.toMatchObject({
      code: 'invalid_input',
    });
  });

  it('refuses a revoked token', async () => {
    const { token, secret } = await h.ws.tokens.create({ name: 'a' }, 'operator:test');
    await h.ws.tokens.revoke(token.id, 'operator:test');
    expect(() => h.kernel.authenticateToken(secret)).toThrow(expect.objectContaining({ code: 'token_revoked', status: 401 }));
    expect((await h.ws.tokens.list())[0]!.revokedAt).not.toBeNull();
  });

  it('refuses an unknown or malformed token', () => {
    expect(() => h.kernel.authenticateToken('aip_' + 'A'.repeat(43))).toThrow(expect.objectContaining({ code: 'invalid_token' }));
    expect(() => h.kernel.authenticateToken('Bearer nonsense')).toThrow(expect.objectContaining({ code: 'invalid_token' }));
  });

  it('rate-limits failed authentications', () => {
    for (let i = 0; i < 10; i += 1) expect(() => h.kernel.authenticateToken(`aip_${'B'.repeat(42)}${i}`)).toThrow(expect.objectContaining({ code: 'invalid_token' }));
    expect(() => h.kernel.authenticateToken(`aip_${'C'.repeat(43)}`)).toThrow(expect.objectContaining({ code: 'too_many_attempts', status: 429 }));
    h.clock.advance(61_000);
    expect(() => h.kernel.authenticateToken(`aip_${'C'.repeat(43)}`)).toThrow(expect.objectContaining({ code: 'invalid_token' }));
  });

  it('never locks out a valid token because other clients keep failing', async () => {
    const { secret } = await h.ws.tokens.create({ name: 'good' }, 'operator:test');
    const { token: stale, secret: revoked } = await h.ws.tokens.create({ name: 'revoked' }, 'operator:test');
    await h.ws.tokens.revoke(stale.id, 'operator:test');
    for (let i = 0; i < 12; i += 1) expect(() => h.kernel.authenticateToken(`aip_${'D'.repeat(42)}${i % 10}`)).toThrow();
    for (let i = 0; i < 10; i += 1) expect(() => h.kernel.authenticateToken(revoked)).toThrow(expect.objectContaining({ code: 'token_revoked' }));
    // Both failing kinds are limited now...
    expect(() => h.kernel.authenticateToken(`aip_${'E'.repeat(43)}`)).toThrow(expect.objectContaining({ code: 'too_many_attempts' }));
    expect(() => h.kernel.authenticateToken(revoked)).toThrow(expect.objectContaining({ code: 'too_many_attempts' }));
    // ...and the valid token is not.
    expect(h.kernel.tokens.current(h.kernel.authenticateToken(secret)).name).toBe('good');
  });

  it('treats a token valid in two unlocked databases as a conflict, never a guess', async () => {
    const { secret } = await h.ws.tokens.create({ name: 'shared' }, 'operator:test');
    await h.kernel.createDatabase('second', OTHER_PASSWORD);
    const second = await h.kernel.unlock('second', OTHER_PASSWORD, 'operator:test');
    // The same hash planted in the second database (as an import of a copy would).
    await second.db.run("INSERT INTO tokens (id, name, hash, prefix, created_at) VALUES ('tok_copy000000000000', 'copy', ?, ?, '2026-01-01T00:00:00.000Z')", [
      hashToken(secret),
      secret.slice(0, 12),
    ]);
    await h.kernel.lock('second', 'operator:test');
    const reopened = await h.kernel.unlock('second', OTHER_PASSWORD, 'operator:test');
    expect(() => h.kernel.authenticateToken(secret)).toThrow(expect.objectContaining({ code: 'token_conflict', status: 409 }));
    // Revoking the copy resolves it: only copies that still work count.
    await reopened.tokens.revoke('tok_copy000000000000', 'operator:test');
    expect(h.kernel.authenticateToken(secret).database).toBe('main');
    await h.kernel.lock('second', 'operator:test');
    expect(h.kernel.authenticateToken(secret).database).toBe('main');
  });

  it('stops authenticating tokens of a database once it is locked', async () => {
    const { secret } = await h.ws.tokens.create({ name: 'a' }, 'operator:test');
    await h.kernel.lock('main', 'operator:test');
    // Nothing unlocked: no token can be checked, and that is what it is told.
    expect(() => h.kernel.authenticateToken(secret)).toThrow(expect.objectContaining({ code: 'gateway_locked', status: 503, message: expect.stringContaining('not unlocked') }));
    // With another database unlocked, its tokens work and this one is not valid there.
    await h.kernel.createDatabase('other', PASSWORD);
    const other = await h.kernel.unlock('other', PASSWORD, 'operator:test');
    const theirs = await other.tokens.create({ name: 'b' }, 'operator:test');
    expect(h.kernel.authenticateToken(theirs.secret)).toMatchObject({ database: 'other' });
    expect(() => h.kernel.authenticateToken(secret)).toThrow(expect.objectContaining({ code: 'invalid_token' }));
    await h.kernel.lock('other', 'operator:test');
    await h.kernel.unlock('main', PASSWORD, 'operator:test');
  });

  it('never counts a token as a failed attempt while the gateway is locked (a restart): a valid token works at once after unlock', async () => {
    const { secret } = await h.ws.tokens.create({ name: 'patient' }, 'operator:test');
    await h.kernel.lock('main', 'operator:test');
    // An agent retrying while the operator has not unlocked yet.
    for (let i = 0; i < 25; i += 1) expect(() => h.kernel.authenticateToken(secret)).toThrow(expect.objectContaining({ code: 'gateway_locked' }));
    await h.kernel.unlock('main', PASSWORD, 'operator:test');
    expect(h.kernel.authenticateToken(secret)).toMatchObject({ database: 'main' });
  });
});

describe('what is wrong with something that should be a token', () => {
  const good = `aip_${'Ab0-_'.repeat(8)}xyz`;
  it.each([
    ['a token', good, undefined],
    ['a token missing its last character', good.slice(0, -1), /it is 1 character short \(46 characters; a token has 47\): was it cut off when copied\?/],
    ['a token with a character too many', `${good}x`, /it is 1 character too long \(48 characters; a token has 47\)/],
    ['a token pasted with its quote', `"${good}"`, /it has 1 extra character before aip_ \(a quote or a space\?\)/],
    ['a token with a space in it', `${good.slice(0, 20)} ${good.slice(21)}`, /it has a space or line break at position 21/],
    ['a token with a character base64url has not', `${good.slice(0, 10)}+${good.slice(11)}`, /it has a character that is not a letter, digit, - or _ at position 11/],
    ['something else entirely', 'hunter2', /it does not start with aip_/],
    ['nothing', '', /it is empty/],
  ])('names the problem with %s', (_what, text, expected) => {
    const problem = tokenProblem(text);
    if (expected === undefined) expect(problem).toBeUndefined();
    else {
      expect(problem).toMatch(expected);
      expect(problem).toMatch(/a token is aip_ followed by 43 letters, digits, - or _ \(47 characters in all\)/i);
      // The message can be shown and logged: it names counts and positions, never the token's characters.
      if (text.length > 12) expect(problem).not.toContain(text.slice(4, 12));
    }
  });
});
