/**
 * The composition root of the kernel's core: it makes each module with its
 * createX(deps) factory, giving each only what it uses, and wires them. No
 * module is handed the result: it is for main.ts (which adds the HTTP and
 * MCP edges) and for tests. Reading this file top to bottom is reading the
 * kernel's dependency graph.
 */
import { systemClock, type Clock } from './lib/clock.js';
import { createPasswordGate, PASSWORD_GATE_DEFAULTS, type PasswordGateOptions } from './lib/password-gate.js';
import { createStderrLogger, type Logger } from './lib/log.js';
import type { AgentPrincipal } from './lib/principal.js';
import { createHeadRecords, createVault, type Vault } from './vault/index.js';
import { createAuditVerifyPool } from './audit/index.js';
import { createEventBus, type EventBus } from './events/index.js';
import { createTokenAuthenticator, type TokenAuthenticator } from './tokens/index.js';
import { createStaticCatalog, mergeCatalogs, type ActionExecutor, type ConnectorCatalog, type ConnectorDescriptor } from './connectors/index.js';
import type { ConnectionCheckResult } from '@aipermission/plugin-sdk/protocol';
import { newId } from './lib/ids.js';
import { KernelError } from './lib/errors.js';
import type { PluginHost } from './plugin-host/index.js';
import { openWorkspace, type Workspace } from './workspace/index.js';
import { createDatabases, type Databases } from './databases/index.js';
import { createInvocationScopes, type InvocationScopes } from './invocations/index.js';
import { createPipeline, type Pipeline, type PipelineDatabase } from './pipeline/index.js';
import { ActionError } from '@aipermission/plugin-sdk';

export type { Logger };

export interface KernelOptions {
  dataDir: string;
  clock?: Clock;
  /** In-process connectors (tests); plugins come from `plugins`. */
  catalog?: ConnectorCatalog;
  executor?: ActionExecutor;
  /** The plugin host: built-in and installed connectors as sandboxed processes. */
  plugins?: PluginHost;
  log?: Logger;
  /** How often pending approvals are checked for TTL expiry. 5 s keeps expiry prompt at the cost of one indexed query. */
  expiryIntervalMs?: number;
  /** How often retention runs (it also runs at every unlock). Hourly: retention is measured in days. */
  retentionIntervalMs?: number;
  /** The pace of password checks (tests shorten it). */
  passwordGate?: Partial<PasswordGateOptions>;
  /** The registry of invocation scopes (the gateway shares it with the plugin host). */
  scopes?: InvocationScopes;
}

/** What the composition made, for main.ts and tests: the modules themselves, not a service to call through. */
export interface Kernel extends Databases {
  readonly dataDir: string;
  readonly vault: Vault;
  readonly events: EventBus;
  readonly catalog: ConnectorCatalog;
  readonly plugins: PluginHost | undefined;
  readonly clock: Clock;
  readonly log: Logger;
  readonly pipeline: Pipeline;
  readonly tokens: TokenAuthenticator;
  readonly scopes: InvocationScopes;
  /** The MCP edge's one authentication of a bearer token (tokens.authenticate). */
  authenticateToken(rawToken: unknown): AgentPrincipal;
  /** A plugin's connection check of one target with one profile, in an invocation scope of its own. */
  checkConnection(database: string, connector: ConnectorDescriptor, target: { id: string; config: Record<string, unknown> }, profileId: string): Promise<ConnectionCheckResult>;
}

/** Used until a connector runtime is wired: the catalog is empty, so nothing ever reaches it. */
const noExecutor: ActionExecutor = {
  invoke: () => Promise.reject(new ActionError('system', 'No connector runtime is configured in this gateway.')),
};

/** The parts of one database the pipeline uses (pipeline/ports.ts), and nothing else of it. */
function pipelineView(ws: Workspace): PipelineDatabase {
  return {
    name: ws.name,
    mcp: ws.mcp,
    targets: ws.targets,
    grants: ws.grants,
    redaction: ws.redaction,
    catalog: ws.catalog,
    approvals: ws.approvals,
    admissions: ws.admissions,
    audit: ws.audit,
    tokens: ws.tokens,
    settings: ws.settings,
    inflight: ws.inflight,
    credentials: ws.credentials,
  };
}

export function createKernel(options: KernelOptions): Kernel {
  const clock = options.clock ?? systemClock;
  const log: Logger = options.log ?? createStderrLogger();
  const vault = createVault({ dataDir: options.dataDir, clock, log });
  const events = createEventBus();
  const catalog = options.catalog ?? createStaticCatalog();
  const pool = createAuditVerifyPool();
  const plugins = options.plugins;

  const databases = createDatabases({
    vault,
    clock,
    log,
    events,
    passwordGate: createPasswordGate({ ...PASSWORD_GATE_DEFAULTS, ...options.passwordGate }),
    headRecords: createHeadRecords(options.dataDir),
    compose: (handle) =>
      openWorkspace({
        handle,
        clock,
        events,
        pool,
        log,
        catalogFor: (approvals) => (plugins ? mergeCatalogs(catalog, plugins.catalogFor(() => approvals.list())) : catalog),
      }),
    expiryIntervalMs: options.expiryIntervalMs ?? 5_000,
    retentionIntervalMs: options.retentionIntervalMs ?? 3_600_000,
  });

  // A locked database's leases leave the plugins too: the processes that served its profiles stop (plugin-host/partitions.ts).
  databases.onLocked((name) => {
    plugins?.stopDatabase(name).catch((error: unknown) => log(`could not stop the plugin processes of database ${name}`, error));
  });

  const tokens = createTokenAuthenticator({
    clock,
    unlocked: () => databases.unlocked().map((ws) => ({ database: ws.name, tokens: ws.tokens })),
    storeOf: (name) => (databases.isUnlocked(name) ? databases.workspace(name).tokens : undefined),
  });

  const scopes = options.scopes ?? createInvocationScopes({ log });
  const views = new WeakMap<Workspace, PipelineDatabase>();
  const inProcess = options.executor ?? noExecutor;
  const pipeline = createPipeline({
    clock,
    log,
    scopes,
    // Plugins run in the plugin host; in-process connectors (tests) in the given executor.
    executor: {
      invoke: (invocation) =>
        plugins && (invocation.connector.source === 'builtin' || invocation.connector.source === 'installed') ? plugins.executor.invoke(invocation) : inProcess.invoke(invocation),
      handedSecrets: () => [...(plugins?.executor.handedSecrets?.() ?? []), ...(inProcess.handedSecrets?.() ?? [])],
    },
    database(name) {
      const ws = databases.workspace(name);
      let view = views.get(ws);
      if (!view) views.set(ws, (view = pipelineView(ws)));
      return view;
    },
    currentToken: (principal) => tokens.current(principal),
  });

  return {
    ...databases,
    dataDir: options.dataDir,
    vault,
    events,
    catalog,
    plugins,
    clock,
    log,
    pipeline,
    tokens,
    scopes,
    authenticateToken: (raw) => tokens.authenticate(raw),
    async checkConnection(database, connector, target, profileId) {
      if (!plugins) throw new KernelError('plugins_unavailable', 'This gateway runs without a plugin host.', { status: 409 });
      const credential = databases.workspace(database).credentials.open(profileId);
      const scope = scopes.open({ invocationId: newId('chk'), connectorId: connector.id, database, targetId: target.id, profileId, credential });
      try {
        return await plugins.checkConnection(connector, target.config, scope);
      } finally {
        await scope.dispose();
      }
    },
    async close() {
      await databases.close();
      await plugins?.stopAll();
      await pool.destroy();
    },
  };
}
