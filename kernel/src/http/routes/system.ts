import { Hono } from 'hono';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KernelError } from '../../lib/errors.js';
import { assertPasswordRules, databaseNameFromFile } from '../../vault/index.js';
import type { Clock } from '../../lib/clock.js';
import type { Audit } from '../../audit/index.js';
import type { McpSwitch } from '../../mcp-switch/index.js';
import type { HttpContext, HttpEnv } from '../context.js';
import type { DatabaseGuard, DatabaseLifecycle, PerDatabase } from '../deps.js';
import { setSessionCookies, SESSION_COOKIE, CSRF_COOKIE } from '../boundary.js';
import { actorOf, bodySchema, databaseFor, databaseNameOf, defaultDatabase, NO_SESSION_ACTOR, readBody, requireSession, unlockedDatabase } from '../helpers.js';
import type { Session, SessionStore } from '../sessions.js';
import { storageRefusal } from '../../lib/storage-errors.js';
import { isoAt } from '../../lib/clock.js';
import { deleteCookie } from 'hono/cookie';
import { hardeningState } from '../../lib/harden.js';

/** How often a session start that met a full disk is written again: space that comes back is used within a fraction of a second. */
const LATE_SESSION_RETRY_MS = 200;

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

/**
 * What the system routes use: the databases' lifecycle (which owns the
 * vault, the password gate and the audit-first rekey and export), each
 * database's MCP switch state and audit (to announce sessions), and the
 * operator sessions.
 */
export interface SystemRouteDeps {
  databases: DatabaseGuard;
  lifecycle: DatabaseLifecycle;
  mcpSwitch: PerDatabase<Pick<McpSwitch, 'isRunning'>>;
  audit: PerDatabase<Pick<Audit, 'append'>>;
  sessions: Pick<SessionStore, 'issue' | 'destroy' | 'dropDatabase'>;
  clock: Clock;
  /** Where the data lives, as the gateway resolved it. */
  dataDir: string;
  version: string;
}

/** Status, setup (create), import, unlock/lock, password change, export, logout. */
export function systemRoutes(deps: SystemRouteDeps) {
  const { databases, lifecycle, sessions, version } = deps;
  const app = new Hono<HttpEnv>();

  app.get('/status', async (c) => {
    const session = c.get('session');
    const listed = await lifecycle.list();
    const first = defaultDatabase(listed);
    return c.json({
      name: 'AIPermission',
      version,
      // Operator commands learn where the data lives from here, not from their own defaults.
      dataDir: deps.dataDir,
      locked: !databases.anyUnlocked(),
      databases: listed.map((d) => ({
        name: d.name,
        unlocked: d.unlocked,
        default: d.name === first,
        // The global stop's state, readable without a password: it only ever tells whether agents can run.
        mcpRunning: d.unlocked ? deps.mcpSwitch(d.name).isRunning() : false,
        sizeBytes: d.sizeBytes,
        createdAt: d.createdAt,
        modifiedAt: d.modifiedAt,
        hasSafetyCopy: d.hasSafetyCopy,
        rollbackWarning: lifecycle.rollbackWarning(d.name) ?? null,
      })),
      // Whether a same-user process could debug or read this one (aip doctor shows it).
      process: (({ dumpable, sigusr1Ignored, inspectorOpen }) => ({ pid: process.pid, dumpable, sigusr1Ignored, inspectorOpen }))(hardeningState()),
      session: session ? { id: session.id, client: session.client, databases: [...session.databases].filter((name) => databases.isUnlocked(name)) } : null,
    });
  });

  /** Starts (or widens) this client's session and audits it in the database it proved (invariant 8: a session never appears unannounced). */
  const openSession = async (c: HttpContext, name: string, client: 'ui' | 'cli', via: 'created' | 'unlocked' | 'proved') => {
    const session = sessions.issue(name, client, c.get('session'));
    const entry = { actor: actorOf(session), event: 'session.started', subject: { database: name, sessionId: session.id }, payload: { client, via, sessionId: session.id, databases: [...session.databases] } };
    try {
      await deps.audit(name).append(entry);
    } catch (error) {
      // The password was proven; on a full disk the operator must still be able to read (audit search, history, status).
      // The session is issued read-only and its start recorded as soon as the disk takes writes again.
      if (!storageRefusal(error)) {
        sessions.destroy(session);
        throw error;
      }
      recordLate(name, session, { ...entry, payload: { ...entry.payload, startedAt: isoAt(deps.clock.now()), recordedLate: true } });
    }
    setSessionCookies(c, session.secret, session.csrf);
    return session;
  };

  /** Writes a session's start once the disk lets it; until then the session only reads (boundary.ts). */
  const recordLate = (name: string, session: Session, entry: Parameters<Audit['append']>[0]) => {
    const key = `${name}:${session.id}`;
    session.unrecorded.add(key);
    const attempt = () => {
      let audit: Pick<Audit, 'append'>;
      try {
        audit = deps.audit(name);
      } catch {
        // Locked meanwhile: the session lost this database, nothing is left to record for it.
        session.unrecorded.delete(key);
        return;
      }
      audit.append(entry).then(
        () => session.unrecorded.delete(key),
        () => setTimeout(attempt, LATE_SESSION_RETRY_MS).unref(),
      );
    };
    setTimeout(attempt, LATE_SESSION_RETRY_MS).unref();
  };

  /**
   * Once any database exists, adding another (create or import) needs an
   * operator session: the first-run setup is open only while there is none,
   * so an agent cannot plant a database of its own in the operator's gateway.
   */
  const requireSessionToAdd = async (c: HttpContext) => {
    if ((await lifecycle.list()).length === 0) return;
    const session = c.get('session');
    if (!session || ![...session.databases].some((name) => databases.isUnlocked(name))) {
      throw new KernelError(
        'not_authenticated',
        'A database already exists, so adding another needs an operator session: unlock or prove the password of an existing database first (aip db create does this for you).',
        { status: 401 },
      );
    }
  };

  // First-run setup, or another workspace: create, unlock, and start a session.
  app.post('/databases', async (c) => {
    await requireSessionToAdd(c);
    const body = await readBody(c, createBody);
    await lifecycle.create(body.name, body.password);
    const client = body.client ?? 'ui';
    await lifecycle.unlock(body.name, body.password, `operator:${client}`);
    const session = await openSession(c, body.name, client, 'created');
    return c.json(
      { database: { name: body.name, unlocked: true, mcpRunning: deps.mcpSwitch(body.name).isRunning() }, session: { id: session.id }, csrfToken: session.csrf },
      201,
    );
  });

  app.post('/databases/import', async (c) => {
    // Before the body is read: an agent must not make the gateway buffer 64 MiB uploads it may not make.
    await requireSessionToAdd(c);
    const body = await readBody(c, importBody);
    const name = body.name ?? databaseNameFromFile(body.fileName ?? 'imported.aipdb');
    const data = Buffer.from(body.data, 'base64');
    if (data.length === 0) throw new KernelError('invalid_input', 'data must be the .aipdb file, base64-encoded.', { status: 400 });
    const dir = await mkdtemp(join(tmpdir(), 'aip-import-'));
    try {
      const file = join(dir, 'upload.aipdb');
      await writeFile(file, data, { mode: 0o600 });
      const info = await lifecycle.importFrom(file, body.password, name);
      return c.json({ database: { name: info.name, unlocked: false, sizeBytes: info.sizeBytes } }, 201);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  app.post('/databases/:db/unlock', async (c) => {
    const name = databaseNameOf(c);
    const body = await readBody(c, unlockBody);
    const client = body.client ?? 'ui';
    await lifecycle.unlock(name, body.password, `operator:${client}`);
    const session = await openSession(c, name, client, 'unlocked');
    return c.json({
      database: { name, unlocked: true, mcpRunning: deps.mcpSwitch(name).isRunning(), rollbackWarning: lifecycle.rollbackWarning(name) ?? null },
      session: { id: session.id },
      csrfToken: session.csrf,
    });
  });

  // Prove the password of an already unlocked database (the CLI does this per command); never unlocks.
  app.post('/databases/:db/session', async (c) => {
    const name = databaseNameOf(c);
    const body = await readBody(c, unlockBody);
    const client = body.client ?? 'cli';
    if (!databases.isUnlocked(name)) {
      await databaseFor(c, databases); // 404 or 423 with the usual message
    }
    await lifecycle.provePassword(name, body.password, `operator:${client}`);
    const session = await openSession(c, name, client, 'proved');
    return c.json({ database: { name, unlocked: true, mcpRunning: deps.mcpSwitch(name).isRunning() }, session: { id: session.id }, csrfToken: session.csrf });
  });

  // Stopping never needs the password (invariant 8 keeps what starts things;
  // an agent that guesses passwords wrong must not keep the operator from
  // stopping it). With a session the entry names it; without one it says so.
  app.post('/databases/:db/lock', async (c) => {
    const { name, actor } = await unlockedDatabase(c, databases);
    await readBody(c, bodySchema({}));
    await lifecycle.lock(name, actor);
    return c.json({ database: { name, unlocked: false } });
  });

  app.post('/lock', async (c) => {
    await readBody(c, bodySchema({}));
    const session = c.get('session');
    const names = lifecycle.unlockedNames();
    for (const name of names) await lifecycle.lock(name, session?.databases.has(name) ? actorOf(session) : NO_SESSION_ACTOR);
    return c.json({ locked: names });
  });

  app.post('/databases/:db/password', async (c) => {
    const { name, session, actor } = await databaseFor(c, databases);
    const body = await readBody(c, passwordBody);
    assertPasswordRules(body.newPassword);
    // Proven through the password gate, on the audit record, then made (invariant 6: no audit, no action).
    await lifecycle.changePassword(name, body.currentPassword, body.newPassword, actor);
    // Everyone else proved the old password; they prove the new one.
    sessions.dropDatabase(name, session);
    return c.json({ database: { name }, changed: true });
  });

  app.post('/databases/:db/export', async (c) => {
    const { name, actor } = await databaseFor(c, databases);
    const body = await readBody(c, exportBody);
    const dir = await mkdtemp(join(tmpdir(), 'aip-export-'));
    try {
      const file = join(dir, `${name}.aipdb`);
      // Proven through the password gate like every other check (no unthrottled way to test a guess), recorded, then written.
      await lifecycle.exportTo(name, file, body.password, actor);
      const bytes = await readFile(file);
      const stamp = new Date(deps.clock.now()).toISOString().slice(0, 10);
      return c.body(bytes, 200, {
        'Content-Type': 'application/octet-stream',
        'Content-Disposition': `attachment; filename="${name}-${stamp}.aipdb"`,
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  app.post('/session/logout', async (c) => {
    const session = requireSession(c, databases);
    sessions.destroy(session);
    deleteCookie(c, SESSION_COOKIE, { path: '/' });
    deleteCookie(c, CSRF_COOKIE, { path: '/' });
    return c.json({ loggedOut: true, actor: actorOf(session) });
  });

  return app;
}
