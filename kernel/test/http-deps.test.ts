/**
 * Each HTTP route group is built with exactly the dependencies it declares,
 * every one cut down to the members its type names, from a real kernel
 * running a real plugin: a route that reaches for anything more fails here at
 * run time (the member is missing), and a declared dependency that grows
 * fails the type check of this file (`npx tsc --noEmit -p .` in kernel/).
 * The type-level checks at the end say no route group is handed a database,
 * a vault handle, the vault, the pipeline, a workspace or a credential lease.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hono } from 'hono';
import { isKernelError } from '../src/lib/errors.js';
import type { Kernel } from '../src/kernel.js';
import { httpDepsFromKernel } from '../src/wiring.js';
import type { Workspace } from '../src/workspace/index.js';
import {
  createHttpApp,
  createSessionStore,
  type ConfigRouteDeps,
  type EventRouteDeps,
  type PerDatabase,
  type PluginRouteDeps,
  type RequestRouteDeps,
  type Session,
  type SessionStore,
  type SystemRouteDeps,
  type TargetRouteDeps,
  type TokenRouteDeps,
} from '../src/http/index.js';
import type { HttpEnv } from '../src/http/context.js';
import { systemRoutes } from '../src/http/routes/system.js';
import { configRoutes } from '../src/http/routes/config.js';
import { targetRoutes } from '../src/http/routes/targets.js';
import { tokenRoutes } from '../src/http/routes/tokens.js';
import { requestRoutes } from '../src/http/routes/requests.js';
import { eventRoutes } from '../src/http/routes/events.js';
import { pluginRoutes } from '../src/http/routes/plugins.js';
import { pluginHarness, type PluginHarness } from './helpers/plugins.js';
import { PASSWORD } from './helpers/temp.js';

/**
 * A stand-in for `source` that has only `keys` (methods bound to it): any
 * other member a route reads throws, naming it, so the route fails loudly.
 */
function only<T extends object, K extends keyof T>(source: T, keys: readonly K[]): Pick<T, K> {
  const picked = {} as Pick<T, K>;
  for (const key of keys) {
    const value = source[key];
    picked[key] = (typeof value === 'function' ? value.bind(source) : value) as T[K];
  }
  return new Proxy(picked, {
    get(target, property, receiver) {
      // `then` is how `await` asks whether a value is a promise; it is not a dependency.
      if (typeof property === 'string' && property !== 'then' && !(property in target)) {
        throw new Error(`"${property}" is not among the declared dependencies (${keys.map(String).join(', ')})`);
      }
      return Reflect.get(target, property, receiver);
    },
  });
}

/** A route group behind only what the real app puts in front of it for these tests: a session and the error shape. */
function mount(routes: Hono<HttpEnv>, session: Session | undefined) {
  const app = new Hono<HttpEnv>();
  app.use('*', async (c, next) => {
    c.set('session', session);
    await next();
  });
  app.route('/api', routes);
  app.onError((error, c) =>
    isKernelError(error)
      ? c.json({ error: { code: error.code, message: error.message } }, error.status as 400)
      : c.json({ error: { code: 'internal_error', message: String(error) } }, 500),
  );
  return async (method: string, path: string, body?: unknown, expectStatus = 200): Promise<any> => {
    const response = await app.request(`http://127.0.0.1/api${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    if (response.headers.get('content-type')?.startsWith('text/event-stream')) return response;
    const text = await response.text();
    if (response.status !== expectStatus) throw new Error(`${method} ${path} -> ${response.status} (expected ${expectStatus}): ${text}`);
    return JSON.parse(text);
  };
}

let h: PluginHarness;
let t: Awaited<ReturnType<PluginHarness['target']>>;
let sessions: SessionStore;
let session: Session;
let full: ReturnType<typeof httpDepsFromKernel>;
const ws = (name: string): Workspace => h.kernel.workspace(name);

beforeAll(async () => {
  h = await pluginHarness({ fixtures: ['echo'] });
  t = await h.target('echo-fixture');
  sessions = createSessionStore(h.kernel.clock);
  session = sessions.issue('main', 'cli');
  full = httpDepsFromKernel(h.kernel);
});
afterAll(async () => {
  await h.cleanup();
});

describe('each HTTP route group works with only the dependencies it declares', () => {
  it('system: status and proving a password, with the guard, the lifecycle, the MCP switch state and audit appends', async () => {
    const request = mount(
      systemRoutes({
        databases: only(full.databases, ['isUnlocked', 'exists', 'anyUnlocked']),
        lifecycle: only(full.lifecycle, ['list', 'unlockedNames', 'create', 'unlock', 'provePassword', 'lock', 'rollbackWarning', 'changePassword', 'exportTo', 'importFrom']),
        mcpSwitch: (name) => only(ws(name).mcp, ['isRunning']),
        audit: (name) => only(ws(name).audit, ['append']),
        sessions: only(sessions, ['issue', 'destroy', 'dropDatabase']),
        clock: only(h.kernel.clock, ['now']),
        dataDir: h.dir,
        version: 'test',
      }),
      session,
    );
    const status = await request('GET', '/status');
    expect(status.databases).toEqual([expect.objectContaining({ name: 'main', unlocked: true, mcpRunning: true })]);
    expect(status.session).toMatchObject({ id: session.id, databases: ['main'] });
    const proved = await request('POST', '/databases/main/session', { password: PASSWORD });
    expect(proved.database).toEqual({ name: 'main', unlocked: true, mcpRunning: true });
    expect((await ws('main').audit.search({ event: 'session.started', limit: 1 })).entries[0]?.payload).toMatchObject({ via: 'proved' });
  });

  it('config: settings, the MCP switch and the connector list, with those three stores', async () => {
    const request = mount(
      configRoutes({
        databases: only(full.databases, ['isUnlocked', 'exists']),
        settings: (name) => only(ws(name).settings, ['get', 'update']),
        mcpSwitch: (name) => only(ws(name).mcp, ['isRunning', 'set']),
        redaction: (name) => only(ws(name).redaction, ['list', 'add', 'remove']),
        catalog: (name) => only(ws(name).catalog, ['list']),
      }),
      session,
    );
    expect((await request('GET', '/databases/main/settings')).settings.approvalTtlSeconds).toBe(900);
    expect(await request('PUT', '/databases/main/mcp', { running: true })).toEqual({ running: true });
    expect((await request('GET', '/databases/main/connectors')).connectors.map((c: { id: string }) => c.id)).toContain('echo-fixture');
  });

  it('targets: creates and lists targets with a targets store that has no credential lease', async () => {
    const request = mount(
      targetRoutes({
        databases: only(full.databases, ['isUnlocked', 'exists']),
        targets: (name) =>
          only(ws(name).targets, ['listTargets', 'requireTarget', 'createTarget', 'updateTarget', 'deleteTarget', 'listProfiles', 'requireProfile', 'createProfile', 'updateProfile', 'deleteProfile']),
      }),
      session,
    );
    const { target } = await request('POST', '/databases/main/targets', { kind: 'echo-fixture', name: 'narrow', config: { host: '127.0.0.1' } }, 201);
    expect((await request('GET', '/databases/main/targets')).targets.map((x: { id: string }) => x.id)).toContain(target.id);
  });

  it('tokens: creates a token and grants it, with the clock and the two stores', async () => {
    const request = mount(
      tokenRoutes({
        databases: only(full.databases, ['isUnlocked', 'exists']),
        clock: only(h.kernel.clock, ['now']),
        tokens: (name) => only(ws(name).tokens, ['list', 'create', 'revoke']),
        grants: (name) => only(ws(name).grants, ['list', 'set', 'remove', 'effective']),
      }),
      session,
    );
    const created = await request('POST', '/databases/main/tokens', { name: 'narrow', expiresIn: '1d' }, 201);
    const set = await request('PUT', '/databases/main/grants', { tokenId: created.token.id, targetId: t.targetId, profileId: t.profileId, action: 'echo', rule: 'approval_required' });
    expect(set).toMatchObject({ grant: { tokenId: created.token.id, rule: 'approval_required' }, effectiveRule: 'approval_required' });
    expect((await request('GET', '/databases/main/tokens')).tokens.find((x: { id: string }) => x.id === created.token.id)).toMatchObject({ state: 'active' });
  });

  it('requests: lists a pending request and runs it through the approvals runner', async () => {
    const request = mount(
      requestRoutes({
        databases: only(full.databases, ['isUnlocked', 'exists']),
        approvals: (name) => only(ws(name).approvals, ['list', 'require', 'decline', 'expireDue']),
        runner: only(full.runner, ['run', 'call']),
        audit: (name) => only(ws(name).audit, ['search', 'verify']),
        messages: (name) => only(ws(name).messages, ['list', 'sendToAgent', 'markRead']),
        tokens: (name) => only(ws(name).tokens, ['require']),
      }),
      session,
    );
    const token = await ws('main').tokens.create({ name: 'waits' }, 'operator:test');
    await ws('main').grants.set({ tokenId: token.token.id, targetId: t.targetId, profileId: t.profileId, action: 'echo', rule: 'approval_required' }, 'operator:test');
    const outcome = await h.kernel.pipeline.call(h.kernel.authenticateToken(token.secret), { targetRef: t.targetRef, action: 'echo', input: { text: 'narrow' } });
    if (outcome.kind !== 'request') throw new Error(`unexpected ${JSON.stringify(outcome)}`);
    const pending = await request('GET', '/databases/main/requests?status=approval_pending');
    expect(pending.requests.map((r: { id: string }) => r.id)).toContain(outcome.request.id);
    const { request: ran } = await request('POST', `/databases/main/requests/${outcome.request.id}/run`, { note: 'go' });
    expect(ran).toMatchObject({ status: 'completed', output: { text: 'narrow' } });
    expect((await request('POST', '/databases/main/audit/verify', {})).report.ok).toBe(true);
  });

  it('events: opens the stream with the lock state, the event bus and the sessions', async () => {
    const request = mount(
      eventRoutes({ databases: only(full.databases, ['anyUnlocked']), events: only(h.kernel.events, ['subscribe']), sessions: only(sessions, ['get']) }),
      session,
    );
    const response: Response = await request('GET', '/events');
    const reader = response.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toContain('event: ready');
    await reader.cancel();
  });

  it('plugins: lists plugins and checks a connection, with the host, the approvals and the connection checks', async () => {
    const request = mount(
      pluginRoutes({
        databases: only(full.databases, ['isUnlocked', 'exists']),
        plugins: only(h.host, ['sandbox', 'list', 'inspect', 'install', 'remove', 'verify', 'restart', 'log']),
        pluginApprovals: (name) => only(ws(name).pluginApprovals, ['get', 'approve', 'revoke']),
        settings: (name) => only(ws(name).settings, ['get']),
        approvals: (name) => only(ws(name).approvals, ['revalidateConnector']),
        connectionChecks: only(full.connectionChecks, ['check']),
      }),
      session,
    );
    const listed = await request('GET', '/databases/main/plugins');
    expect(listed.plugins.find((p: { id: string }) => p.id === 'echo-fixture')).toMatchObject({ kind: 'builtin', approved: true });
    const { result } = await request('POST', `/databases/main/targets/${t.targetId}/check`, { profileId: t.profileId });
    expect(typeof result.ok).toBe('boolean');
    expect((await ws('main').audit.search({ event: 'target.checked', limit: 1 })).entries[0]?.subject).toMatchObject({ targetId: t.targetId, profileId: t.profileId });
  });
});

// ---- Type level: checked by `npx tsc --noEmit -p .` (kernel/), not at run time. ----

type Returned<T> = T extends (...args: never[]) => infer R ? Awaited<R> : T;
/** The member names a dependency hands out: its own, and those of whatever its functions return. */
type Exposed<T> = T extends (...args: never[]) => unknown ? keyof Returned<T> : T extends object ? keyof T | { [K in keyof T]: keyof Returned<T[K]> }[keyof T] : never;
/** What no route may be handed: a raw database, a vault handle or sealer, the vault, the pipeline, a workspace, a credential lease. */
type Forbidden = 'db' | 'handle' | 'sealer' | 'vault' | 'pipeline' | 'workspace' | 'unlocked' | 'lease';
/** The forbidden names a route group's dependencies hand out (never, when there are none). */
type Leaks<Deps> = { [K in keyof Deps]: Extract<Exposed<Deps[K]>, Forbidden> }[keyof Deps];
type Clean<Deps> = [Leaks<Deps>] extends [never] ? true : Leaks<Deps>;

// A leak turns `true` into the leaked name here, and this stops type-checking.
export const routeGroupsHandNoLocator: {
  system: Clean<SystemRouteDeps>;
  config: Clean<ConfigRouteDeps>;
  targets: Clean<TargetRouteDeps>;
  tokens: Clean<TokenRouteDeps>;
  requests: Clean<RequestRouteDeps>;
  events: Clean<EventRouteDeps>;
  plugins: Clean<PluginRouteDeps>;
} = { system: true, config: true, targets: true, tokens: true, requests: true, events: true, plugins: true };

// The check itself bites: a workspace accessor or the kernel would leak.
// @ts-expect-error a per-database workspace hands out its db and handle
export const workspaceLeaks: Clean<{ targets: PerDatabase<Workspace> }> = true;
// @ts-expect-error the kernel hands out the vault, the pipeline and every workspace
export const kernelLeaks: Clean<{ kernel: Kernel }> = true;

/** Never called: the route factories refuse the service locators outright. */
export function refusesServiceLocators(kernel: Kernel, databases: TargetRouteDeps['databases']) {
  // @ts-expect-error the target routes take a targets store per database, not a workspace
  targetRoutes({ databases, targets: (name: string) => kernel.workspace(name) });
  // @ts-expect-error the app takes HttpDeps, not the kernel
  createHttpApp({ kernel, getPort: () => 0, version: 'test' });
}
