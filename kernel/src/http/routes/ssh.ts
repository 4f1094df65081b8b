import { Hono } from 'hono';
import type { HostKeys, HostKeyVerdict, SshKeyStore } from '../../transports/index.js';
import type { HttpEnv } from '../context.js';
import type { DatabaseGuard, PerDatabase } from '../deps.js';
import { bodySchema, checkQuery, databaseFor, readBody } from '../helpers.js';

const NAME = { type: 'string', minLength: 1, maxLength: 64 } as const;
const keyGenerate = bodySchema<{ name: string; type?: 'ed25519' | 'rsa' }>({ name: NAME, type: { enum: ['ed25519', 'rsa'] } }, ['name']);
/** A private key file is a few KiB; 64 KiB leaves room for any real one. */
const keyImport = bodySchema<{ name: string; privateKey: string; passphrase?: string }>(
  { name: NAME, privateKey: { type: 'string', minLength: 1, maxLength: 64 * 1024 }, passphrase: { type: 'string', maxLength: 1024 } },
  ['name', 'privateKey'],
);
const hostKeyScan = bodySchema<{ host: string; port?: number }>({ host: { type: 'string', minLength: 1, maxLength: 255 }, port: { type: 'integer', minimum: 1, maximum: 65535 } }, ['host']);
const hostKeyApprove = bodySchema<{ replace?: boolean }>({ replace: { type: 'boolean' } });

export interface SshRouteDeps {
  databases: Pick<DatabaseGuard, 'isUnlocked' | 'exists'>;
  sshKeys: PerDatabase<Pick<SshKeyStore, 'generate' | 'import' | 'list' | 'show' | 'remove'>>;
  hostKeys: PerDatabase<Pick<HostKeys, 'pinned' | 'approvals' | 'approve' | 'reject'>>;
  /** Reads the key host:port offers and checks it against this database's pins (an unknown one becomes an approval). */
  scanHostKey: PerDatabase<(host: string, port: number) => Promise<HostKeyVerdict>>;
}

/**
 * SSH keys and host keys of one database (docs/ssh.md). Keys are answered as
 * public key, fingerprint and install command only: no route returns private
 * material (invariant 2). An imported key's passphrase is used to open it and
 * dropped with the request body.
 */
export function sshRoutes(deps: SshRouteDeps) {
  const app = new Hono<HttpEnv>();

  app.get('/databases/:db/ssh/keys', async (c) => {
    checkQuery(c, []);
    const { name } = await databaseFor(c, deps.databases);
    return c.json({ keys: await deps.sshKeys(name).list() });
  });
  app.post('/databases/:db/ssh/keys', async (c) => {
    const { name, actor } = await databaseFor(c, deps.databases);
    const body = await readBody(c, keyGenerate);
    return c.json({ key: await deps.sshKeys(name).generate(body, actor) }, 201);
  });
  app.post('/databases/:db/ssh/keys/import', async (c) => {
    const { name, actor } = await databaseFor(c, deps.databases);
    const body = await readBody(c, keyImport);
    return c.json({ key: await deps.sshKeys(name).import(body, actor) }, 201);
  });
  app.get('/databases/:db/ssh/keys/:ref', async (c) => {
    const { name } = await databaseFor(c, deps.databases);
    return c.json({ key: await deps.sshKeys(name).show(c.req.param('ref')) });
  });
  app.delete('/databases/:db/ssh/keys/:ref', async (c) => {
    const { name, actor } = await databaseFor(c, deps.databases);
    await deps.sshKeys(name).remove(c.req.param('ref'), actor);
    return c.body(null, 204);
  });

  app.get('/databases/:db/ssh/hostkeys', async (c) => {
    checkQuery(c, ['status']);
    const { name } = await databaseFor(c, deps.databases);
    const status = c.req.query('status');
    if (status !== undefined && !['pending', 'approved', 'rejected'].includes(status)) {
      return c.json({ error: { code: 'invalid_input', message: 'status is pending, approved or rejected.' } }, 400);
    }
    const store = deps.hostKeys(name);
    return c.json({ pinned: await store.pinned(), approvals: await store.approvals(status ? { status: status as 'pending' } : {}) });
  });
  app.post('/databases/:db/ssh/hostkeys/scan', async (c) => {
    const { name } = await databaseFor(c, deps.databases);
    const body = await readBody(c, hostKeyScan);
    return c.json({ verdict: await deps.scanHostKey(name)(body.host, body.port ?? 22) });
  });
  app.post('/databases/:db/ssh/hostkeys/:id/approve', async (c) => {
    const { name, actor } = await databaseFor(c, deps.databases);
    const body = await readBody(c, hostKeyApprove);
    return c.json({ approval: await deps.hostKeys(name).approve(c.req.param('id'), { replace: body.replace === true }, actor) });
  });
  app.post('/databases/:db/ssh/hostkeys/:id/reject', async (c) => {
    const { name, actor } = await databaseFor(c, deps.databases);
    return c.json({ approval: await deps.hostKeys(name).reject(c.req.param('id'), actor) });
  });
  return app;
}
