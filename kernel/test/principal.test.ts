import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { createMcp, type McpEndpoint } from '../src/mcp/index.js';
import { listenOnLoopback, type RunningServer } from '../src/http/index.js';
import { agentPrincipal, assertPrincipal, operatorPrincipal } from '../src/lib/principal.js';
import type { Pipeline } from '../src/pipeline/index.js';
import { createHarness, type Fixture, type Harness } from './helpers/kernel.js';
import { callTool, mcpClient, type TransportKind } from './helpers/mcp.js';
import { TestClient, httpApp } from './helpers/http.js';
import { PASSWORD } from './helpers/temp.js';

/** Every value reachable from `value` (functions and cycles skipped), as text, to search for a secret in. */
function reachableText(value: unknown, seen = new Set<unknown>()): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value !== 'object') return typeof value === 'function' ? '' : String(value);
  if (seen.has(value)) return '';
  seen.add(value);
  const parts: string[] = [];
  for (const key of Reflect.ownKeys(value)) {
    parts.push(String(key));
    let child: unknown;
    try {
      child = (value as Record<PropertyKey, unknown>)[key];
    } catch {
      continue;
    }
    parts.push(reachableText(child, seen));
  }
  return parts.join('\n');
}

describe('the principal: a token is authenticated once, at the edge', () => {
  let h: Harness;
  let f: Fixture;
  let mcp: McpEndpoint;
  let server: RunningServer;
  /** Everything the pipeline was handed, call by call. */
  const handed: unknown[][] = [];
  const clients: Client[] = [];

  beforeAll(async () => {
    h = await createHarness({ manualClock: false });
    f = await h.setup('always_run');
    await h.ws.mcp.set(true, 'operator:test');
    const real = h.kernel.pipeline;
    const recording: Pick<Pipeline, 'call' | 'recordRejected'> = {
      call: (...args) => {
        handed.push(args);
        return real.call(...args);
      },
      recordRejected: (...args) => {
        handed.push(args);
        return real.recordRejected(...args);
      },
    };
    let port = 0;
    mcp = createMcp({
      tokens: h.kernel.tokens,
      pipeline: recording,
      database: (name) => h.kernel.workspace(name),
      log: () => undefined,
      clock: h.kernel.clock,
      onLocked: (listener) => h.kernel.onLocked(listener),
      getPort: () => port,
    });
    server = await listenOnLoopback((request) => mcp.handle(request), { host: '127.0.0.1', port: 0, onUpgrade: (request, socket, head) => mcp.handleUpgrade(request, socket, head) });
    port = server.port;
  }, 60_000);

  afterAll(async () => {
    for (const client of clients) await client.close().catch(() => undefined);
    await mcp?.closeAll();
    await server?.close();
    await h?.cleanup();
  });

  it.each(['http', 'stdio'] as TransportKind[])('never hands the token string below the MCP edge (%s): the pipeline and the connector get a principal', async (kind) => {
    handed.length = 0;
    h.executor.calls.length = 0;
    const client = await mcpClient(kind, server.url, f.token);
    clients.push(client);
    const ok = await callTool(client, 'call_connector_action', { target_ref: f.targetRef, action_name: 'echo', input: { text: 'hi' }, reason: 'principal test' });
    expect(ok).toMatchObject({ status: 'completed' });
    // A malformed call is audited through the pipeline too: also with a principal.
    await callTool(client, 'call_connector_action', { target_ref: f.targetRef, action_name: 'echo', input: { text: 'hi' }, extra_field: 1 });
    expect(handed.length).toBe(2);
    for (const args of handed) {
      expect(args[0]).toEqual({ kind: 'agent', database: 'main', tokenId: f.tokenId });
      expect(Object.isFrozen(args[0])).toBe(true);
      expect(reachableText(args)).not.toContain(f.token);
    }
    expect(h.executor.calls).toHaveLength(1);
    expect(reachableText(h.executor.calls[0])).not.toContain(f.token);
  }, 60_000);

  it('refuses a token string (or a principal not made at an edge) handed to the pipeline, and runs nothing', async () => {
    h.executor.calls.length = 0;
    const before = (await h.ws.audit.search({ limit: 1 })).entries[0]?.seq ?? 0;
    const forged = { kind: 'agent', database: 'main', tokenId: f.tokenId } as const;
    for (const wrong of [f.token, forged]) {
      await expect(h.kernel.pipeline.call(wrong as never, { targetRef: f.targetRef, action: 'echo', input: { text: 'x' } })).rejects.toMatchObject({
        code: 'internal_error',
        message: expect.stringContaining('authenticated principal'),
      });
      await expect(h.kernel.pipeline.recordRejected(wrong as never, { targetRef: f.targetRef, action: 'echo' }, new Error('x') as never)).rejects.toMatchObject({ code: 'internal_error' });
    }
    // An agent's principal cannot run an approval (only the operator's can).
    await expect(h.kernel.pipeline.runApproved(agentPrincipal('main', f.tokenId) as never, 'req_0000000000000000')).rejects.toMatchObject({ code: 'internal_error' });
    expect(h.executor.calls).toHaveLength(0);
    expect((await h.ws.audit.search({ limit: 1 })).entries[0]?.seq ?? 0).toBe(before);
    expect(() => assertPrincipal(f.token)).toThrow();
  });

  it("runs the operator's own action through the same stages, recorded as the operator's, with no grant and not held by the MCP switch", async () => {
    h.executor.calls.length = 0;
    const other = await h.ws.targets.createTarget({ kind: 'fake', name: 'no-grants-here', config: { host: 'ops.internal' } }, 'operator:test');
    const profile = await h.ws.targets.createProfile(other.id, { label: 'default', credentialKind: 'password', config: { username: 'ops' }, secret: { password: 'Ops-Secret-4242' } }, 'operator:test');
    await h.ws.mcp.set(false, 'operator:test');
    try {
      const operator = operatorPrincipal('main', 'ses_console', 'operator:ui:ses_console');
      const outcome = await h.kernel.pipeline.call(operator, { targetRef: `fake:${other.id}:${profile.id}`, action: 'leak', input: {}, reason: 'checking by hand' });
      if (outcome.kind !== 'request') throw new Error('expected a request');
      expect(outcome.request).toMatchObject({ status: 'completed', requestedBy: 'operator', operatorActor: 'operator:ui:ses_console', tokenId: '', rule: 'always_run' });
      // Redacted like an agent's: the lease's secret never comes back in clear.
      expect(JSON.stringify(outcome.request.output)).not.toContain('Ops-Secret-4242');
      expect(h.executor.calls).toHaveLength(1);
      const entries = (await h.ws.audit.search({ subjectId: outcome.request.id, limit: 10 })).entries;
      expect(entries.map((e) => [e.event, e.actor]).sort()).toEqual([
        ['action.completed', 'operator:ui:ses_console'],
        ['action.started', 'operator:ui:ses_console'],
      ]);
      // While an agent, with MCP switched off, is stopped.
      expect((await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'echo', input: { text: 'x' } })).kind).toBe('stopped');
    } finally {
      await h.ws.mcp.set(true, 'operator:test');
    }
  });

  it('lets the operator run an action over REST (session + CSRF), as the session\'s principal', async () => {
    const client = new TestClient(httpApp(h.kernel).app);
    await client.get('/api/status');
    // Without a session: refused before anything runs.
    expect((await client.post('/api/databases/main/actions', { targetRef: f.targetRef, action: 'echo', input: { text: 'x' } })).status).toBe(401);
    await client.json('POST', '/api/databases/main/unlock', { password: PASSWORD });
    const { request } = await client.json<{ request: { status: string; requestedBy: string; operatorActor: string; output: unknown } }>(
      'POST',
      '/api/databases/main/actions',
      { targetRef: f.targetRef, action: 'echo', input: { text: 'by hand' }, reason: 'from the console' },
      201,
    );
    expect(request).toMatchObject({ status: 'completed', requestedBy: 'operator', output: { text: 'by hand' } });
    expect(request.operatorActor).toMatch(/^operator:/);
    // Bad input is the same clear refusal an agent gets, named by what was wrong.
    const bad = await client.post('/api/databases/main/actions', { targetRef: f.targetRef, action: 'echo', input: { nope: 1 } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toContain('is invalid');
  });

  it('checks the principal is still good on every call: a token revoked mid-session stops at once', async () => {
    const created = await h.ws.tokens.create({ name: 'soon-revoked' }, 'operator:test');
    await h.ws.grants.set({ tokenId: created.token.id, targetId: f.targetId, profileId: f.profileId, action: '*', rule: 'always_run' }, 'operator:test');
    const principal = h.kernel.authenticateToken(created.secret);
    const first = await h.kernel.pipeline.call(principal, { targetRef: f.targetRef, action: 'echo', input: { text: 'a' } });
    expect(first.kind).toBe('request');
    await h.ws.tokens.revoke(created.token.id, 'operator:test');
    await expect(h.kernel.pipeline.call(principal, { targetRef: f.targetRef, action: 'echo', input: { text: 'b' } })).rejects.toMatchObject({ code: 'token_revoked' });
  });
});
