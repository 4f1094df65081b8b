import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpApp } from '../src/http/index.js';
import { openSqlCipher } from '../src/vault/index.js';
import { aip } from './helpers/cli.js';
import { fillableDisk, type FillableDisk } from './helpers/disk.js';
import { callTool, mcpClient, operator, startGatewayProcess, type RunningGateway } from './helpers/mcp.js';
import { FIXTURES } from './helpers/plugins.js';
import { tempDir, PASSWORD, OTHER_PASSWORD } from './helpers/temp.js';
import { startSshd, type Sshd } from './helpers/sshd.js';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * Issue 16 items 4 and the tmpfs fault scenario: a real gateway process
 * whose data directory is a size-limited tmpfs that fills up. Every route
 * that writes answers with the real cause (disk full) and what to do, never
 * "Something went wrong"; reads keep working; nothing runs without its intent
 * entry; the first write after space comes back succeeds within a second.
 */

/** The gateway's routes, from the app itself: a route added later is in this list without anyone remembering it. */
function routeTable(): string[] {
  const noop: any = new Proxy(() => noop, { get: () => noop, apply: () => noop });
  const deps = new Proxy({}, { get: (_, key) => (key === 'onLocked' ? () => undefined : key === 'mcpEndpoint' ? () => ({ handle: noop }) : noop) });
  const { app } = createHttpApp({ deps: deps as never, getPort: () => 1, version: 'routes' });
  return [...new Set(app.routes.filter((r) => ['POST', 'PUT', 'PATCH', 'DELETE'].includes(r.method)).map((r) => `${r.method} ${r.path}`))].sort();
}

type Op = Awaited<ReturnType<typeof operator>>;
interface Answer {
  status: number;
  code: string | undefined;
  message: string | undefined;
}

let disk: FillableDisk;
let work: { dir: string; cleanup: () => Promise<void> };
let gw: RunningGateway;
/** A real sshd whose host key the SSH routes scan and approve. */
let sshd: Sshd | undefined;
let op: Op;
const direct = new Redis({ host: '127.0.0.1', port: 6379 });
const prefix = `aip:faults-disk:${process.pid}:`;

async function send(client: Op, method: string, path: string, body?: unknown): Promise<Answer> {
  const response = await client.raw(method, path, body);
  const text = await response.text();
  let parsed: { error?: { code?: string; message?: string } } = {};
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    // an export answers bytes
  }
  return { status: response.status, code: parsed.error?.code, message: parsed.error?.message };
}

beforeAll(async () => {
  disk = await fillableDisk(64);
  work = await tempDir('aip-faults-disk-');
  const created = await aip(['db', 'create', 'main', '--data-dir', disk.dir, '--password-stdin'], { stdin: `${PASSWORD}\n` });
  expect(created.code).toBe(0);
  gw = await startGatewayProcess(disk.dir);
  await aip(['unlock', '--url', gw.url, '--password-stdin'], { stdin: `${PASSWORD}\n` });
  op = await operator(gw.url);
  await op.call('PUT', op.db('/mcp'), { running: true });
}, 60_000);

afterAll(async () => {
  await sshd?.stop();
  await disk?.free();
  await gw?.stop();
  const keys = await direct.keys(`${prefix}*`);
  if (keys.length) await direct.del(...keys);
  direct.disconnect();
  await disk?.cleanup();
  await work?.cleanup();
});

describe('a data directory on a size-limited tmpfs that fills up (issue 16 item 4, fault scenario)', () => {
  it('answers every write route with disk_full and what to do, keeps reads working, and takes writes again within a second of space coming back', async () => {
    if (disk.kind === 'unmountable') console.warn('tmpfs could not be mounted: this test needs root (CI runs as root)');
    expect(disk.kind, 'this machine must allow mounting a tmpfs (CI runs as root)').toBe('tmpfs');
    // ---- what the routes act on, made while there is space ----
    const target = async (name: string) => {
      const { target: t } = await op.call<{ target: { id: string } }>('POST', op.db('/targets'), { kind: 'redis', name, config: { host: '127.0.0.1', port: 6379 } });
      const { profile } = await op.call<{ profile: { id: string } }>('POST', op.db(`/targets/${t.id}/profiles`), { label: 'default', credentialKind: 'none' });
      return { id: t.id, profileId: profile.id, ref: `redis:${t.id}:${profile.id}` };
    };
    const cache = await target('cache');
    const doomed = await target('doomed');
    sshd = await startSshd({ extraAddresses: ['127.0.0.2'] });
    const { key: doomedKey } = await op.call<{ key: { id: string } }>('POST', op.db('/ssh/keys'), { name: 'doomed-key' });
    const { verdict: unknownHost } = await op.call<{ verdict: { approvalId: string } }>('POST', op.db('/ssh/hostkeys/scan'), { host: '127.0.0.1', port: sshd.port });
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(work.dir, 'id_import')]);
    const importable = readFileSync(join(work.dir, 'id_import'), 'utf8');
    const { profile: spare } = await op.call<{ profile: { id: string } }>('POST', op.db(`/targets/${cache.id}/profiles`), { label: 'spare', credentialKind: 'none' });
    const agent = await op.call<{ token: { id: string }; secret: string }>('POST', op.db('/tokens'), { name: 'agent' });
    const other = await op.call<{ token: { id: string } }>('POST', op.db('/tokens'), { name: 'other' });
    const grant = (action: string, rule: string, tokenId = agent.token.id, on = cache) =>
      op.call<{ grant: { id: string } }>('PUT', op.db('/grants'), { tokenId, targetId: on.id, profileId: on.profileId, action, rule });
    await grant('get_key', 'always_run');
    await grant('set_string', 'always_run');
    await grant('delete_keys', 'approval_required');
    const { grant: spareGrant } = await grant('info', 'always_run', other.token.id);
    const { rule } = await op.call<{ rule: { id: string } }>('POST', op.db('/redaction-rules'), { name: 'ticket', pattern: 'TCK-[0-9]+' });
    const mcp = await mcpClient('http', gw.url, agent.secret);
    const pending = async () => (await callTool(mcp, 'call_connector_action', { target_ref: cache.ref, action_name: 'delete_keys', input: { keys: [`${prefix}x`] }, reason: 'tidy' })).request_id as string;
    const toRun = await pending();
    const toDecline = await pending();
    const note = await callTool(mcp, 'send_operator_message', { text: 'hello operator' });
    const exported = await op.raw('POST', op.db('/export'), { password: PASSWORD });
    const aipdb = Buffer.from(await exported.arrayBuffer()).toString('base64');
    const pkg = join(work.dir, 'echo');
    await cp(join(FIXTURES, 'echo'), pkg, { recursive: true, filter: (p) => !p.endsWith('.ts') });
    const first = await op.call<{ inspection: string; integrity: string }>('POST', op.db('/plugins/inspect'), { source: pkg });
    await op.call('POST', op.db('/plugins'), { inspection: first.inspection, integrity: first.integrity });
    const pkg2 = join(work.dir, 'stash');
    await cp(join(FIXTURES, 'stash'), pkg2, { recursive: true, filter: (p) => !p.endsWith('.ts') });
    const inspected = await op.call<{ inspection: string; integrity: string }>('POST', op.db('/plugins/inspect'), { source: pkg2 });
    const second = await operator(gw.url);
    const leaving = await operator(gw.url);
    // A successful call, so the searches below have something to find.
    await direct.set(`${prefix}hello`, 'world');
    expect((await callTool(mcp, 'call_connector_action', { target_ref: cache.ref, action_name: 'get_key', input: { key: `${prefix}hello` }, reason: 'look' })).status).toBe('completed');

    const db = (suffix: string) => op.db(suffix);
    /** One real request per write route; a route missing here fails the test until it is added. */
    const requests: Record<string, { path: string; body?: unknown } | { exempt: string; path: string; body?: unknown; status: number; client?: Op }> = {
      'DELETE /api/databases/:db/grants/:id': { path: db(`/grants/${spareGrant.id}`) },
      'DELETE /api/databases/:db/plugins/:id': { path: db('/plugins/echo-fixture') },
      'DELETE /api/databases/:db/profiles/:id': { path: db(`/profiles/${spare.id}`) },
      'DELETE /api/databases/:db/redaction-rules/:id': { path: db(`/redaction-rules/${rule.id}`) },
      'DELETE /api/databases/:db/targets/:id': { path: db(`/targets/${doomed.id}`) },
      'PATCH /api/databases/:db/profiles/:id': { path: db(`/profiles/${spare.id}`), body: { label: 'renamed' } },
      'PATCH /api/databases/:db/settings': { path: db('/settings'), body: { approvalTtlSeconds: 600 } },
      'PATCH /api/databases/:db/targets/:id': { path: db(`/targets/${cache.id}`), body: { name: 'renamed' } },
      'POST /api/databases': { path: '/api/databases', body: { name: 'second', password: PASSWORD } },
      'POST /api/databases/:db/actions': { path: db('/actions'), body: { targetRef: cache.ref, action: 'set_string', input: { key: `${prefix}op`, value: 'v' }, reason: 'operator' } },
      'POST /api/databases/:db/audit/verify': { exempt: 'verifying reads the log', path: db('/audit/verify'), body: {}, status: 200 },
      'POST /api/databases/:db/export': { path: db('/export'), body: { password: PASSWORD } },
      'POST /api/databases/:db/lock': { exempt: 'locking must work on a full disk (tested last, below)', path: '', status: 0 },
      'POST /api/databases/:db/messages': { path: db('/messages'), body: { tokenId: agent.token.id, text: 'hi agent' } },
      'POST /api/databases/:db/messages/:id/read': { path: db(`/messages/${String(note.message_id)}/read`), body: {} },
      'POST /api/databases/:db/password': { path: db('/password'), body: { currentPassword: PASSWORD, newPassword: OTHER_PASSWORD } },
      'POST /api/databases/:db/plugins': { path: db('/plugins'), body: { inspection: inspected.inspection, integrity: inspected.integrity } },
      'POST /api/databases/:db/plugins/:id/restart': { exempt: 'restarting a plugin process writes nothing to the database', path: db('/plugins/redis/restart'), body: {}, status: 200 },
      'POST /api/databases/:db/plugins/:id/verify': { exempt: 'verifying reads the files and the approval', path: db('/plugins/redis/verify'), body: {}, status: 200 },
      'POST /api/databases/:db/plugins/inspect': { path: db('/plugins/inspect'), body: { source: pkg2 } },
      'POST /api/databases/:db/redaction-rules': { path: db('/redaction-rules'), body: { name: 'order', pattern: 'ORD-[0-9]+' } },
      'POST /api/databases/:db/requests/:id/decline': { path: db(`/requests/${toDecline}/decline`), body: { note: 'no' } },
      'POST /api/databases/:db/requests/:id/run': { path: db(`/requests/${toRun}/run`), body: {} },
      'POST /api/databases/:db/session': { exempt: 'a proven password gives a session that reads; it is recorded once the disk takes writes', path: db('/session'), body: { password: PASSWORD }, status: 200, client: second },
      'POST /api/databases/:db/targets': { path: db('/targets'), body: { kind: 'redis', name: 'new', config: { host: '127.0.0.1', port: 6379 } } },
      'POST /api/databases/:db/targets/:id/check': { path: db(`/targets/${cache.id}/check`), body: { profileId: cache.profileId } },
      'POST /api/databases/:db/targets/:id/profiles': { path: db(`/targets/${cache.id}/profiles`), body: { label: 'another', credentialKind: 'none' } },
      'POST /api/databases/:db/tokens': { path: db('/tokens'), body: { name: 'new' } },
      'POST /api/databases/:db/tokens/:id/revoke': { path: db(`/tokens/${other.token.id}/revoke`), body: {} },
      'POST /api/databases/:db/unlock': { exempt: 'unlocking an unlocked database proves the password, like a session', path: db('/unlock'), body: { password: PASSWORD }, status: 200, client: second },
      'POST /api/databases/import': { path: '/api/databases/import', body: { name: 'imported', password: PASSWORD, data: aipdb } },
      'POST /api/lock': { exempt: 'locking must work on a full disk (tested last, below)', path: '', status: 0 },
      'POST /api/session/logout': { exempt: 'a session lives in memory', path: '/api/session/logout', body: {}, status: 200, client: leaving },
      'POST /api/databases/:db/ssh/keys': { path: db('/ssh/keys'), body: { name: 'new-key' } },
      'POST /api/databases/:db/ssh/keys/import': { path: db('/ssh/keys/import'), body: { name: 'imported-key', privateKey: importable } },
      'DELETE /api/databases/:db/ssh/keys/:ref': { path: db(`/ssh/keys/${doomedKey.id}`) },
      'POST /api/databases/:db/ssh/hostkeys/scan': { path: db('/ssh/hostkeys/scan'), body: { host: '127.0.0.2', port: sshd.port } },
      'POST /api/databases/:db/ssh/hostkeys/:id/approve': { path: db(`/ssh/hostkeys/${unknownHost.approvalId}/approve`), body: {} },
      'POST /api/databases/:db/ssh/hostkeys/:id/reject': { path: db(`/ssh/hostkeys/${unknownHost.approvalId}/reject`), body: {} },
      'PUT /api/databases/:db/grants': { path: db('/grants'), body: { tokenId: agent.token.id, targetId: cache.id, profileId: cache.profileId, action: 'scan_keys', rule: 'always_run' } },
      'PUT /api/databases/:db/mcp': { path: db('/mcp'), body: { running: false } },
    };
    expect(Object.keys(requests).sort()).toEqual(routeTable());

    // ---- the disk fills up ----
    // A real full disk is not one state: a failed write leaves the space it
    // got allocated to SQLite's WAL, a failed file copy frees its pages, and
    // the gateway's background checkpoint lets the WAL start over in its own
    // space. So before each route the disk is made full again, for real: the
    // filler takes every free byte, and a second connection's one-page
    // writes use up whatever room SQLite still holds, until one is refused.
    // A reader holding one snapshot keeps the WAL from starting over.
    const file = join(disk.dir, 'databases', 'main.aipdb');
    const reader = await openSqlCipher(file, { key: PASSWORD });
    const writer = await openSqlCipher(file, { key: PASSWORD });
    await writer.exec('CREATE TABLE IF NOT EXISTS test_disk_filler (n INTEGER)');
    await writer.exec('INSERT INTO test_disk_filler VALUES (0)');
    await reader.exec('BEGIN');
    await reader.get('SELECT count(*) AS n FROM audit_log');
    const saturate = async () => {
      await disk.fill();
      for (let i = 0; i < 1000; i += 1) {
        try {
          await writer.exec(`UPDATE test_disk_filler SET n = ${i}`);
        } catch (error) {
          if (/full|SQLITE_FULL/i.test(String((error as Error).message ?? error))) return;
          if (/busy|locked/i.test(String((error as Error).message ?? error))) continue;
          throw error;
        }
      }
      throw new Error('the disk never refused a one-page write');
    };
    await saturate();
    // And the gateway's own writes are refused.
    expect(await send(op, 'PUT', db('/grants'), { tokenId: agent.token.id, targetId: cache.id, profileId: cache.profileId, action: 'ping', rule: 'always_run' })).toMatchObject({ status: 507, code: 'disk_full' });

    const seen: Record<string, Answer> = {};
    for (const [route, request] of Object.entries(requests)) {
      if ('exempt' in request && request.status === 0) continue;
      const [method] = route.split(' ');
      await saturate();
      seen[route] = await send('exempt' in request ? (request.client ?? op) : op, method!, request.path, request.body);
    }
    for (const [route, answer] of Object.entries(seen)) {
      const request = requests[route]!;
      if ('exempt' in request) {
        expect({ route, status: answer.status }, request.exempt).toEqual({ route, status: request.status });
      } else if (route.endsWith('/actions') || route.endsWith('/run')) {
        // An action whose intent entry cannot be written does not run, and says why.
        expect({ route, ...answer }).toMatchObject({ route, status: 503, code: 'audit_unavailable', message: expect.stringMatching(/disk .* is full.*not run.*free some space/) });
      } else {
        expect({ route, ...answer }).toMatchObject({ route, status: 507, code: 'disk_full', message: expect.stringMatching(/disk .* is full.*Free some space/) });
      }
    }
    // The CLI says so too (the issue's `aip grant set` answered "Something went wrong").
    await saturate();
    const cliGrant = await aip(['grant', 'set', '--token', agent.token.id, '--target', cache.id, '--profile', cache.profileId, '--action', 'info', '--rule', 'blocked', '--url', gw.url, '--password-stdin'], { stdin: `${PASSWORD}\n` });
    expect({ code: cliGrant.code, stderr: cliGrant.stderr }).toMatchObject({ code: 1, stderr: expect.stringMatching(/disk .* is full.*Free some space/) });
    expect(cliGrant.stderr).not.toMatch(/Something went wrong/);
    // A session proven on the full disk reads, and cannot change anything before its start is recorded.
    expect((await send(second, 'GET', db('/requests'))).status).toBe(200);
    await saturate();
    expect(await send(second, 'PUT', db('/mcp'), { running: false })).toMatchObject({ status: 507, code: 'disk_full', message: expect.stringMatching(/session could not be recorded/) });

    // ---- reads keep working ----
    for (const path of ['/api/status', db('/audit?q=get_key'), db('/audit?event=action'), db('/requests'), db('/requests?q=look'), db('/requests?status=approval_pending'), db('/grants'), db('/tokens'), db('/targets'), db('/settings'), db('/messages'), db('/plugins')]) {
      expect({ path, status: (await send(op, 'GET', path)).status }).toEqual({ path, status: 200 });
    }
    expect((await op.call<{ report: { ok: boolean } }>('POST', db('/audit/verify'), {})).report.ok).toBe(true);
    // The CLI too: it proves the password for every command, then reads.
    for (const args of [['audit', 'search', 'get_key'], ['approvals', 'list'], ['status']]) {
      const result = await aip([...args, '--url', gw.url, '--password-stdin'], { stdin: `${PASSWORD}\n` });
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 0, stderr: '' });
    }
    // An agent's call fails closed: nothing ran without its intent entry.
    await saturate();
    const refusedCall = await callTool(mcp, 'call_connector_action', { target_ref: cache.ref, action_name: 'set_string', input: { key: `${prefix}full`, value: 'v' }, reason: 'on a full disk' });
    expect(refusedCall.error?.code ?? refusedCall.status).toBe('audit_unavailable');
    expect(await direct.get(`${prefix}full`)).toBeNull();

    // ---- space comes back ----
    const freedAt = Date.now();
    await reader.exec('COMMIT');
    await reader.close();
    await writer.close();
    await disk.free();
    let recoveredMs = -1;
    while (Date.now() - freedAt < 5_000) {
      const answer = await send(op, 'PATCH', db('/settings'), { approvalTtlSeconds: 600 });
      if (answer.status === 200) {
        recoveredMs = Date.now() - freedAt;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(recoveredMs, 'a write succeeds again after space came back').toBeGreaterThanOrEqual(0);
    expect(recoveredMs).toBeLessThan(1_000);
    console.log(`faults-disk: the first write after space came back succeeded after ${recoveredMs} ms`);
    // The late session is recorded and may now write; the database still opens with its one password (the rekey was refused whole).
    await expect.poll(async () => (await send(second, 'PUT', db('/mcp'), { running: true })).status, { timeout: 2_000 }).toBe(200);
    const late = await op.call<{ entries: Array<{ payload: Record<string, unknown> }> }>('GET', db('/audit?event=session.started&limit=500'));
    expect(late.entries.some((e) => e.payload.recordedLate === true)).toBe(true);
    expect((await aip(['status', '--url', gw.url, '--password-stdin'], { stdin: `${PASSWORD}\n` })).code).toBe(0);
    expect((await callTool(mcp, 'call_connector_action', { target_ref: cache.ref, action_name: 'set_string', input: { key: `${prefix}after`, value: 'v' }, reason: 'space is back' })).status).toBe('completed');
    expect(await direct.get(`${prefix}after`)).toBe('v');
    expect((await op.call<{ report: { ok: boolean } }>('POST', db('/audit/verify'), {})).report.ok).toBe(true);
    await mcp.close();
  }, 60_000);

  it('locks on a full disk', async () => {
    await disk.fill();
    for (let i = 0; i < 500; i += 1) {
      if ((await send(op, 'PATCH', op.db('/settings'), { approvalTtlSeconds: 600 + i })).status !== 200) break;
    }
    expect((await send(op, 'POST', '/api/lock', {})).status).toBe(200);
    expect((await op.call<{ databases: Array<{ unlocked: boolean }> }>('GET', '/api/status')).databases.every((d) => !d.unlocked)).toBe(true);
    await disk.free();
  });
});
