import { Hono } from 'hono';
import { KernelError } from '../../lib/errors.js';
import { parseDurationMs } from '../../lib/clock.js';
import { tokenState } from '../../tokens/index.js';
import { GRANT_RULES, type GrantRule } from '../../grants/index.js';
import type { Kernel } from '../../kernel.js';
import type { HttpEnv } from '../context.js';
import { bodySchema, checkQuery, ISO_TIME, readBody, workspaceFor } from '../helpers.js';

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
function expiryFrom(kernel: Kernel, body: { expiresAt?: string | null; expiresIn?: string }): string | null {
  if (body.expiresIn !== undefined && body.expiresAt) {
    throw new KernelError('invalid_input', 'Give either expiresAt or expiresIn, not both.', { status: 400 });
  }
  if (body.expiresIn !== undefined) return new Date(kernel.clock.now() + parseDurationMs(body.expiresIn)!).toISOString();
  return body.expiresAt ?? null;
}

/** MCP tokens and the grants table. */
export function tokenRoutes(kernel: Kernel) {
  const app = new Hono<HttpEnv>();

  app.get('/databases/:db/tokens', async (c) => {
    checkQuery(c, []);
    const { ws } = await workspaceFor(c, kernel);
    const now = kernel.clock.now();
    return c.json({ tokens: (await ws.tokens.list()).map((token) => ({ ...token, state: tokenState(token, now) })) });
  });

  app.post('/databases/:db/tokens', async (c) => {
    const { ws, actor } = await workspaceFor(c, kernel);
    const body = await readBody(c, tokenCreate);
    const created = await ws.tokens.create({ name: body.name, expiresAt: expiryFrom(kernel, body) }, actor);
    // The only time the token itself is ever returned.
    return c.json({ token: created.token, secret: created.secret, note: 'Copy the token now: it is not stored and cannot be shown again.' }, 201);
  });

  app.post('/databases/:db/tokens/:id/revoke', async (c) => {
    const { ws, actor } = await workspaceFor(c, kernel);
    return c.json({ token: await ws.tokens.revoke(c.req.param('id'), actor) });
  });

  app.get('/databases/:db/grants', async (c) => {
    checkQuery(c, ['tokenId', 'targetId', 'profileId']);
    const { ws } = await workspaceFor(c, kernel);
    const filter = {
      ...(c.req.query('tokenId') ? { tokenId: c.req.query('tokenId')! } : {}),
      ...(c.req.query('targetId') ? { targetId: c.req.query('targetId')! } : {}),
      ...(c.req.query('profileId') ? { profileId: c.req.query('profileId')! } : {}),
    };
    const grants = await ws.grants.list(filter);
    // Each row with what it decides now: a row a stricter one overrides says so, so no display shows a rule that does not apply.
    return c.json({
      grants: grants.map((grant) => {
        const effective = ws.grants.effective(grant);
        return { ...grant, expired: effective.expired, effectiveRule: effective.rule, overriddenBy: effective.overriddenBy };
      }),
    });
  });

  app.put('/databases/:db/grants', async (c) => {
    const { ws, actor } = await workspaceFor(c, kernel);
    const body = await readBody(c, grantSet);
    const grant = await ws.grants.set(
      { tokenId: body.tokenId, targetId: body.targetId, profileId: body.profileId, action: body.action, rule: body.rule, expiresAt: expiryFrom(kernel, body) },
      actor,
    );
    const effective = ws.grants.effective(grant);
    // The rows of the same token x target x profile whose rule this one now overrides (a stricter "*" row overrides looser action rows).
    const overrides = (await ws.grants.list({ tokenId: grant.tokenId, targetId: grant.targetId, profileId: grant.profileId }))
      .filter((other) => {
        const theirs = ws.grants.effective(other);
        return other.id !== grant.id && !theirs.expired && theirs.overriddenBy?.id === grant.id;
      })
      .map((other) => ({ id: other.id, action: other.action, rule: other.rule }));
    return c.json({ grant, effectiveRule: effective.rule, overriddenBy: effective.overriddenBy, overrides });
  });

  app.delete('/databases/:db/grants/:id', async (c) => {
    const { ws, actor } = await workspaceFor(c, kernel);
    await ws.grants.remove(c.req.param('id'), actor);
    return c.json({ deleted: true });
  });

  return app;
}
