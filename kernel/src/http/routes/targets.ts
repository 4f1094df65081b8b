import { Hono } from 'hono';
import type { TargetStore } from '../../targets/index.js';
import type { HttpContext, HttpEnv } from '../context.js';
import type { DatabaseGuard, PerDatabase } from '../deps.js';
import { bodySchema, checkQuery, databaseFor, readBody } from '../helpers.js';

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

/** What the target routes use: the guard and the targets store without its credential lease (secrets go in, never out). */
export interface TargetRouteDeps {
  databases: Pick<DatabaseGuard, 'isUnlocked' | 'exists'>;
  targets: PerDatabase<
    Pick<
      TargetStore,
      'listTargets' | 'requireTarget' | 'createTarget' | 'updateTarget' | 'deleteTarget' | 'listProfiles' | 'requireProfile' | 'createProfile' | 'updateProfile' | 'deleteProfile'
    >
  >;
}

/** Targets and credential profiles. Secret values go in, never come out: profiles list their secret field names only. */
export function targetRoutes(deps: TargetRouteDeps) {
  const app = new Hono<HttpEnv>();
  /** The guard's checks first (400/404/423/401), then this database's store. */
  const open = async (c: HttpContext) => {
    const { name, actor } = await databaseFor(c, deps.databases);
    return { targets: deps.targets(name), actor };
  };

  app.get('/databases/:db/targets', async (c) => {
    checkQuery(c, []);
    const { targets } = await open(c);
    const [list, profiles] = await Promise.all([targets.listTargets(), targets.listProfiles()]);
    return c.json({ targets: list.map((target) => ({ ...target, profiles: profiles.filter((p) => p.targetId === target.id) })) });
  });

  app.post('/databases/:db/targets', async (c) => {
    const { targets, actor } = await open(c);
    const body = await readBody(c, targetCreate);
    return c.json({ target: await targets.createTarget(body, actor) }, 201);
  });

  app.get('/databases/:db/targets/:id', async (c) => {
    const { targets } = await open(c);
    const target = await targets.requireTarget(c.req.param('id'));
    return c.json({ target: { ...target, profiles: await targets.listProfiles(target.id) } });
  });

  app.patch('/databases/:db/targets/:id', async (c) => {
    const { targets, actor } = await open(c);
    const body = await readBody(c, targetPatch);
    return c.json({ target: await targets.updateTarget(c.req.param('id'), body, actor) });
  });

  app.delete('/databases/:db/targets/:id', async (c) => {
    const { targets, actor } = await open(c);
    await targets.deleteTarget(c.req.param('id'), actor);
    return c.json({ deleted: true });
  });

  app.post('/databases/:db/targets/:id/profiles', async (c) => {
    const { targets, actor } = await open(c);
    const body = await readBody(c, profileCreate);
    return c.json({ profile: await targets.createProfile(c.req.param('id'), body, actor) }, 201);
  });

  app.get('/databases/:db/profiles/:id', async (c) => {
    const { targets } = await open(c);
    return c.json({ profile: await targets.requireProfile(c.req.param('id')) });
  });

  app.patch('/databases/:db/profiles/:id', async (c) => {
    const { targets, actor } = await open(c);
    const body = await readBody(c, profilePatch);
    return c.json({ profile: await targets.updateProfile(c.req.param('id'), body, actor) });
  });

  app.delete('/databases/:db/profiles/:id', async (c) => {
    const { targets, actor } = await open(c);
    await targets.deleteProfile(c.req.param('id'), actor);
    return c.json({ deleted: true });
  });

  return app;
}
