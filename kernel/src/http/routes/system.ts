import { Hono } from 'hono';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KernelError } from '../../lib/errors.js';
import { databaseNameFromFile } from '../../vault/index.js';
import type { Kernel } from '../../kernel.js';
import type { HttpContext, HttpEnv } from '../context.js';
import { setSessionCookies, SESSION_COOKIE, CSRF_COOKIE } from '../boundary.js';
import { actorOf, bodySchema, databaseNameOf, readBody, requireSession, workspaceFor } from '../helpers.js';
import type { SessionStore } from '../sessions.js';
import { deleteCookie } from 'hono/cookie';

const NAME = { type: 'string', minLength: 1, maxLength: 63 } as const;
const PASSWORD = { type: 'string', minLength: 1, maxLength: 1024 } as const;
const CLIENT = { enum: ['ui', 'cli'] } as const;

const createBody = bodySchema<{ name: string; password: string; client?: 'ui' | 'cli' }>({ name: NAME, password: PASSWORD, client: CLIENT }, ['name', 'password']);
const unlockBody = bodySchema<{ password: string; client?: 'ui' | 'cli' }>({ password: PASSWORD, client: CLIENT }, ['password']);
const passwordBody = bodySchema<{ currentPassword: string; newPassword: string }>({ currentPassword: PASSWORD, newPassword: PASSWORD }, ['currentPassword', 'newPassword']);
const exportBody = bodySchema<{ password: string }>({ password: PASSWORD }, ['password']);
/** 64 MiB of base64: a database of ~48 MB, far beyond a normal workspace; bigger ones import offline with `aip db import`. */
export const IMPORT_MAX_BYTES = 64 * 1024 * 1024;
const importBody = bodySchema<{ name?: string; fileName?: string; password: string; data: string }>(
  { name: NAME, fileName: { type: 'string', maxLength: 255 }, password: PASSWORD, data: { type: 'string', minLength: 1, maxLength: IMPORT_MAX_BYTES } },
  ['password', 'data'],
);

/** Status, setup (create), import, unlock/lock, password change, export, logout. */
export function systemRoutes(kernel: Kernel, sessions: SessionStore, version: string) {
  const app = new Hono<HttpEnv>();

  app.get('/status', async (c) => {
    const session = c.get('session');
    const databases = await kernel.listDatabases();
    return c.json({
      name: 'AIPermission',
      version,
      locked: kernel.unlocked().length === 0,
      databases: databases.map((d) => ({ name: d.name, unlocked: d.unlocked, sizeBytes: d.sizeBytes, modifiedAt: d.modifiedAt, hasSafetyCopy: d.hasSafetyCopy })),
      session: session ? { id: session.id, client: session.client, databases: [...session.databases].filter((name) => kernel.isUnlocked(name)) } : null,
    });
  });

  const openSession = (c: HttpContext, name: string, client: 'ui' | 'cli') => {
    const session = sessions.issue(name, client, c.get('session'));
    setSessionCookies(c, session.secret, session.csrf);
    return session;
  };

  // First-run setup, or another workspace: create, unlock, and start a session.
  app.post('/databases', async (c) => {
    const body = await readBody(c, createBody);
    await kernel.createDatabase(body.name, body.password);
    const client = body.client ?? 'ui';
    const ws = await kernel.unlock(body.name, body.password, `operator:${client}`);
    const session = openSession(c, body.name, client);
    return c.json({ database: { name: ws.name, unlocked: true, mcpRunning: ws.mcp.isRunning() }, session: { id: session.id }, csrfToken: session.csrf }, 201);
  });

  app.post('/databases/import', async (c) => {
    const body = await readBody(c, importBody);
    const name = body.name ?? databaseNameFromFile(body.fileName ?? 'imported.aipdb');
    const data = Buffer.from(body.data, 'base64');
    if (data.length === 0) throw new KernelError('invalid_input', 'data must be the .aipdb file, base64-encoded.', { status: 400 });
    const dir = await mkdtemp(join(tmpdir(), 'aip-import-'));
    try {
      const file = join(dir, 'upload.aipdb');
      await writeFile(file, data, { mode: 0o600 });
      const info = await kernel.vault.importDatabase(file, body.password, name);
      return c.json({ database: { name: info.name, unlocked: false, sizeBytes: info.sizeBytes } }, 201);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  app.post('/databases/:db/unlock', async (c) => {
    const name = databaseNameOf(c);
    const body = await readBody(c, unlockBody);
    const client = body.client ?? 'ui';
    const ws = await kernel.unlock(name, body.password, `operator:${client}`);
    const session = openSession(c, name, client);
    return c.json({ database: { name: ws.name, unlocked: true, mcpRunning: ws.mcp.isRunning() }, session: { id: session.id }, csrfToken: session.csrf });
  });

  // Prove the password of an already unlocked database (the CLI does this per command); never unlocks.
  app.post('/databases/:db/session', async (c) => {
    const name = databaseNameOf(c);
    const body = await readBody(c, unlockBody);
    const client = body.client ?? 'cli';
    if (!kernel.isUnlocked(name)) {
      await workspaceFor(c, kernel); // 404 or 423 with the usual message
    }
    const ws = await kernel.provePassword(name, body.password, `operator:${client}`);
    const session = openSession(c, name, client);
    return c.json({ database: { name: ws.name, unlocked: true, mcpRunning: ws.mcp.isRunning() }, session: { id: session.id }, csrfToken: session.csrf });
  });

  app.post('/databases/:db/lock', async (c) => {
    const { ws, actor } = await workspaceFor(c, kernel);
    await kernel.lock(ws.name, actor);
    return c.json({ database: { name: ws.name, unlocked: false } });
  });

  app.post('/databases/:db/password', async (c) => {
    const { ws, session, actor } = await workspaceFor(c, kernel);
    const body = await readBody(c, passwordBody);
    await ws.handle.changePassword(body.currentPassword, body.newPassword);
    await ws.audit.append({ actor, event: 'database.password_changed', subject: { database: ws.name } });
    // Everyone else proved the old password; they prove the new one.
    sessions.dropDatabase(ws.name, session);
    return c.json({ database: { name: ws.name }, changed: true });
  });

  app.post('/databases/:db/export', async (c) => {
    const { ws, actor } = await workspaceFor(c, kernel);
    const body = await readBody(c, exportBody);
    if (!(await ws.handle.verifyPassword(body.password))) {
      throw new KernelError('wrong_password', `That password does not open database "${ws.name}".`, { status: 401 });
    }
    const dir = await mkdtemp(join(tmpdir(), 'aip-export-'));
    try {
      const file = join(dir, `${ws.name}.aipdb`);
      await ws.audit.append({ actor, event: 'database.exported', subject: { database: ws.name } });
      await ws.handle.exportTo(file, body.password);
      const bytes = await readFile(file);
      const stamp = new Date(kernel.clock.now()).toISOString().slice(0, 10);
      return c.body(bytes, 200, {
        'Content-Type': 'application/octet-stream',
        'Content-Disposition': `attachment; filename="${ws.name}-${stamp}.aipdb"`,
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  app.post('/session/logout', async (c) => {
    const session = requireSession(c, kernel);
    sessions.destroy(session);
    deleteCookie(c, SESSION_COOKIE, { path: '/' });
    deleteCookie(c, CSRF_COOKIE, { path: '/' });
    return c.json({ loggedOut: true, actor: actorOf(session) });
  });

  return app;
}
