import { createInvocationScopes } from '../src/invocations/index.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { createKernel, type Kernel } from '../src/kernel.js';
import { createPluginHost } from '../src/plugin-host/index.js';
import { FIXTURES } from './helpers/plugins.js';
import { createStaticCatalog, defineStaticConnector } from '../src/connectors/index.js';
import { createFakeExecutor, fakeConnectorDefinition } from './helpers/kernel.js';
import { tempDir, PASSWORD, OTHER_PASSWORD } from './helpers/temp.js';
import { httpApp, TestClient, PORT, jsonOf } from './helpers/http.js';
import type { Hono } from 'hono';

let kernel: Kernel;
let app: Hono<never>;
let dir: string;
let cleanup: () => Promise<void>;
let executor: ReturnType<typeof createFakeExecutor>;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  executor = createFakeExecutor();
  kernel = createKernel({ dataDir: dir, catalog: createStaticCatalog([defineStaticConnector(fakeConnectorDefinition())]), executor, log: () => undefined });
  ({ app } = httpApp(kernel));
});
afterEach(async () => {
  await kernel.close();
  await cleanup();
});

/** A client with a set-up and unlocked database `main`. */
async function operator(): Promise<TestClient> {
  const client = new TestClient(app);
  await client.get('/api/status');
  await client.json('POST', '/api/databases', { name: 'main', password: PASSWORD }, 201);
  return client;
}

describe('loopback boundary', () => {
  it('rejects a non-loopback peer, and a request whose peer is unknown', async () => {
    const lan = new TestClient(app, { remoteAddress: '192.168.1.20' });
    const response = await lan.get('/api/status');
    expect(response.status).toBe(403);
    expect(await jsonOf(response)).toEqual({ error: { code: 'non_loopback_peer', message: expect.stringContaining('loopback') } });
    expect((await new TestClient(app, { remoteAddress: null }).get('/api/status')).status).toBe(403);
    expect((await new TestClient(app, { remoteAddress: '::ffff:127.0.0.1' }).get('/api/status')).status).toBe(200);
    expect((await new TestClient(app, { remoteAddress: '::1' }).get('/api/status')).status).toBe(200);
  });

  it('rejects a Host header that is not the gateway (DNS rebinding)', async () => {
    const client = new TestClient(app);
    for (const host of ['evil.example', `evil.example:${PORT}`, '127.0.0.1:9999', `192.168.1.20:${PORT}`, `127.0.0.1.evil.example:${PORT}`, `127.0.0.2:${PORT + 1}`]) {
      const response = await client.get('/api/status', { host });
      expect(response.status).toBe(403);
      expect((await jsonOf(response)).error.code).toBe('bad_host');
    }
    // Any loopback literal on the port: the gateway may bind 127.0.0.2.
    for (const host of [`localhost:${PORT}`, `[::1]:${PORT}`, `127.0.0.1:${PORT}`, `127.0.0.2:${PORT}`]) expect((await client.get('/api/status', { host })).status).toBe(200);
  });

  it('rejects a foreign Origin and cross-site fetches', async () => {
    const client = new TestClient(app);
    expect((await client.get('/api/status', { origin: 'https://evil.example' })).status).toBe(403);
    expect((await client.get('/api/status', { origin: 'null' })).status).toBe(403);
    expect((await client.get('/api/status', { origin: `http://localhost:${PORT}` })).status).toBe(200);
    expect((await client.get('/api/status', { 'sec-fetch-site': 'cross-site' })).status).toBe(403);
  });

  it('keeps the boundary in front of the OAuth paths MCP clients probe', async () => {
    for (const path of ['/.well-known/oauth-protected-resource', '/.well-known/oauth-authorization-server/mcp', '/register', '/token']) {
      expect((await new TestClient(app, { remoteAddress: '192.168.1.20' }).get(path)).status, path).toBe(403);
      expect((await new TestClient(app).get(path, { host: 'evil.example' })).status, path).toBe(403);
      expect((await new TestClient(app).get(path, { origin: 'https://evil.example' })).status, path).toBe(403);
    }
    const allowed = await new TestClient(app).get('/.well-known/openid-configuration');
    expect(allowed.status).toBe(404);
    expect(allowed.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await jsonOf(allowed)).toEqual({ error: 'oauth_not_supported', error_description: expect.stringMatching(/does not use OAuth/) });
  });

  it('sets security headers on every answer', async () => {
    const response = await new TestClient(app).get('/api/status');
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(response.headers.get('content-security-policy')).toContain("default-src 'none'");
  });
});

describe('session cookie and CSRF', () => {
  it('issues an HttpOnly SameSite=Strict session cookie and a readable CSRF cookie at setup', async () => {
    const client = new TestClient(app);
    await client.get('/api/status');
    const response = await client.post('/api/databases', { name: 'main', password: PASSWORD });
    expect(response.status).toBe(201);
    const session = client.lastSetCookies.find((line) => line.startsWith('aip_session='))!;
    expect(session).toMatch(/HttpOnly/);
    expect(session).toMatch(/SameSite=Strict/);
    expect(session).toMatch(/Path=\//);
    const csrf = client.lastSetCookies.find((line) => line.startsWith('aip_csrf='))!;
    expect(csrf).toMatch(/SameSite=Strict/);
    expect(csrf).not.toMatch(/HttpOnly/);
    expect((await jsonOf(response)).csrfToken).toBe(client.cookies.get('aip_csrf'));
  });

  it('refuses mutating requests without the CSRF header, or with a wrong one', async () => {
    const client = await operator();
    const noHeader = new TestClient(app, { csrf: false });
    noHeader.cookies = new Map(client.cookies);
    const response = await noHeader.post('/api/databases/main/tokens', { name: 'x' });
    expect(response.status).toBe(403);
    expect((await jsonOf(response)).error.code).toBe('csrf_failed');
    const wrong = await client.post('/api/databases/main/tokens', { name: 'x' }, { 'x-csrf-token': 'forged' });
    expect(wrong.status).toBe(403);
    // A CSRF value that matches its own cookie but not the session is refused too (cookie tossing).
    const tossed = new TestClient(app, { csrf: false });
    tossed.cookies = new Map(client.cookies);
    tossed.cookies.set('aip_csrf', 'attacker-chosen');
    expect((await tossed.post('/api/databases/main/tokens', { name: 'x' }, { 'x-csrf-token': 'attacker-chosen' })).status).toBe(403);
    expect((await client.post('/api/databases/main/tokens', { name: 'x' })).status).toBe(201);
  });

  it('needs a session proving the database password for every operator route', async () => {
    await operator();
    const stranger = new TestClient(app);
    await stranger.get('/api/status');
    const response = await stranger.get('/api/databases/main/targets');
    expect(response.status).toBe(401);
    expect((await jsonOf(response)).error.code).toBe('not_authenticated');
    // Changing a grant, running an approval or reading the audit: all need the proof.
    expect((await stranger.put('/api/databases/main/grants', { tokenId: 'tok_x', targetId: 'tgt_x', profileId: 'prf_x', action: '*', rule: 'always_run' })).status).toBe(401);
    expect((await stranger.post('/api/databases/main/requests/req_x/run', {})).status).toBe(401);
    expect((await stranger.get('/api/databases/main/audit')).status).toBe(401);
    expect((await stranger.put('/api/databases/main/mcp', { running: true })).status).toBe(401);
    const wrong = await stranger.post('/api/databases/main/unlock', { password: OTHER_PASSWORD });
    expect(wrong.status).toBe(401);
    expect((await jsonOf(wrong)).error.code).toBe('wrong_password');
    expect((await stranger.post('/api/databases/main/unlock', { password: PASSWORD })).status).toBe(200);
    expect((await stranger.get('/api/databases/main/targets')).status).toBe(200);
  });

  it('rate-limits wrong passwords by queueing them, never by refusing the correct one', async () => {
    await operator();
    const guesser = new TestClient(app);
    await guesser.get('/api/status');
    for (let i = 0; i < 5; i += 1) expect((await guesser.post('/api/databases/main/session', { password: `Wrong-Guess-${i}-xxxxx` })).status).toBe(401);
    const started = Date.now();
    expect((await guesser.post('/api/databases/main/session', { password: 'Wrong-Guess-5-xxxxx' })).status).toBe(401);
    expect((await guesser.post('/api/databases/main/session', { password: PASSWORD })).status).toBe(200);
    // The sixth guess and the check after it wait their turn (one a second): guessing is slowed, nobody is shut out.
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it('ends the session on logout', async () => {
    const client = await operator();
    expect((await client.post('/api/session/logout')).status).toBe(200);
    expect((await client.get('/api/databases/main/targets')).status).toBe(401);
  });
});

describe('locked state', () => {
  it('answers only status, unlock, setup and import while locked (423 otherwise)', async () => {
    const client = await operator();
    expect((await client.post('/api/databases/main/lock')).status).toBe(200);
    for (const [method, path] of [
      ['GET', '/api/databases/main/targets'],
      ['GET', '/api/databases/main/audit'],
      ['POST', '/api/databases/main/tokens'],
      ['GET', '/api/events'],
      ['POST', '/api/session/logout'],
    ] as const) {
      const response = await client.request(method, path, method === 'POST' ? {} : undefined);
      expect([method, path, response.status]).toEqual([method, path, 423]);
    }
    expect((await client.get('/api/status')).status).toBe(200);
    expect((await client.json('GET', '/api/status')).locked).toBe(true);
    expect((await client.post('/api/databases/main/unlock', { password: PASSWORD })).status).toBe(200);
    expect((await client.get('/api/databases/main/targets')).status).toBe(200);
  });

  it('says which database does not exist', async () => {
    const client = await operator();
    const response = await client.get('/api/databases/nope/targets');
    expect(response.status).toBe(404);
    expect((await jsonOf(response)).error.message).toContain('"nope"');
  });
});

describe('input handling', () => {
  it('gives a clear 400 for a body that is not JSON', async () => {
    const client = await operator();
    const response = await client.post('/api/databases/main/tokens', '{"name": ');
    expect(response.status).toBe(400);
    const body = await jsonOf(response);
    expect(body.error.code).toBe('invalid_json');
    expect(body.error.message).toMatch(/not valid JSON/);
    expect(JSON.stringify(body)).not.toMatch(/at .*\.ts:\d+/);
  });

  it('rejects unknown fields and names them', async () => {
    const client = await operator();
    const response = await client.post('/api/databases/main/tokens', { name: 'x', admin: true });
    expect(response.status).toBe(400);
    expect((await jsonOf(response)).error).toEqual({ code: 'invalid_input', message: expect.stringContaining('unknown field "admin"') });
    const settings = await client.patch('/api/databases/main/settings', { approvalTtlSeconds: 5 });
    expect(settings.status).toBe(400);
    expect((await jsonOf(settings)).error.message).toMatch(/approvalTtlSeconds/);
  });

  it('requires JSON and caps the body size', async () => {
    const client = await operator();
    const form = await client.post('/api/databases/main/tokens', 'name=x', { 'content-type': 'application/x-www-form-urlencoded' });
    expect(form.status).toBe(415);
    const huge = await client.post('/api/databases/main/tokens', { name: 'x'.repeat(300 * 1024) });
    expect(huge.status).toBe(413);
    expect((await jsonOf(huge)).error.code).toBe('body_too_large');
  });

  it('rejects unknown query parameters and bad values', async () => {
    const client = await operator();
    expect((await client.get('/api/databases/main/requests?stauts=completed')).status).toBe(400);
    expect((await client.get('/api/databases/main/requests?status=done')).status).toBe(400);
    expect((await client.get('/api/databases/main/audit?limit=abc')).status).toBe(400);
  });

  it('pages the audit and the history with cursor/nextCursor and filters them by since/until, keeping before/nextBefore', async () => {
    const client = await operator();
    for (let i = 0; i < 12; i += 1) await client.json('POST', '/api/databases/main/tokens', { name: `agent-${i}` }, 201);
    const first = await client.json('GET', '/api/databases/main/audit?event=token.created&limit=5');
    expect(first.entries).toHaveLength(5);
    expect(typeof first.nextCursor).toBe('string');
    expect(first.nextBefore).toBe(first.entries[4].seq);
    const second = await client.json('GET', `/api/databases/main/audit?event=token.created&limit=5&cursor=${first.nextCursor}`);
    expect(second.entries[0].seq).toBeLessThan(first.entries[4].seq);
    expect((await client.json('GET', `/api/databases/main/audit?event=token.created&limit=5&before=${first.nextBefore}`)).entries).toEqual(second.entries);
    const third = await client.json('GET', `/api/databases/main/audit?event=token.created&limit=5&cursor=${second.nextCursor}`);
    expect(third.entries).toHaveLength(2);
    expect(third.nextCursor).toBeNull();
    // A cursor of another listing, a forged one, both paging styles at once, a time that is not one: each refused with what to do.
    const history = await client.get(`/api/databases/main/requests?cursor=${first.nextCursor}`);
    expect(history.status).toBe(400);
    expect((await jsonOf(history)).error.message).toMatch(/nextCursor of the previous page/);
    expect((await client.get('/api/databases/main/audit?cursor=bm9wZQ')).status).toBe(400);
    expect((await client.get(`/api/databases/main/audit?cursor=${first.nextCursor}&before=3`)).status).toBe(400);
    const badTime = await client.get('/api/databases/main/audit?since=yesterday');
    expect(badTime.status).toBe(400);
    expect((await jsonOf(badTime)).error.message).toMatch(/ISO-8601/);
    const future = new Date(Date.now() + 86_400_000).toISOString();
    expect((await client.json('GET', `/api/databases/main/audit?since=${future}`)).entries).toEqual([]);
    expect((await client.json('GET', `/api/databases/main/audit?until=${future}&event=token.created`)).entries).toHaveLength(12);
    expect((await client.json('GET', `/api/databases/main/requests?since=${future}&action=echo`)).requests).toEqual([]);
    expect((await client.json('GET', '/api/databases/main/requests?until=2020-01-01')).nextCursor).toBeNull();
  });

  it('answers unknown routes with the JSON error shape', async () => {
    const response = await new TestClient(app).get('/api/nothing-here');
    expect(response.status).toBe(404);
    expect(await jsonOf(response)).toEqual({ error: { code: 'not_found', message: expect.any(String) } });
  });
});

describe('operator REST flows', () => {
  it('configures a target, profile, token and grant; approves a request with a note; searches and verifies the audit', async () => {
    const client = await operator();
    const { target } = await client.json('POST', '/api/databases/main/targets', { kind: 'fake', name: 'prod-db', config: { host: 'db1' } }, 201);
    const { profile } = await client.json('POST', `/api/databases/main/targets/${target.id}/profiles`, { label: 'ops', credentialKind: 'password', config: { username: 'app' }, secret: { password: 'Very-Secret-999' } }, 201);
    expect(profile.secretFields).toEqual(['password']);
    expect(JSON.stringify(await client.json('GET', '/api/databases/main/targets'))).not.toContain('Very-Secret-999');
    const invalid = await client.post(`/api/databases/main/targets/${target.id}/profiles`, { label: 'bad', credentialKind: 'password', secret: { pasword: 'typo' } });
    expect((await jsonOf(invalid)).error.message).toMatch(/unknown field "pasword"/);

    const created = await client.json('POST', '/api/databases/main/tokens', { name: 'agent', expiresIn: '1d' }, 201);
    expect(created.secret).toMatch(/^aip_/);
    expect(JSON.stringify(await client.json('GET', '/api/databases/main/tokens'))).not.toContain(created.secret);
    await client.json('PUT', '/api/databases/main/grants', { tokenId: created.token.id, targetId: target.id, profileId: profile.id, action: 'write_thing', rule: 'approval_required', expiresIn: '4h' });
    await client.json('PUT', '/api/databases/main/mcp', { running: true });

    const outcome = await kernel.pipeline.call(kernel.authenticateToken(created.secret), { targetRef: `fake:${target.id}:${profile.id}`, action: 'write_thing', input: { value: 'deploy' }, reason: 'ship it' });
    if (outcome.kind !== 'request') throw new Error();
    const pending = await client.json('GET', '/api/databases/main/requests?status=approval_pending');
    expect(pending.requests.map((r: { id: string }) => r.id)).toEqual([outcome.request.id]);
    const { request } = await client.json('POST', `/api/databases/main/requests/${outcome.request.id}/run`, { note: 'approved, go' });
    expect(request.status).toBe('completed');
    expect(request.output).toEqual({ written: 'deploy' });
    const messages = await client.json('GET', '/api/databases/main/messages?direction=to_agent');
    expect(messages.messages[0].body).toBe('approved, go');

    const search = await client.json('GET', '/api/databases/main/audit?q=deploy');
    expect(search.entries.length).toBeGreaterThan(0);
    const history = await client.json('GET', '/api/databases/main/requests?q=ship');
    expect(history.requests).toHaveLength(1);
    const { report } = await client.json('POST', '/api/databases/main/audit/verify');
    expect(report.ok).toBe(true);
  });

  it('declines with a note', async () => {
    const client = await operator();
    const ws = kernel.workspace('main');
    const target = await ws.targets.createTarget({ kind: 'fake', name: 't', config: {} }, 'test');
    const profile = await ws.targets.createProfile(target.id, { label: 'p', credentialKind: 'password', secret: {} }, 'test');
    const token = await ws.tokens.create({ name: 'a' }, 'test');
    await ws.grants.set({ tokenId: token.token.id, targetId: target.id, profileId: profile.id, action: '*', rule: 'approval_required' }, 'test');
    await ws.mcp.set(true, 'test');
    const outcome = await kernel.pipeline.call(kernel.authenticateToken(token.secret), { targetRef: `fake:${target.id}:${profile.id}`, action: 'write_thing', input: { value: 'x' } });
    if (outcome.kind !== 'request') throw new Error();
    const { request } = await client.json('POST', `/api/databases/main/requests/${outcome.request.id}/decline`, { note: 'use staging first' });
    expect(request.status).toBe('declined');
    expect(request.operatorNote).toBe('use staging first');
    const again = await client.post(`/api/databases/main/requests/${outcome.request.id}/run`, {});
    expect(again.status).toBe(409);
  });

  it('exports and imports a database through the API', async () => {
    const client = await operator();
    await client.json('POST', '/api/databases/main/tokens', { name: 'keep-me' }, 201);
    const response = await client.post('/api/databases/main/export', { password: PASSWORD });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-disposition')).toMatch(/attachment; filename="main-.*\.aipdb"/);
    const bytes = Buffer.from(await response.arrayBuffer());
    expect(bytes.subarray(0, 6).toString()).not.toBe('SQLite');
    const imported = await client.json('POST', '/api/databases/import', { name: 'copy', password: PASSWORD, data: bytes.toString('base64') }, 201);
    expect(imported.database).toMatchObject({ name: 'copy', unlocked: false });
    const clash = await client.post('/api/databases/import', { name: 'copy', password: PASSWORD, data: bytes.toString('base64') });
    expect(clash.status).toBe(409);
    await client.json('POST', '/api/databases/copy/unlock', { password: PASSWORD });
    const tokens = await client.json('GET', '/api/databases/copy/tokens');
    expect(tokens.tokens.map((t: { name: string }) => t.name)).toEqual(['keep-me']);
    const plaintext = await client.post('/api/databases/import', { name: 'plain', password: PASSWORD, data: Buffer.from('SQLite format 3\u0000' + 'x'.repeat(200)).toString('base64') });
    expect(plaintext.status).toBe(400);
    expect((await jsonOf(plaintext)).error.code).toBe('plaintext_database');
  });

  it('changes the password and makes other sessions prove the new one', async () => {
    const client = await operator();
    const other = new TestClient(app);
    await other.get('/api/status');
    await other.json('POST', '/api/databases/main/unlock', { password: PASSWORD });
    await client.json('POST', '/api/databases/main/password', { currentPassword: PASSWORD, newPassword: OTHER_PASSWORD });
    expect((await client.get('/api/databases/main/targets')).status).toBe(200);
    expect((await other.get('/api/databases/main/targets')).status).toBe(401);
    expect((await other.post('/api/databases/main/session', { password: PASSWORD })).status).toBe(401);
    expect((await other.post('/api/databases/main/session', { password: OTHER_PASSWORD })).status).toBe(200);
    const weak = await client.post('/api/databases/main/password', { currentPassword: OTHER_PASSWORD, newPassword: 'short' });
    expect((await jsonOf(weak)).error.code).toBe('weak_password');
  });

  it('changes no password it could not put on the record first (no audit, no action)', async () => {
    const client = await operator();
    await kernel.workspace('main').db.exec(`CREATE TRIGGER audit_fails BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END;`);
    const refused = await client.post('/api/databases/main/password', { currentPassword: PASSWORD, newPassword: OTHER_PASSWORD });
    expect(refused.status).toBeGreaterThanOrEqual(500);
    await kernel.workspace('main').db.exec('DROP TRIGGER audit_fails');
    // The old password still opens the file; the new one does not.
    expect(await kernel.vault.verifyPassword('main', PASSWORD)).toBe(true);
    expect(await kernel.vault.verifyPassword('main', OTHER_PASSWORD)).toBe(false);
    await client.json('POST', '/api/databases/main/password', { currentPassword: PASSWORD, newPassword: OTHER_PASSWORD });
    const events = (await client.json('GET', '/api/databases/main/audit?limit=5')).entries.map((e: { event: string }) => e.event);
    expect(events.indexOf('database.password_changing')).toBeGreaterThan(events.indexOf('database.password_changed'));
  });

  it('manages settings, redaction rules and the MCP switch, all audited', async () => {
    const client = await operator();
    expect((await client.json('GET', '/api/databases/main/settings')).settings.approvalTtlSeconds).toBe(900);
    await client.json('PATCH', '/api/databases/main/settings', { approvalTtlSeconds: 600, mcpAutostart: true });
    const { rule } = await client.json('POST', '/api/databases/main/redaction-rules', { name: 'emp', pattern: 'EMP-\\d+' }, 201);
    const bad = await client.post('/api/databases/main/redaction-rules', { name: 'bad', pattern: '(' });
    expect((await jsonOf(bad)).error.code).toBe('invalid_redaction_rule');
    await client.json('DELETE', `/api/databases/main/redaction-rules/${rule.id}`);
    expect((await client.json('PUT', '/api/databases/main/mcp', { running: true })).running).toBe(true);
    const events = (await client.json('GET', '/api/databases/main/audit?limit=20')).entries.map((e: { event: string }) => e.event);
    expect(events).toEqual(expect.arrayContaining(['settings.updated', 'redaction_rule.created', 'redaction_rule.deleted', 'mcp.started']));
    const file = await readFile(kernel.vault.fileFor('main'));
    expect(file.includes(Buffer.from('EMP-'))).toBe(false);
  });

  it('lists the connector catalog', async () => {
    const client = await operator();
    const { connectors } = await client.json('GET', '/api/databases/main/connectors');
    expect(connectors[0]).toMatchObject({ id: 'fake', version: '1.0.0' });
    expect(connectors[0].actions.map((a: { name: string }) => a.name)).toContain('echo');
  });
});

/** Every file under a folder, relative to it. */
async function filesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(root, join(e.parentPath, e.name))).sort();
}

describe('ids in paths (traversal)', () => {
  /** A kernel with a real plugin host, its data directory in a parent folder of its own, and an operator client. */
  async function withPluginGateway(run: (g: { client: TestClient; dataDir: string; parent: string }) => Promise<void>) {
    const { dir: parent, cleanup: cleanupParent } = await tempDir('aip-traversal-');
    try {
      const dataDir = join(parent, 'data');
      const scopes = createInvocationScopes();
      const plugins = await createPluginHost({ dataDir, scopes, clock: { now: () => Date.now() }, log: () => undefined, kernelInfo: { name: 't', version: '0' }, builtinRoot: FIXTURES, builtins: ['echo'] });
      const local = createKernel({ dataDir, plugins, scopes, log: () => undefined });
      try {
        const client = new TestClient(httpApp(local).app);
        await client.get('/api/status');
        await client.json('POST', '/api/databases', { name: 'main', password: PASSWORD }, 201);
        await run({ client, dataDir, parent });
      } finally {
        await local.close();
      }
    } finally {
      await cleanupParent();
    }
  }

  it('answers every route that takes an id with a 4xx for traversal payloads, and nothing outside (or inside) the data directory is touched', async () => {
    await withPluginGateway(async ({ client, dataDir, parent }) => {
      // The data directory sits in a parent folder next to a sentinel folder and
      // a sentinel "database": what `../../<sentinel>` from plugins/<id>,
      // plugin-scratch/<id> or databases/<name>.aipdb would reach.
      const sentinel = join(parent, 'sentinel');
      await mkdir(sentinel);
      await writeFile(join(sentinel, 'keep.txt'), 'must survive');
      await writeFile(`${sentinel}.aipdb`, 'must survive too');
      await mkdir(join(dataDir, 'plugins', 'keep-me', '1.0.0'), { recursive: true });
      await writeFile(join(dataDir, 'plugins', 'keep-me', '1.0.0', 'plugin.mjs'), '// an installed plugin that must stay');
      const before = await filesUnder(dataDir);
      expect(before).toEqual(expect.arrayContaining(['databases/main.aipdb', 'plugins/keep-me/1.0.0/plugin.mjs']));

      const name = basename(sentinel);
      // Path segments as they appear in the URL (already percent-encoded where needed).
      // Every payload aims at this test's own sentinels, however deep it climbs:
      // when this test first ran against the unfixed route, a payload that
      // climbed to /etc deleted the machine's /etc. A regression must only
      // ever cost a temporary folder.
      const toRoot = '..%2f'.repeat(dataDir.split('/').length + 4);
      const payloads = [
        '..',
        '.',
        '%2e%2e',
        '%2E%2E',
        '.%2e',
        `..%2f..%2f${name}`,
        `%2e%2e%2f%2e%2e%2f${name}`,
        '%2e%2e%2f',
        `..%5c..%5c${name}`,
        `..\\..\\${name}`,
        `..%252f..%252f${name}`,
        '..%2fdatabases',
        `${toRoot}${encodeURIComponent(sentinel.slice(1)).replace(/%2F/g, '%2f')}`,
        encodeURIComponent(sentinel),
        encodeURIComponent(dataDir),
        encodeURIComponent(join(sentinel, 'keep.txt')),
        '%00',
        'echo-fixture%00',
        `%00..%2f..%2f${name}`,
        'x'.repeat(5000),
        encodeURIComponent(`\u2025/\u2025/${name}`),
        encodeURIComponent(`\uff0e\uff0e/\uff0e\uff0e/${name}`),
        `%c0%ae%c0%ae%2f%c0%ae%c0%ae%2f${name}`,
        encodeURIComponent('\u202e..'),
      ];
      const valid: Record<string, string> = { db: 'main', id: 'echo-fixture' };
      const bodies: Record<string, unknown> = { unlock: { password: PASSWORD }, session: { password: PASSWORD }, check: { profileId: 'prf_x' } };
      const registered = (client.app as unknown as { routes: Array<{ method: string; path: string }> }).routes;
      const routes = [...new Map(registered.filter((r) => r.method !== 'ALL' && r.path.includes('/:')).map((r) => [`${r.method} ${r.path}`, r])).values()];
      // The walker sees the routes (a new one is covered without editing this test).
      expect(routes.map((r) => `${r.method} ${r.path}`)).toEqual(expect.arrayContaining(['DELETE /api/databases/:db/plugins/:id', 'POST /api/databases/:db/unlock', 'GET /api/databases/:db/requests/:id']));
      const failures: string[] = [];
      for (const route of routes) {
        const params = [...route.path.matchAll(/:(\w+)/g)].map((m) => m[1]!);
        // Each parameter alone, then all of them at once.
        const choices = [...params.map((p) => [p]), params];
        for (const attacked of choices) {
          for (const payload of payloads) {
            const path = route.path.replace(/:(\w+)/g, (_, p: string) => (attacked.includes(p) ? payload : valid[p]!));
            // A bare `..` or `.` segment is resolved by URL parsing, in the client and in the
            // server alike, before any route sees it (/api/databases/../lock is /api/lock):
            // such a payload cannot reach this route, and sending it would run another one.
            if (new URL(`http://gateway${path}`).pathname.split('/').length !== path.split('/').length) continue;
            const last = route.path.split('/').pop()!;
            const body = route.method === 'GET' || route.method === 'DELETE' ? undefined : (bodies[last] ?? {});
            const response = await client.request(route.method, path, body);
            if (response.status < 400 || response.status >= 500) failures.push(`${route.method} ${path.slice(0, 120)} -> ${response.status} ${(await response.text()).slice(0, 200)}`);
          }
        }
      }
      expect(failures).toEqual([]);
      expect(await readFile(join(sentinel, 'keep.txt'), 'utf8')).toBe('must survive');
      expect(await readFile(`${sentinel}.aipdb`, 'utf8')).toBe('must survive too');
      const after = await filesUnder(dataDir);
      expect(before.filter((file) => !after.includes(file))).toEqual([]);
      // The operator's session still works: nothing above locked or broke the database.
      expect((await client.get('/api/databases/main/targets')).status).toBe(200);
    });
  }, 120_000);

  it('says which value is not an id and what an id looks like, quoted safely', async () => {
    await withPluginGateway(async ({ client }) => {
      const plugin = await client.delete('/api/databases/main/plugins/..%2fx');
      expect(plugin.status).toBe(400);
      expect((await jsonOf(plugin)).error).toEqual({
        code: 'invalid_plugin_id',
        message: expect.stringMatching(/^"\.\.\/x" is not a plugin id: ids are 1-64 lowercase letters, digits and "-", starting with a letter/),
      });
      const database = await client.get('/api/databases/..%2fx/targets');
      expect(database.status).toBe(400);
      expect((await jsonOf(database)).error).toEqual({ code: 'invalid_database_name', message: expect.stringMatching(/^"\.\.\/x" is not a database name: names are 1-63 lowercase letters/) });
      const long = (await jsonOf(await client.delete(`/api/databases/main/plugins/${'a'.repeat(5000)}`))).error.message as string;
      expect(long.length).toBeLessThan(400);
      expect(long).toContain(`"${'a'.repeat(80)}… (4920 more characters)"`);
      // A reversed or hidden character is shown as its escape, never drawn.
      const bidi = (await jsonOf(await client.delete(`/api/databases/main/plugins/${encodeURIComponent('\u202eabc\u0000')}`))).error.message as string;
      expect(bidi).toContain('"\\u{202e}abc\\u{0}"');
      expect(bidi.includes('\u202e') || bidi.includes('\u0000')).toBe(false);
    });
  });
});
