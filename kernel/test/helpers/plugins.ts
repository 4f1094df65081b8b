import { createInvocationScopes } from '../../src/invocations/index.js';
import { configuredAddress, createPluginSshServices, createSshSigner } from '../../src/transports/index.js';
import { fileURLToPath } from 'node:url';
import { createKernel, type Kernel } from '../../src/kernel.js';
import { createPluginHost, pinBuiltins, type PluginHost, type BwrapMode, type BuiltinPins } from '../../src/plugin-host/index.js';
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
  /**
   * Stops the kernel and its plugin host and starts new ones on the same data
   * directory (a gateway restart), with other pins if given; `main` is
   * unlocked again and its MCP switch turned on. The harness's kernel, ws and host are the new ones after.
   */
  restart(options?: { builtinPins?: BuiltinPins | string }): Promise<void>;
  cleanup(): Promise<void>;
}

export interface PluginHarnessOptions {
  fixtures?: string[];
  builtinRoot?: string;
  builtins?: string[];
  bwrap?: BwrapMode;
  supervisor?: Parameters<typeof createPluginHost>[0]['supervisor'];
  /** Give the plugin host the kernel's SSH signer and host-key check (kernel/sign, kernel/hostKey), as the gateway does. */
  ssh?: boolean;
  /** The built-ins' pins; by default the harness pins the built-in folders as they are now, as the kernel build does. */
  builtinPins?: BuiltinPins | string;
}

/** A kernel whose built-in connectors are the named fixture plugins (or the real ones from plugins/). */
export async function pluginHarness(options: PluginHarnessOptions): Promise<PluginHarness> {
  const { dir, cleanup } = await tempDir('aip-plugins-');
  // The gateway log, as tests see it: bounded like the real one (which goes to stderr).
  const logs: string[] = [];
  const log = (line: string) => {
    logs.push(line);
    if (logs.length > 2000) logs.shift();
  };
  const builtinRoot = options.builtinRoot ?? FIXTURES;
  const builtins = options.builtins ?? options.fixtures ?? [];
  const start = async (builtinPins: BuiltinPins | string) => {
    const scopes = createInvocationScopes();
    let made: ReturnType<typeof createKernel> | undefined;
    const ssh = options.ssh
      ? createPluginSshServices({ signer: createSshSigner({ scopes, keys: (database) => made!.workspace(database).sshKeys }), hostKeys: (database) => made!.workspace(database).hostKeys, targetAddress: (database, targetId) => configuredAddress(made!.workspace(database).targets.getTarget(targetId)) })
      : undefined;
    const host = await createPluginHost({
      ...(ssh ? { ssh } : {}),
      dataDir: dir,
      scopes,
      clock: { now: () => Date.now() },
      log,
      kernelInfo: { name: 'aipermission-test', version: '0.0.0' },
      bwrap: options.bwrap ?? 'auto',
      builtinRoot,
      builtins,
      builtinPins,
      ...(options.supervisor ? { supervisor: options.supervisor } : {}),
    });
    made = createKernel({ dataDir: dir, plugins: host, log, scopes });
    return { host, kernel: made };
  };
  let { host, kernel } = await start(options.builtinPins ?? (await pinBuiltins(builtinRoot, builtins)));
  await kernel.createDatabase('main', PASSWORD);
  let ws = await kernel.unlock('main', PASSWORD, 'operator:test');
  await ws.mcp.set(true, 'operator:test');
  let n = 0;
  const harness: PluginHarness = {
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
      const outcome = await kernel.pipeline.call(kernel.authenticateToken(t.token), { targetRef: t.targetRef, action, input }, callOptions.onProgress ? { onProgress: callOptions.onProgress } : {});
      if (outcome.kind !== 'request') throw new Error(`unexpected ${JSON.stringify(outcome)}`);
      return outcome.request;
    },
    async restart(restartOptions = {}) {
      await kernel.close();
      ({ host, kernel } = await start(restartOptions.builtinPins ?? options.builtinPins ?? (await pinBuiltins(builtinRoot, builtins))));
      ws = await kernel.unlock('main', PASSWORD, 'operator:test');
      await ws.mcp.set(true, 'operator:test');
      Object.assign(harness, { host, kernel, ws });
    },
    async cleanup() {
      await kernel.close();
      await cleanup();
    },
  };
  return harness;
}
