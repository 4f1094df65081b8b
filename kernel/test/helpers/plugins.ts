import { fileURLToPath } from 'node:url';
import { createKernel, type Kernel } from '../../src/kernel.js';
import { createPluginHost, type PluginHost, type BwrapMode } from '../../src/plugin-host/index.js';
import type { Workspace } from '../../src/workspace/index.js';
import type { ProgressUpdate } from '../../src/connectors/index.js';
import type { ActionRequest } from '../../src/approvals/index.js';
import { tempDir, PASSWORD } from './temp.js';

export const FIXTURES = fileURLToPath(new URL('../fixtures/plugins/', import.meta.url));

export interface PluginHarness {
  kernel: Kernel;
  ws: Workspace;
  host: PluginHost;
  dir: string;
  logs: string[];
  /** A target + password profile + token with an always_run grant on every action. */
  target(pluginId: string, options?: { config?: Record<string, unknown>; secret?: Record<string, unknown>; username?: string }): Promise<{ token: string; targetRef: string; targetId: string; profileId: string }>;
  call(
    t: { token: string; targetRef: string },
    action: string,
    input?: unknown,
    options?: { onProgress?: (update: ProgressUpdate) => void },
  ): Promise<ActionRequest>;
  cleanup(): Promise<void>;
}

/** A kernel whose built-in connectors are the named fixture plugins (or the real ones from plugins/). */
export async function pluginHarness(options: {
  fixtures?: string[];
  builtinRoot?: string;
  builtins?: string[];
  bwrap?: BwrapMode;
  supervisor?: Parameters<typeof createPluginHost>[0]['supervisor'];
}): Promise<PluginHarness> {
  const { dir, cleanup } = await tempDir('aip-plugins-');
  // The gateway log, as tests see it: bounded like the real one (which goes to stderr).
  const logs: string[] = [];
  const log = (line: string) => {
    logs.push(line);
    if (logs.length > 2000) logs.shift();
  };
  const host = await createPluginHost({
    dataDir: dir,
    clock: { now: () => Date.now() },
    log,
    kernelInfo: { name: 'aipermission-test', version: '0.0.0' },
    bwrap: options.bwrap ?? 'auto',
    builtinRoot: options.builtinRoot ?? FIXTURES,
    builtins: options.builtins ?? options.fixtures ?? [],
    ...(options.supervisor ? { supervisor: options.supervisor } : {}),
  });
  const kernel = createKernel({ dataDir: dir, plugins: host, log });
  await kernel.createDatabase('main', PASSWORD);
  const ws = await kernel.unlock('main', PASSWORD, 'operator:test');
  await ws.mcp.set(true, 'operator:test');
  let n = 0;
  return {
    kernel,
    ws,
    host,
    dir,
    logs,
    async target(pluginId, t = {}) {
      n += 1;
      const target = await ws.targets.createTarget({ kind: pluginId, name: `${pluginId}-${n}`, config: t.config ?? { host: '127.0.0.1' } }, 'operator:test');
      const profile = await ws.targets.createProfile(
        target.id,
        { label: 'default', credentialKind: 'password', config: t.username ? { username: t.username } : {}, secret: t.secret ?? { password: 'Fixture-Secret-771' } },
        'operator:test',
      );
      const token = await ws.tokens.create({ name: `agent-${n}` }, 'operator:test');
      await ws.grants.set({ tokenId: token.token.id, targetId: target.id, profileId: profile.id, action: '*', rule: 'always_run' }, 'operator:test');
      return { token: token.secret, targetRef: `${pluginId}:${target.id}:${profile.id}`, targetId: target.id, profileId: profile.id };
    },
    async call(t, action, input = {}, callOptions = {}) {
      const outcome = await kernel.pipeline.call(t.token, { targetRef: t.targetRef, action, input }, callOptions.onProgress ? { onProgress: callOptions.onProgress } : {});
      if (outcome.kind !== 'request') throw new Error(`unexpected ${JSON.stringify(outcome)}`);
      return outcome.request;
    },
    async cleanup() {
      await kernel.close();
      await cleanup();
    },
  };
}
