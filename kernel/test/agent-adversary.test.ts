import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createKernel, type Kernel } from '../src/kernel.js';
import { createStaticCatalog, defineStaticConnector } from '../src/connectors/index.js';
import { startGateway } from '../src/main.js';
import { createStderrLogger } from '../src/lib/log.js';
import { createFakeExecutor, fakeConnectorDefinition } from './helpers/kernel.js';
import { tempDir, PASSWORD, OTHER_PASSWORD } from './helpers/temp.js';
import { httpApp, TestClient, jsonOf } from './helpers/http.js';
import type { Hono } from 'hono';

/**
 * Invariant 8 from the agent's side of the keyboard: an agent with a shell
 * as the same user and its MCP token, against the REST API. Each test is an
 * attack that got through once.
 */

let kernel: Kernel;
let app: Hono<never>;
let dir: string;
let cleanup: () => Promise<void>;

function makeKernel(passwordGate?: { spacingMs: number }) {
  return createKernel({
    dataDir: dir,
    catalog: createStaticCatalog([defineStaticConnector(fakeConnectorDefinition())]),
    executor: createFakeExecutor(),
    log: () => undefined,
    ...(passwordGate ? { passwordGate } : {}),
  });
}

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('aip-adversary-'));
  kernel = makeKernel();
  ({ app } = httpApp(kernel));
});
afterEach(async () => {
  await kernel.close();
  await cleanup();
});

async function operator(): Promise<TestClient> {
  const client = new TestClient(app);
  await client.get('/api/status');
  await client.json('POST', '/api/databases', { name: 'main', password: PASSWORD, client: 'cli' }, 201);
  return client;
}

/** The agent: a local client with no session, its own cookies. */
async function agent(): Promise<TestClient> {
  const client = new TestClient(app);
  await client.get('/api/status');
  return client;
}

async function auditEvents(client: TestClient, event: string) {
  const { entries } = await client.json<{ entries: Array<{ actor: string; event: string; subject: Record<string, string>; payload: Record<string, unknown> }> }>(
    'GET',
    `/api/databases/main/audit?event=${event}`,
  );
  return entries;
}

describe('password spraying cannot lock the operator out', () => {
  it('accepts the correct password right after five wrong guesses', async () => {
    await operator();
    const guesser = await agent();
    for (let i = 0; i < 5; i += 1) expect((await guesser.post('/api/databases/main/session', { password: `Wrong-Guess-${i}-xxxxx` })).status).toBe(401);
    const me = await agent();
    expect((await me.post('/api/databases/main/session', { password: PASSWORD, client: 'cli' })).status).toBe(200);
  });

  it('paces guesses after the free failures instead of refusing them', async () => {
    await operator();
    const guesser = await agent();
    for (let i = 0; i < 5; i += 1) expect((await guesser.post('/api/databases/main/session', { password: `Wrong-Guess-${i}-xxxxx` })).status).toBe(401);
    const started = Date.now();
    for (let i = 0; i < 2; i += 1) expect((await guesser.post('/api/databases/main/session', { password: `Wrong-Again-${i}-xxxxx` })).status).toBe(401);
    // One check a second once the free failures are used up (PASSWORD_GATE_DEFAULTS).
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_500);
  });

  it('lets the correct password through a flood of concurrent wrong guesses, in its turn', async () => {
    await kernel.close();
    kernel = makeKernel({ spacingMs: 50 });
    ({ app } = httpApp(kernel));
    await operator();
    const guesser = await agent();
    const flood = Array.from({ length: 20 }, (_, i) => guesser.post('/api/databases/main/session', { password: `Flood-Guess-${i}-xxxxxx` }));
    const me = await agent();
    const mine = me.post('/api/databases/main/session', { password: PASSWORD, client: 'cli' });
    const statuses = await Promise.all(flood.map(async (r) => (await r).status));
    expect(statuses.every((status) => status === 401)).toBe(true);
    expect((await mine).status).toBe(200);
  });

  it('unlocks a locked database with the correct password after guesses against it', async () => {
    const op = await operator();
    expect((await op.post('/api/databases/main/lock')).status).toBe(200);
    const guesser = await agent();
    for (let i = 0; i < 6; i += 1) expect((await guesser.post('/api/databases/main/unlock', { password: `Wrong-Guess-${i}-xxxxx` })).status).toBe(401);
    expect((await (await agent()).post('/api/databases/main/unlock', { password: PASSWORD })).status).toBe(200);
  });
});

describe('stopping never needs the password', () => {
  it('switches MCP off without a session, audited as unproven, and refuses to switch it on without one', async () => {
    const op = await operator();
    await op.json('PUT', '/api/databases/main/mcp', { running: true });
    const stranger = await agent();
    for (let i = 0; i < 5; i += 1) await stranger.post('/api/databases/main/session', { password: `Wrong-Guess-${i}-xxxxx` });
    expect(await stranger.json('PUT', '/api/databases/main/mcp', { running: false })).toEqual({ running: false });
    expect(kernel.workspace('main').mcp.isRunning()).toBe(false);
    const on = await stranger.put('/api/databases/main/mcp', { running: true });
    expect(on.status).toBe(401);
    expect(kernel.workspace('main').mcp.isRunning()).toBe(false);
    const [entry] = await auditEvents(op, 'mcp.stopped');
    expect(entry?.actor).toBe('local:no-session');
  });

  it('locks one database, or every database, without a session', async () => {
    const op = await operator();
    await op.json('POST', '/api/databases', { name: 'second', password: OTHER_PASSWORD }, 201);
    const stranger = await agent();
    expect(await stranger.json('POST', '/api/databases/second/lock', {})).toEqual({ database: { name: 'second', unlocked: false } });
    expect(kernel.isUnlocked('second')).toBe(false);
    await op.json('POST', '/api/databases/second/unlock', { password: OTHER_PASSWORD });
    expect(await stranger.json('POST', '/api/lock', {})).toEqual({ locked: ['main', 'second'] });
    expect(kernel.unlocked()).toHaveLength(0);
  });

  it('still needs CSRF for a stop (a page cannot do it)', async () => {
    await operator();
    const bare = new TestClient(app, { csrf: false });
    await bare.get('/api/status');
    expect((await bare.post('/api/lock', {})).status).toBe(403);
    expect(kernel.isUnlocked('main')).toBe(true);
  });
});

describe('the agent cannot plant a database of its own', () => {
  it('refuses to create or import a database without a session once one exists', async () => {
    await operator();
    const stranger = await agent();
    const created = await stranger.post('/api/databases', { name: 'mine', password: OTHER_PASSWORD });
    expect(created.status).toBe(401);
    expect((await jsonOf(created)).error.message).toMatch(/adding another needs an operator session/);
    const imported = await stranger.post('/api/databases/import', { name: 'mine', password: OTHER_PASSWORD, data: Buffer.from('x').toString('base64') });
    expect(imported.status).toBe(401);
    expect((await kernel.listDatabases()).map((d) => d.name)).toEqual(['main']);
  });

  it('lets the operator add one with the session of an existing database', async () => {
    const op = await operator();
    await op.json('POST', '/api/databases', { name: 'second', password: OTHER_PASSWORD }, 201);
    expect((await kernel.listDatabases()).map((d) => d.name)).toEqual(['main', 'second']);
  });

  it('marks the first database created as the default, whatever is unlocked', async () => {
    const op = await operator();
    await op.json('POST', '/api/databases', { name: 'aaa', password: OTHER_PASSWORD }, 201);
    await op.json('POST', '/api/databases/main/lock', {});
    const status = await (await agent()).json<{ databases: Array<{ name: string; default: boolean }>; dataDir: string }>('GET', '/api/status');
    expect(status.databases.filter((d) => d.default).map((d) => d.name)).toEqual(['main']);
    expect(status.dataDir).toBe(dir);
  });
});

describe('every session start is audited', () => {
  it('records session.started with the client and session id, for setup, unlock and each proof', async () => {
    const op = await operator();
    const other = await agent();
    const proved = await other.json<{ session: { id: string } }>('POST', '/api/databases/main/session', { password: PASSWORD, client: 'ui' });
    const entries = await auditEvents(op, 'session.started');
    expect(entries.map((e) => e.payload.via).sort()).toEqual(['created', 'proved']);
    const proof = entries.find((e) => e.payload.via === 'proved')!;
    expect(proof.actor).toBe(`operator:ui:${proved.session.id}`);
    expect(proof.subject.sessionId).toBe(proved.session.id);
    expect(proof.payload.client).toBe('ui');
  });
});

describe('rollback detection', () => {
  it('warns at unlock, and audits it, when the file is an older copy of itself', async () => {
    const op = await operator();
    await op.json('POST', '/api/databases/main/lock', {});
    const file = join(dir, 'databases', 'main.aipdb');
    const old = join(dir, 'old-copy.aipdb');
    await copyFile(file, old);
    await op.json('POST', '/api/databases/main/unlock', { password: PASSWORD });
    await op.json('POST', '/api/databases/main/tokens', { name: 'revoked-later' }, 201);
    await op.json('POST', '/api/databases/main/lock', {});
    // The agent puts the older file back (it needs no password for that).
    await copyFile(old, file);
    const unlocked = await op.json<{ database: { rollbackWarning: string | null } }>('POST', '/api/databases/main/unlock', { password: PASSWORD });
    expect(unlocked.database.rollbackWarning).toMatch(/older than the one last seen here/);
    const status = await op.json<{ databases: Array<{ rollbackWarning: string | null }> }>('GET', '/api/status');
    expect(status.databases[0]!.rollbackWarning).toMatch(/older copy/);
    expect(await auditEvents(op, 'database.rollback_suspected')).toHaveLength(1);
    // Seen and recorded: the next unlock of this file is quiet.
    await op.json('POST', '/api/databases/main/lock', {});
    const again = await op.json<{ database: { rollbackWarning: string | null } }>('POST', '/api/databases/main/unlock', { password: PASSWORD });
    expect(again.database.rollbackWarning).toBeNull();
  });

  it('says nothing for a database that only moved forward', async () => {
    const op = await operator();
    for (let i = 0; i < 2; i += 1) {
      await op.json('POST', '/api/databases/main/lock', {});
      const unlocked = await op.json<{ database: { rollbackWarning: string | null } }>('POST', '/api/databases/main/unlock', { password: PASSWORD });
      expect(unlocked.database.rollbackWarning).toBeNull();
    }
  });
});

describe('one gateway per data directory', () => {
  it('refuses a second gateway on the same data directory, naming the first one', async () => {
    const { dir: dataDir, cleanup: clean } = await tempDir('aip-twogw-');
    const first = await startGateway({ dataDir, port: 0, log: () => undefined, bwrap: 'off' });
    try {
      await expect(startGateway({ dataDir, port: 0, log: () => undefined, bwrap: 'off' })).rejects.toMatchObject({
        code: 'data_dir_in_use',
        message: expect.stringContaining(`pid ${process.pid}, ${first.url}`),
      });
    } finally {
      await first.close();
    }
    // Released on close: the next one starts.
    const next = await startGateway({ dataDir, port: 0, log: () => undefined, bwrap: 'off' });
    await next.close();
    await clean();
  });
});

describe('the log keeps the cause of an unexpected error', () => {
  it('writes the stack and the causes, redacted', () => {
    let written = '';
    const log = createStderrLogger((text) => (written += text));
    const cause = Object.assign(new Error('disk I/O error while writing postgres://app:hunter2-secret@db/x'), { code: 'SQLITE_IOERR' });
    log('unexpected error on GET /api/databases/main/audit', new Error('query failed', { cause }));
    expect(written).toMatch(/unexpected error on GET/);
    expect(written).toMatch(/Error: query failed\n\s+at /);
    expect(written).toMatch(/caused by: Error: disk I\/O error/);
    expect(written).toMatch(/SQLITE_IOERR/);
    expect(written).not.toMatch(/hunter2-secret/);
  });
});
