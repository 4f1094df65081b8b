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
import { createTransports } from './transports/index.js';

export interface GatewayOptions extends Omit<KernelOptions, 'dataDir' | 'plugins'> {
  dataDir?: string;
  host?: string;
  port?: number;
  /** `off` runs plugins under Node's permission model only (no bubblewrap). */
  bwrap?: BwrapMode;
  /** Where the built-in connectors live (default: this repository's plugins/). */
  builtinPluginsDir?: string;
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
  try {
    plugins = await createPluginHost({
      dataDir,
      clock,
      log,
      scopes,
      transports,
      kernelInfo: { name: 'aipermission', version: VERSION },
      ...(options.bwrap ? { bwrap: options.bwrap } : {}),
      ...(options.builtinPluginsDir ? { builtinRoot: options.builtinPluginsDir } : {}),
      ...(options.pluginSupervisor ? { supervisor: options.pluginSupervisor } : {}),
    });
  } catch (error) {
    await dirLock.release();
    throw error;
  }
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
  let closing: Promise<void> | undefined;
  return {
    kernel,
    server,
    url: server.url,
    close() {
      closing ??= (async () => {
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
