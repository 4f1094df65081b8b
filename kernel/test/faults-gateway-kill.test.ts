import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernel } from '../src/kernel.js';
import { aip } from './helpers/cli.js';
import { callTool, mcpClient, operator, startGatewayProcess, type RunningGateway } from './helpers/mcp.js';
import { FIXTURES } from './helpers/plugins.js';
import { tempDir, PASSWORD } from './helpers/temp.js';

/**
 * Fault scenario (issue 16): the gateway process killed with SIGKILL under
 * load from 8 MCP clients, and started again, three times. What must hold:
 * requests in flight become outcome_unknown at the next unlock, nothing a
 * client was told is lost (a completed request stays completed, its effect
 * is in Redis), every attempt has exactly its intent and its completion
 * entry, and `aip audit verify` passes.
 */
const CLIENTS = 8;
const ROUNDS = 3;
const prefix = `aip:faults-gw:${process.pid}:`;

let work: { dir: string; cleanup: () => Promise<void> };
let gw: RunningGateway | undefined;
const direct = new Redis({ host: '127.0.0.1', port: 6379 });
const dataDir = () => join(work.dir, 'data');

async function start() {
  gw = await startGatewayProcess(dataDir());
  const unlocked = await aip(['unlock', '--url', gw.url, '--password-stdin'], { stdin: `${PASSWORD}\n` });
  expect(unlocked.code, unlocked.stderr).toBe(0);
  return { gw, op: await operator(gw.url) };
}

beforeAll(async () => {
  work = await tempDir('aip-faults-gw-');
  expect((await aip(['db', 'create', 'main', '--data-dir', dataDir(), '--password-stdin'], { stdin: `${PASSWORD}\n` })).code).toBe(0);
}, 60_000);

afterAll(async () => {
  if (gw && gw.process.exitCode === null && gw.process.signalCode === null) await gw.stop().catch(() => undefined);
  const keys = await direct.keys(`${prefix}*`);
  if (keys.length) await direct.del(...keys);
  direct.disconnect();
  await work?.cleanup();
});

describe('the gateway killed with SIGKILL under load, and started again (fault scenario)', () => {
  it(`loses nothing committed and turns what was in flight into outcome_unknown: ${ROUNDS} kills under ${CLIENTS} MCP clients`, async () => {
    let { op } = await start();
    await op.call('PUT', op.db('/mcp'), { running: true });
    const target = async (kind: string, config: Record<string, unknown>, credentialKind?: string) => {
      const { target: t } = await op.call<{ target: { id: string } }>('POST', op.db('/targets'), { kind, name: `${kind}-box`, config });
      const { profile } = await op.call<{ profile: { id: string } }>('POST', op.db(`/targets/${t.id}/profiles`), { label: 'default', ...(credentialKind ? { credentialKind } : { secret: { password: 'Echo-Secret-1' } }) });
      return { id: t.id, profileId: profile.id, ref: `${kind}:${t.id}:${profile.id}` };
    };
    const redis = await target('redis', { host: '127.0.0.1', port: 6379 }, 'none');
    const pkg = join(work.dir, 'echo');
    await cp(join(FIXTURES, 'echo'), pkg, { recursive: true, filter: (p) => !p.endsWith('.ts') });
    const inspected = await op.call<{ inspection: string; integrity: string }>('POST', op.db('/plugins/inspect'), { source: pkg });
    await op.call('POST', op.db('/plugins'), { inspection: inspected.inspection, integrity: inspected.integrity });
    const echo = await target('echo-fixture', { host: '127.0.0.1' });
    const tokens: string[] = [];
    for (let n = 0; n < CLIENTS; n += 1) {
      const created = await op.call<{ token: { id: string }; secret: string }>('POST', op.db('/tokens'), { name: `client-${n}` });
      for (const on of [redis, echo]) await op.call('PUT', op.db('/grants'), { tokenId: created.token.id, targetId: on.id, profileId: on.profileId, action: '*', rule: 'always_run' });
      tokens.push(created.secret);
    }

    /** What the clients were told: request id -> status, and the Redis key of each completed write. */
    const told = new Map<string, { status: string; key?: string }>();
    for (let round = 0; round < ROUNDS; round += 1) {
      const running = gw!;
      const clients: Client[] = await Promise.all(tokens.map((token) => mcpClient('http', running.url, token)));
      let dead = false;
      let killed: () => void = () => undefined;
      // A call cut off by the kill may never settle on the client side (its stream is retried): the load stops waiting at the kill.
      const cutOff = new Promise<'cut'>((resolve) => (killed = () => resolve('cut')));
      const load = clients.map(async (client, n) => {
        for (let i = 0; !dead; i += 1) {
          // Half the clients write to Redis; the others hold a slow call open, so the kill always finds some in flight.
          const slow = n % 2 === 1;
          const key = `${prefix}${round}:${n}:${i}`;
          try {
            const call = slow
              ? callTool(client, 'call_connector_action', { target_ref: echo.ref, action_name: 'slow', input: { ms: 400 }, reason: 'hold' })
              : callTool(client, 'call_connector_action', { target_ref: redis.ref, action_name: 'set_string', input: { key, value: 'v' }, reason: 'write' });
            call.catch(() => undefined);
            const answer = await Promise.race([call, cutOff]);
            if (answer === 'cut') return;
            if (typeof answer.request_id === 'string') told.set(answer.request_id, { status: String(answer.status), ...(slow ? {} : { key }) });
          } catch {
            return; // the gateway is gone
          }
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 700 + round * 200));
      dead = true;
      running.process.kill('SIGKILL');
      killed();
      await new Promise((resolve) => running.process.once('exit', resolve));
      await Promise.all(load);
      await Promise.all(clients.map((client) => Promise.race([client.close().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 1_000))])));
      ({ op } = await start());
    }
    // After the last restart: what every client was told still holds.
    expect([...told.values()].filter((t) => t.status === 'completed').length).toBeGreaterThan(CLIENTS);
    for (const [id, t] of told) {
      const { request } = await op.call<{ request: { status: string } }>('GET', op.db(`/requests/${id}`));
      // A final answer stays what it was; one told `running` (past the MCP wait) has ended somehow since.
      if (t.status === 'running') expect({ id, status: request.status }).toMatchObject({ id, status: expect.stringMatching(/^(completed|failed|outcome_unknown)$/) });
      else expect({ id, status: request.status }).toEqual({ id, status: t.status });
      if (t.key && t.status === 'completed') expect({ key: t.key, value: await direct.get(t.key) }).toEqual({ key: t.key, value: 'v' });
    }
    const verified = await aip(['audit', 'verify', '--url', gw!.url, '--password-stdin'], { stdin: `${PASSWORD}\n` });
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    await gw!.stop();
    gw = undefined;

    // The database itself, opened directly: nothing left running, each attempt with exactly one intent and one ending.
    const kernel = createKernel({ dataDir: dataDir(), log: () => undefined });
    try {
      const ws = await kernel.unlock('main', PASSWORD, 'operator:test');
      const requests = await ws.db.all<{ id: string; status: string; status_reason: string | null }>('SELECT id, status, status_reason FROM requests');
      expect(requests.filter((r) => r.status === 'running')).toEqual([]);
      const unknown = requests.filter((r) => r.status === 'outcome_unknown');
      // A kill lands between a call's intent and its end only by chance (a Redis call is that short):
      // 4-6 over three kills on a quiet machine, 2 under a loaded one; at least one shows the conversion.
      expect(unknown.length, 'some calls were in flight at the kills').toBeGreaterThanOrEqual(1);
      for (const r of unknown) expect(r.status_reason).toMatch(/gateway stopped while the action was running/);
      const events = await ws.db.all<{ id: string; event: string }>("SELECT json_extract(subject, '$.requestId') AS id, event FROM audit_log WHERE event LIKE 'action.%'");
      for (const r of requests) {
        const mine = events.filter((e) => e.id === r.id).map((e) => e.event);
        expect({ id: r.id, intents: mine.filter((e) => e === 'action.started').length, endings: mine.filter((e) => /^action\.(completed|failed|outcome_unknown)$/.test(e)).length }).toEqual({ id: r.id, intents: 1, endings: 1 });
      }
      expect((await ws.audit.verify()).ok).toBe(true);
      console.log(`faults-gateway-kill: ${requests.length} requests over ${ROUNDS} kills, ${unknown.length} in flight became outcome_unknown`);
    } finally {
      await kernel.close();
    }
  }, 90_000);
});
