import { Hono } from 'hono';
import type { Kernel } from '../../kernel.js';
import type { HttpEnv } from '../context.js';
import { bodySchema, checkQuery, readBody, workspaceFor } from '../helpers.js';

const OBJECT = { type: 'object' } as const;
const TEXT = { type: 'string', maxLength: 2000 } as const;
const NAME = { type: 'string', minLength: 1, maxLength: 120 } as const;
const KIND = { type: 'string', minLength: 1, maxLength: 64 } as const;

const targetCreate = bodySchema<{ kind: string; name: string; description?: string; config?: Record<string, unknown> }>(
  { kind: KIND, name: NAME, description: TEXT, config: OBJECT },
  ['kind', 'name'],
);
const targetPatch = bodySchema<{ name?: string; description?: string; config?: Record<string, unknown> }>({ name: NAME, description: TEXT, config: OBJECT });
const profileCreate = bodySchema<{ label: string; credentialKind?: string; config?: Record<string, unknown>; secret?: Record<string, unknown> }>(
  { label: NAME, credentialKind: KIND, config: OBJECT, secret: OBJECT },
  ['label'],
);
const profilePatch = bodySchema<{ label?: string; config?: Record<string, unknown>; secret?: Record<string, unknown> }>({ label: NAME, config: OBJECT, secret: OBJECT });

/** Targets and credential profiles. Secret values go in, never come out: profiles list their secret field names only. */
export function targetRoutes(kernel: Kernel) {
  const app = new Hono<HttpEnv>();

  app.get('/databases/:db/targets', async (c) => {
    checkQuery(c, []);
    const { ws } = await workspaceFor(c, kernel);
    const [targets, profiles] = await Promise.all([ws.targets.listTargets(), ws.targets.listProfiles()]);
    return c.json({ targets: targets.map((target) => ({ ...target, profiles: profiles.filter((p) => p.targetId === target.id) })) });
  });

  app.post('/databases/:db/targets', async (c) => {
    const { ws, actor } = await workspaceFor(c, kernel);
    const body = await readBody(c, targetCreate);
    return c.json({ target: await ws.targets.createTarget(body, actor) }, 201);
  });

  app.get('/databases/:db/targets/:id', async (c) => {
    const { ws } = await workspaceFor(c, kernel);
    const target = await ws.targets.requireTarget(c.req.param('id'));
    return c.json({ target: { ...target, profiles: await ws.targets.listProfiles(target.id) } });
  });

  app.patch('/databases/:db/targets/:id', async (c) => {
    const { ws, actor } = await workspaceFor(c, kernel);
    const body = await readBody(c, targetPatch);
    return c.json({ target: await ws.targets.updateTarget(c.req.param('id'), body, actor) });
  });

  app.delete('/databases/:db/targets/:id', async (c) => {
    const { ws, actor } = await workspaceFor(c, kernel);
    await ws.targets.deleteTarget(c.req.param('id'), actor);
    return c.json({ deleted: true });
  });

  app.post('/databases/:db/targets/:id/profiles', async (c) => {
    const { ws, actor } = await workspaceFor(c, kernel);
    const body = await readBody(c, profileCreate);
    return c.json({ profile: await ws.targets.createProfile(c.req.param('id'), body, actor) }, 201);
  });

  app.get('/databases/:db/profiles/:id', async (c) => {
    const { ws } = await workspaceFor(c, kernel);
    return c.json({ profile: await ws.targets.requireProfile(c.req.param('id')) });
  });

  app.patch('/databases/:db/profiles/:id', async (c) => {
    const { ws, actor } = await workspaceFor(c, kernel);
    const body = await readBody(c, profilePatch);
    return c.json({ profile: await ws.targets.updateProfile(c.req.param('id'), body, actor) });
  });

  app.delete('/databases/:db/profiles/:id', async (c) => {
    const { ws, actor } = await workspaceFor(c, kernel);
    await ws.targets.deleteProfile(c.req.param('id'), actor);
    return c.json({ deleted: true });
  });

  return app;
}
