import { Hono } from 'hono';
import { KernelError } from '../../lib/errors.js';
import { parseDurationMs } from '../../lib/clock.js';
import type { Clock } from '../../lib/clock.js';
import { tokenState, type TokenStore } from '../../tokens/index.js';
import { GRANT_RULES, type GrantRule, type GrantStore } from '../../grants/index.js';
import type { HttpEnv } from '../context.js';
import type { DatabaseGuard, PerDatabase } from '../deps.js';
import { bodySchema, checkQuery, databaseFor, ISO_TIME, readBody } from '../helpers.js';

const ID = { type: 'string', minLength: 1, maxLength: 64 } as const;
const DURATION = { type: 'string', pattern: '^\\d{1,6}\\s*[smhdw]$' } as const;

const tokenCreate = bodySchema<{ name: string; expiresAt?: string | null; expiresIn?: string }>(
  { name: { type: 'string', minLength: 1, maxLength: 100 }, expiresAt: ISO_TIME, expiresIn: DURATION },
  ['name'],
);
const grantSet = bodySchema<{ tokenId: string; targetId: string; profileId: string; action: string; rule: GrantRule; expiresAt?: string | null; expiresIn?: string }>(
  { tokenId: ID, targetId: ID, profileId: ID, action: { type: 'string', minLength: 1, maxLength: 64 }, rule: { enum: [...GRANT_RULES] }, expiresAt: ISO_TIME, expiresIn: DURATION },
  ['tokenId', 'targetId', 'profileId', 'action', 'rule'],
);

/** `expiresIn` ("1h", "4h", "1d": the UI's temporary grants) or an absolute `expiresAt`, not both. */
function expiryFrom(clock: Clock, body: { expiresAt?: string | null; expiresIn?: string }): string | null {
  if (body.expiresIn !== undefined && body.expiresAt) {
    throw new KernelError('invalid_input', 'Give either expiresAt or expiresIn, not both.', { status: 400 });
  }
  if (body.expiresIn !== undefined) return new Date(clock.now() + parseDurationMs(body.expiresIn)!).toISOString();
  return body.expiresAt ?? null;
}

/** What the token and grant routes use: the clock (token states, relative expiry) and the two stores, no more of them than shown. */
export interface TokenRouteDeps {
  databases: Pick<DatabaseGuard, 'isUnlocked' | 'exists'>;
  clock: Clock;
  tokens: PerDatabase<Pick<TokenStore, 'list' | 'create' | 'revoke'>>;
  grants: PerDatabase<Pick<GrantStore, 'list' | 'set' | 'remove' | 'effective'>>;
}

/** MCP tokens and the grants table. */
export function tokenRoutes(deps: TokenRouteDeps) {
  const app = new Hono<HttpEnv>();
  const { clock } = deps;

  app.get('/databases/:db/tokens', async (c) => {
    checkQuery(c, []);
    const { name } = await databaseFor(c, deps.databases);
    const now = clock.now();
    return c.json({ tokens: (await deps.tokens(name).list()).map((token) => ({ ...token, state: tokenState(token, now) })) });
  });

  app.post('/databases/:db/tokens', async (c) => {
    const { name, actor } = await databaseFor(c, deps.databases);
    const tokens = deps.tokens(name);
    const body = await readBody(c, tokenCreate);
    const created = await tokens.create({ name: body.name, expiresAt: expiryFrom(clock, body) }, actor);
    // The only time the token itself is ever returned.
    return c.json({ token: created.token, secret: created.secret, note: 'Copy the token now: it is not stored and cannot be shown again.' }, 201);
  });

  app.post('/databases/:db/tokens/:id/revoke', async (c) => {
    const { name, actor } = await databaseFor(c, deps.databases);
    return c.json({ token: await deps.tokens(name).revoke(c.req.param('id'), actor) });
  });

  app.get('/databases/:db/grants', async (c) => {
    checkQuery(c, ['tokenId', 'targetId', 'profileId']);
    const { name } = await databaseFor(c, deps.databases);
    const store = deps.grants(name);
    const filter = {
      ...(c.req.query('tokenId') ? { tokenId: c.req.query('tokenId')! } : {}),
      ...(c.req.query('targetId') ? { targetId: c.req.query('targetId')! } : {}),
      ...(c.req.query('profileId') ? { profileId: c.req.query('profileId')! } : {}),
    };
    const grants = await store.list(filter);
    // Each row with what it decides now: a row a stricter one overrides says so, so no display shows a rule that does not apply.
    return c.json({
      grants: grants.map((grant) => {
        const effective = store.effective(grant);
        return { ...grant, expired: effective.expired, effectiveRule: effective.rule, overriddenBy: effective.overriddenBy };
      }),
    });
  });

  app.put('/databases/:db/grants', async (c) => {
    const { name, actor } = await databaseFor(c, deps.databases);
    const store = deps.grants(name);
    const body = await readBody(c, grantSet);
    const grant = await store.set(
      { tokenId: body.tokenId, targetId: body.targetId, profileId: body.profileId, action: body.action, rule: body.rule, expiresAt: expiryFrom(clock, body) },
      actor,
    );
    const effective = store.effective(grant);
    // The rows of the same token x target x profile whose rule this one now overrides (a stricter "*" row overrides looser action rows).
    const overrides = (await store.list({ tokenId: grant.tokenId, targetId: grant.targetId, profileId: grant.profileId }))
      .filter((other) => {
        const theirs = store.effective(other);
        return other.id !== grant.id && !theirs.expired && theirs.overriddenBy?.id === grant.id;
      })
      .map((other) => ({ id: other.id, action: other.action, rule: other.rule }));
    return c.json({ grant, effectiveRule: effective.rule, overriddenBy: effective.overriddenBy, overrides });
  });

  app.delete('/databases/:db/grants/:id', async (c) => {
    const { name, actor } = await databaseFor(c, deps.databases);
    await deps.grants(name).remove(c.req.param('id'), actor);
    return c.json({ deleted: true });
  });

  return app;
}
