/**
 * The composition root: wires the kernel's createX(deps) factories into a
 * running gateway. Nothing else reaches for globals; tests build exactly the
 * pieces they need from the same factories.
 */
import { createKernel, type Kernel, type KernelOptions } from './kernel.js';
import { createPluginHost, type BwrapMode, type PluginHostOptions } from './plugin-host/index.js';
import { systemClock } from './lib/clock.js';
import { createHttpApp, listenOnLoopback, loopbackBindAddress, type RunningServer } from './http/index.js';
import { httpDepsFromKernel } from './wiring.js';
import { acquireDataDirLock, resolveDataDir } from './vault/index.js';
import { VERSION } from './version.js';
import { hardenProcess } from './lib/harden.js';
import { createStderrLogger } from './lib/log.js';
import { createInvocationScopes } from './invocations/index.js';
import { configuredAddress, createPluginSshServices, createSshSigner, createTransports } from './transports/index.js';
import { watchForStalls, type Stall } from './lib/stall-watch.js';

export interface GatewayOptions extends Omit<KernelOptions, 'dataDir' | 'plugins'> {
  dataDir?: string;
  host?: string;
  port?: number;
  /** `off` runs plugins under Node's permission model only (no bubblewrap). */
  bwrap?: BwrapMode;
  /** Where the built-in connectors live (default: this repository's plugins/). */
  builtinPluginsDir?: string;
  /** Which folders there are built-ins (default: the shipped connectors; tests name fixture plugins). */
  builtinPlugins?: readonly string[];
  /** The built-ins' build-time pins (default: the file the kernel build wrote). */
  builtinPins?: PluginHostOptions['builtinPins'];
  /** Plugin supervision bounds (tests shorten them). */
  pluginSupervisor?: PluginHostOptions['supervisor'];
  /** The built web UI served at `/` (default: the repository's ui/dist). */
  uiDir?: string;
}

export interface Gateway {
  kernel: Kernel;
  server: RunningServer;
  url: string;
  close(): Promise<void>;
}

export const DEFAULT_PORT = 3210;
export const DEFAULT_HOST = '127.0.0.1';

/** Starts the gateway: kernel + HTTP app on a loopback address. */
export async function startGateway(options: GatewayOptions = {}): Promise<Gateway> {
  const dataDir = resolveDataDir(options.dataDir);
  const clock = options.clock ?? systemClock;
  // Every error keeps its cause and stack in the log (the client is told the details are there).
  const log = options.log ?? createStderrLogger();
  // Invariant 8: before the first password can arrive, nothing outside may read or debug this process.
  for (const problem of hardenProcess().problems) log(`WARNING: ${problem}`);
  // Invariant 7 first: a non-loopback address is refused before anything is opened.
  const host = loopbackBindAddress(options.host ?? DEFAULT_HOST);
  // One gateway per data directory (a second one is refused, naming the first).
  const dirLock = await acquireDataDirLock(dataDir);
  // One registry of invocation scopes: the pipeline opens them, the plugin host answers plugin messages from them.
  const scopes = createInvocationScopes({ log });
  // The kernel owns transports (invariant 3): each invocation's endpoint is opened here and owned by its scope.
  const transports = createTransports({ log });
  let plugins: Awaited<ReturnType<typeof createPluginHost>>;
  // kernel/sign and kernel/hostKey (invariants 2 and 3): the keys and pins of the invocation's own database.
  // The kernel is made after the plugin host; these are asked only during an invocation, when it exists.
  const signer = createSshSigner({ scopes, keys: (database) => kernel.workspace(database).sshKeys });
  const ssh = createPluginSshServices({
    signer,
    hostKeys: (database) => kernel.workspace(database).hostKeys,
    targetAddress: (database, targetId) => configuredAddress(kernel.workspace(database).targets.getTarget(targetId)),
  });
  try {
    plugins = await createPluginHost({
      dataDir,
      clock,
      log,
      scopes,
      ssh,
      transports,
      kernelInfo: { name: 'aipermission', version: VERSION },
      ...(options.bwrap ? { bwrap: options.bwrap } : {}),
      ...(options.builtinPluginsDir ? { builtinRoot: options.builtinPluginsDir } : {}),
      ...(options.builtinPlugins ? { builtins: options.builtinPlugins } : {}),
      ...(options.builtinPins ? { builtinPins: options.builtinPins } : {}),
      ...(options.pluginSupervisor ? { supervisor: options.pluginSupervisor } : {}),
    });
  } catch (error) {
    await dirLock.release();
    throw error;
  }
  // Said once at start where plugins are less confined than they could be (aip doctor says how to fix each).
  if (plugins.sandbox.identity === 'root, with every capability (no bubblewrap)') log('WARNING: the gateway runs as root without bubblewrap: its plugins run as root with every capability. Run it as a normal user, or install bubblewrap.');
  if (plugins.sandbox.memoryLimitBytes === null) log('WARNING: prlimit (util-linux) is missing: only the V8 heap of a plugin is capped, not its Buffers, open files or file sizes.');
  const kernel = createKernel({ ...options, dataDir, clock, log, plugins, scopes });
  let port = options.port ?? DEFAULT_PORT;
  const { app, mcp } = createHttpApp({ deps: httpDepsFromKernel(kernel), getPort: () => port, version: VERSION, ...(options.uiDir ? { uiDir: options.uiDir } : {}) });
  let server: RunningServer;
  try {
    server = await listenOnLoopback(app.fetch, { host, port, onUpgrade: (request, socket, head) => mcp.handleUpgrade(request, socket, head) });
  } catch (error) {
    await kernel.close();
    await dirLock.release();
    throw error;
  }
  port = server.port;
  await dirLock.publish({ url: server.url, port: server.port, version: VERSION });
  // Issue 10 item 9: a stop of the gateway (a plugin without a pid namespace can send it SIGSTOP) is said and recorded.
  const stopWatching = watchForStalls((stall: Stall) => {
    const how = stall.kind === 'signalled' ? 'was stopped by a signal (SIGSTOP or SIGTSTP) and continued' : 'did not run (stopped or blocked)';
    log(`WARNING: the gateway ${how} for about ${stall.gapMs} ms. Without bubblewrap any plugin can signal the gateway; aip doctor says how to get bubblewrap, and requireBwrapForThirdParty refuses to run third-party connectors without it.`);
    for (const ws of kernel.unlocked()) {
      ws.audit.append({ actor: 'system', event: 'gateway.stalled', payload: { kind: stall.kind, gapMs: stall.gapMs, pluginsCanSignalGateway: plugins.sandbox.canSignalGateway } }).catch((error: unknown) => log('could not record a gateway stall in the audit', error));
    }
  });
  let closing: Promise<void> | undefined;
  return {
    kernel,
    server,
    url: server.url,
    close() {
      closing ??= (async () => {
        stopWatching();
        await mcp.closeAll();
        await server.close();
        await kernel.close();
        await dirLock.release();
      })();
      return closing;
    },
  };
}

export { createKernel, VERSION };
export type { Kernel, KernelOptions };
export { createHttpApp, listenOnLoopback } from './http/index.js';
export { httpDepsFromKernel } from './wiring.js';
export { createStaticCatalog, defineStaticConnector } from './connectors/index.js';
export type { ActionExecutor, ConnectorCatalog, ConnectorDescriptor, Invocation } from './connectors/index.js';
