import { isoAt, systemClock, type Clock } from './lib/clock.js';
import { errors, KernelError } from './lib/errors.js';
import { createFailureLimiter } from './lib/rate-limit.js';
import { createVault, type DatabaseInfo, type Vault } from './vault/index.js';
import { createAuditVerifyPool, type AuditVerifyPool } from './audit/index.js';
import { createEventBus, type EventBus } from './events/index.js';
import { hashToken, tokenRefusal, tokenState, TOKEN_PATTERN } from './tokens/index.js';
import { createStaticCatalog, mergeCatalogs, type ActionExecutor, type ConnectorCatalog } from './connectors/index.js';
import type { PluginHost } from './plugin-host/index.js';
import { openWorkspace, type Workspace } from './workspace/index.js';
import { createPipeline, type AuthenticatedToken, type Pipeline } from './pipeline/index.js';
import { ActionError } from '@aipermission/plugin-sdk';

export type Logger = (message: string, error?: unknown) => void;

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
}

export interface Kernel {
  readonly dataDir: string;
  readonly vault: Vault;
  readonly events: EventBus;
  readonly catalog: ConnectorCatalog;
  readonly plugins: PluginHost | undefined;
  readonly clock: Clock;
  readonly pipeline: Pipeline;
  readonly log: Logger;
  listDatabases(): Promise<Array<DatabaseInfo & { unlocked: boolean }>>;
  /** Creates a database (first-run setup or another workspace). */
  createDatabase(name: string, password: string): Promise<void>;
  /**
   * Unlocks a database, or proves the password of one already unlocked.
   * Failed proofs are rate-limited per database.
   */
  unlock(name: string, password: string, actor: string): Promise<Workspace>;
  /** Proves the password of an unlocked database (423 when it is locked). */
  provePassword(name: string, password: string, actor: string): Promise<Workspace>;
  lock(name: string, actor: string): Promise<void>;
  /** The unlocked workspace, or 423 when the database is locked. */
  workspace(name: string): Workspace;
  unlocked(): Workspace[];
  isUnlocked(name: string): boolean;
  /** MCP token authentication across every unlocked database. */
  authenticateToken(rawToken: string): AuthenticatedToken;
  /** Runs TTL expiry now (the scheduler does this every few seconds). */
  expireNow(): Promise<void>;
  close(): Promise<void>;
  onLocked(listener: (name: string) => void): void;
}

/** Ten failed token authentications a minute: a real client never fails like that, a guesser is slowed to uselessness. */
const TOKEN_FAILURES = { maxFailures: 10, windowMs: 60_000 };
/** Five wrong passwords a minute per database; each is a full key derivation anyway. */
const PASSWORD_FAILURES = { maxFailures: 5, windowMs: 60_000 };
/** How long lock waits for running actions to finish before closing under them. */
const LOCK_DRAIN_MS = 5_000;

/** Used until a connector runtime is wired: the catalog is empty, so nothing ever reaches it. */
const noExecutor: ActionExecutor = {
  invoke: () => Promise.reject(new ActionError('system', 'No connector runtime is configured in this gateway.')),
};

export function createKernel(options: KernelOptions): Kernel {
  const clock = options.clock ?? systemClock;
  const log: Logger =
    options.log ??
    ((message, error) => {
      const detail = error instanceof Error ? `: ${error.message}` : '';
      process.stderr.write(`[aip] ${message}${detail}\n`);
    });
  const vault = createVault({ dataDir: options.dataDir, clock });
  const events = createEventBus();
  const catalog = options.catalog ?? createStaticCatalog();
  const pool: AuditVerifyPool = createAuditVerifyPool();
  const workspaces = new Map<string, Workspace>();
  const opening = new Map<string, Promise<Workspace>>();
  const tokenFailures = createFailureLimiter({ ...TOKEN_FAILURES, clock });
  const passwordFailures = createFailureLimiter({ ...PASSWORD_FAILURES, clock });
  const lockListeners: Array<(name: string) => void> = [];

  const tooManyAttempts = (retryMs: number, what: string) =>
    new KernelError('too_many_attempts', `Too many failed ${what}. Try again in ${Math.ceil(retryMs / 1000)} s.`, {
      status: 429,
      details: { retryAfterSeconds: Math.ceil(retryMs / 1000) },
    });

  const checkPasswordLimit = (name: string) => {
    const wait = passwordFailures.retryAfterMs(name);
    if (wait > 0) throw tooManyAttempts(wait, 'password attempts for this database');
  };

  const runMaintenance = async (ws: Workspace, retention: boolean) => {
    try {
      await ws.expirePending();
      if (retention) await ws.runRetention();
    } catch (error) {
      if (!ws.db.closed) log(`maintenance of database "${ws.name}" failed`, error);
    }
  };

  const expiryTimer = setInterval(() => {
    for (const ws of workspaces.values()) void runMaintenance(ws, false);
  }, options.expiryIntervalMs ?? 5_000);
  expiryTimer.unref();
  const retentionTimer = setInterval(() => {
    for (const ws of workspaces.values()) void runMaintenance(ws, true);
  }, options.retentionIntervalMs ?? 3_600_000);
  retentionTimer.unref();

  const kernel: Kernel = {
    dataDir: options.dataDir,
    vault,
    events,
    catalog,
    plugins: options.plugins,
    clock,
    log,
    pipeline: undefined as unknown as Pipeline,
    async listDatabases() {
      return (await vault.list()).map((info) => ({ ...info, unlocked: workspaces.has(info.name) }));
    },
    createDatabase: (name, password) => vault.create(name, password),
    async unlock(name, password, actor) {
      const existing = workspaces.get(name);
      if (existing) return kernel.provePassword(name, password, actor);
      checkPasswordLimit(name);
      const inProgress = opening.get(name);
      if (inProgress) {
        // Someone else is unlocking it right now: this caller still has to prove the password.
        await inProgress.catch(() => undefined);
        return kernel.unlock(name, password, actor);
      }
      const open = (async () => {
        let handle;
        try {
          handle = await vault.open(name, password);
        } catch (error) {
          if (error instanceof KernelError && error.code === 'wrong_password') passwordFailures.recordFailure(name);
          throw error;
        }
        passwordFailures.reset(name);
        try {
          const ws = await openWorkspace({
            handle,
            clock,
            events,
            pool,
            log,
            catalogFor: (approvals) => (options.plugins ? mergeCatalogs(catalog, options.plugins.catalogFor(() => approvals.list())) : catalog),
          });
          await ws.audit.append({ actor, event: 'database.unlocked', subject: { database: name }, payload: { mcpRunning: ws.mcp.isRunning() } });
          workspaces.set(name, ws);
          events.emit({ type: 'database.unlocked', database: name, at: isoAt(clock.now()) });
          void runMaintenance(ws, true);
          return ws;
        } catch (error) {
          await handle.close().catch(() => undefined);
          throw error;
        }
      })();
      opening.set(name, open);
      try {
        return await open;
      } finally {
        opening.delete(name);
      }
    },
    async provePassword(name, password, actor) {
      const ws = kernel.workspace(name);
      checkPasswordLimit(name);
      if (!(await ws.handle.verifyPassword(password))) {
        passwordFailures.recordFailure(name);
        await ws.audit.append({ actor, event: 'auth.password_failed', subject: { database: name } }).catch(() => undefined);
        throw new KernelError('wrong_password', `That password does not open database "${name}".`, { status: 401 });
      }
      passwordFailures.reset(name);
      return ws;
    },
    async lock(name, actor) {
      const ws = workspaces.get(name);
      if (!ws) throw errors.locked(name);
      // Unregister first: from now on no new call can start in this database.
      workspaces.delete(name);
      for (const listener of lockListeners) listener(name);
      await ws.inflight.drain(LOCK_DRAIN_MS);
      try {
        await ws.audit.append({ actor, event: 'database.locked', subject: { database: name } });
      } catch (error) {
        log(`could not audit locking "${name}"`, error);
      }
      await ws.handle.close();
      events.emit({ type: 'database.locked', database: name, at: isoAt(clock.now()) });
    },
    workspace(name) {
      const ws = workspaces.get(name);
      if (!ws) throw errors.locked(name);
      return ws;
    },
    unlocked: () => [...workspaces.values()],
    isUnlocked: (name) => workspaces.has(name),
    authenticateToken(rawToken) {
      // Failures are limited per kind of failure, never globally: a client
      // hammering with a bad or revoked token must not lock out the agents
      // whose tokens are valid (a valid token is a 256-bit secret, so the
      // limit guards the audit log and the CPU, not against guessing).
      const refuse = (key: string, error: KernelError): never => {
        const wait = tokenFailures.retryAfterMs(key);
        if (wait > 0) throw tooManyAttempts(wait, 'token authentications');
        tokenFailures.recordFailure(key);
        throw error;
      };
      if (typeof rawToken !== 'string' || !TOKEN_PATTERN.test(rawToken)) {
        refuse('unknown', new KernelError('invalid_token', 'The MCP token is missing or malformed. Ask your operator for a token (it starts with aip_).', { status: 401 }));
      }
      const hash = hashToken(rawToken);
      const now = clock.now();
      const matches: AuthenticatedToken[] = [];
      for (const ws of workspaces.values()) {
        const token = ws.tokens.findByHash(hash);
        if (token) matches.push({ workspace: ws, token });
      }
      // Only copies that still work count: revoking or expiring all but one resolves a conflict.
      const active = matches.filter((m) => tokenState(m.token, now) === 'active');
      if (active.length > 1) {
        // Never a guess about which database was meant.
        throw new KernelError(
          'token_conflict',
          `This token is valid in more than one unlocked database (${active.map((m) => m.workspace.name).join(', ')}), so it cannot be used. Ask your operator to revoke it in all but one, or to lock the others.`,
          { status: 409 },
        );
      }
      if (active[0]) return active[0];
      const known = matches[0];
      if (!known) {
        return refuse('unknown', new KernelError('invalid_token', 'The MCP token is not valid (unknown, or its database is locked). Ask your operator.', { status: 401 }));
      }
      return refuse(`token:${known.token.id}`, tokenRefusal(tokenState(known.token, now) as 'expired' | 'revoked'));
    },
    async expireNow() {
      for (const ws of workspaces.values()) await ws.expirePending();
    },
    onLocked: (listener) => lockListeners.push(listener),
    async close() {
      clearInterval(expiryTimer);
      clearInterval(retentionTimer);
      for (const name of [...workspaces.keys()]) await kernel.lock(name, 'system');
      await options.plugins?.stopAll();
      await pool.destroy();
    },
  };
  const inProcess = options.executor ?? noExecutor;
  const plugins = options.plugins;
  (kernel as { pipeline: Pipeline }).pipeline = createPipeline({
    clock,
    // Plugins run in the plugin host; in-process connectors (tests) in the given executor.
    executor: {
      invoke: (invocation) =>
        plugins && (invocation.connector.source === 'builtin' || invocation.connector.source === 'installed') ? plugins.executor.invoke(invocation) : inProcess.invoke(invocation),
    },
    authenticate: (raw) => kernel.authenticateToken(raw),
    log,
  });
  return kernel;
}
