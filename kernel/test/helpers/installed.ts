import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { createInvocationScopes } from '../../src/invocations/index.js';
import { createKernel, type Kernel } from '../../src/kernel.js';
import { createPluginHost, pinBuiltins, type BwrapMode, type PluginHost } from '../../src/plugin-host/index.js';
import type { ProgressUpdate } from '../../src/connectors/index.js';
import type { ActionRequest } from '../../src/approvals/index.js';
import type { Workspace } from '../../src/workspace/index.js';
import { httpApp, TestClient } from './http.js';
import { FIXTURES } from './plugins.js';
import { PASSWORD, tempDir } from './temp.js';

export interface InstalledTarget {
  token: string;
  targetRef: string;
  targetId: string;
  profileId: string;
}

export interface InstalledHarness {
  kernel: Kernel;
  host: PluginHost;
  client: TestClient;
  dir: string;
  /** The gateway log as the host wrote it. */
  logs: string[];
  readonly ws: Workspace;
  /** Installs a fixture package as a third-party plugin, the operator's way: inspect, then approve what was shown. */
  install(fixture: string): Promise<void>;
  /** A target with one password profile, and a token of its own with an always_run grant on every action. */
  target(kind: string, secret: string, config?: Record<string, unknown>): Promise<InstalledTarget>;
  /** Another profile on the same target, with a token of its own. */
  profile(of: InstalledTarget, secret: string): Promise<InstalledTarget>;
  call(t: InstalledTarget, action: string, input?: unknown, onProgress?: (update: ProgressUpdate) => void): Promise<ActionRequest>;
  /** The operator's connection check over REST (what the UI's "Test connection" does). */
  check(t: InstalledTarget): Promise<Record<string, any>>;
  /** Every audit entry of `main`, as REST returns them. */
  audit(): Promise<Array<Record<string, any>>>;
  cleanup(): Promise<void>;
}

/**
 * A gateway (kernel, plugin host, REST) with no built-in connectors, into
 * which tests install fixture packages through the real install flow, as a
 * community plugin is installed.
 */
export async function installedHarness(options: { bwrap: BwrapMode; supervisor?: Parameters<typeof createPluginHost>[0]['supervisor'] }): Promise<InstalledHarness> {
  const { dir, cleanup } = await tempDir('aip-installed-');
  const logs: string[] = [];
  const log = (line: string) => {
    logs.push(line);
    if (logs.length > 5000) logs.shift();
  };
  const scopes = createInvocationScopes();
  const host = await createPluginHost({
    dataDir: dir,
    scopes,
    clock: { now: () => Date.now() },
    log,
    kernelInfo: { name: 'aipermission-test', version: '0.0.0' },
    bwrap: options.bwrap,
    builtinRoot: FIXTURES,
    builtins: [],
    builtinPins: await pinBuiltins(FIXTURES, []),
    ...(options.supervisor ? { supervisor: options.supervisor } : {}),
  });
  const kernel = createKernel({ dataDir: dir, plugins: host, scopes, log });
  const client = new TestClient(httpApp(kernel).app);
  await client.get('/api/status');
  await client.json('POST', '/api/databases', { name: 'main', password: PASSWORD }, 201);
  await client.json('PUT', '/api/databases/main/mcp', { running: true });
  let n = 0;
  const grant = async (targetId: string, profileId: string, kind: string): Promise<InstalledTarget> => {
    n += 1;
    const ws = kernel.workspace('main');
    const token = await ws.tokens.create({ name: `agent-${n}` }, 'operator:test');
    await ws.grants.set({ tokenId: token.token.id, targetId, profileId, action: '*', rule: 'always_run' }, 'operator:test');
    return { token: token.secret, targetRef: `${kind}:${targetId}:${profileId}`, targetId, profileId };
  };
  const kindOf = (t: InstalledTarget) => t.targetRef.split(':')[0]!;
  return {
    kernel,
    host,
    client,
    dir,
    logs,
    get ws() {
      return kernel.workspace('main');
    },
    async install(fixture) {
      const pkg = join(dir, `src-${fixture}-${Math.random().toString(36).slice(2, 8)}`);
      await cp(join(FIXTURES, fixture), pkg, { recursive: true, filter: (p) => !p.endsWith('.ts') });
      const inspected = await client.json('POST', '/api/databases/main/plugins/inspect', { source: pkg });
      await client.json('POST', '/api/databases/main/plugins', { inspection: inspected.inspection, integrity: inspected.integrity }, 201);
    },
    async target(kind, secret, config = { host: '127.0.0.1' }) {
      const ws = kernel.workspace('main');
      const target = await ws.targets.createTarget({ kind, name: `${kind}-${n + 1}`, config }, 'operator:test');
      const profile = await ws.targets.createProfile(target.id, { label: 'p', credentialKind: 'password', config: { username: 'app' }, secret: { password: secret } }, 'operator:test');
      return grant(target.id, profile.id, kind);
    },
    async profile(of, secret) {
      const ws = kernel.workspace('main');
      const profile = await ws.targets.createProfile(of.targetId, { label: `p${n + 1}`, credentialKind: 'password', config: { username: 'app' }, secret: { password: secret } }, 'operator:test');
      return grant(of.targetId, profile.id, kindOf(of));
    },
    async call(t, action, input = {}, onProgress) {
      const outcome = await kernel.pipeline.call(kernel.authenticateToken(t.token), { targetRef: t.targetRef, action, input }, onProgress ? { onProgress } : {});
      if (outcome.kind !== 'request') throw new Error(`unexpected ${JSON.stringify(outcome)}`);
      return outcome.request;
    },
    async check(t) {
      const { result } = await client.json('POST', `/api/databases/main/targets/${t.targetId}/check`, { profileId: t.profileId });
      return result;
    },
    async audit() {
      const { entries } = await client.json('GET', '/api/databases/main/audit?limit=500');
      return entries;
    },
    async cleanup() {
      await kernel.close();
      await cleanup();
    },
  };
}
