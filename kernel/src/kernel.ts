import { isoAt, systemClock, type Clock } from './lib/clock.js';
import { errors, KernelError } from './lib/errors.js';
import { createFailureLimiter } from './lib/rate-limit.js';
import { createPasswordGate, PASSWORD_GATE_DEFAULTS, type PasswordGateOptions } from './lib/password-gate.js';
import { createHeadRecords, createVault, describeRollback, type DatabaseInfo, type Vault } from './vault/index.js';
import { createAuditVerifyPool, type AuditVerifyPool } from './audit/index.js';
import { createEventBus, type EventBus } from './events/index.js';
import { hashToken, tokenProblem, tokenRefusal, tokenState, TOKEN_PATTERN } from './tokens/index.js';
import { createStaticCatalog, mergeCatalogs, type ActionExecutor, type ConnectorCatalog } from './connectors/index.js';
import type { PluginHost } from './plugin-host/index.js';
import { openWorkspace, type Workspace } from './workspace/index.js';
import { createPipeline, type AuthenticatedToken, type Pipeline } from './pipeline/index.js';
import { ActionError } from '@aipermission/plugin-sdk';
import { createStderrLogger, type Logger } from './lib/log.js';

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
   * Password checks wait their turn per database (never refused for what
   * someone else guessed; see lib/password-gate.ts).
   */
  unlock(name: string, password: string, actor: string): Promise<Workspace>;
  /** Proves the password of an unlocked database (423 when it is locked). */
  provePassword(name: string, password: string, actor: string): Promise<Workspace>;
  lock(name: string, actor: string): Promise<void>;
  /** Set at unlock when the file is older than what was last seen of it (a rollback); cleared at lock. */
  rollbackWarning(name: string): string | undefined;
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
/** How long lock waits for running actions to finish before closing under them. */
const LOCK_DRAIN_MS = 5_000;

/** Used until a connector runtime is wired: the catalog is empty, so nothing ever reaches it. */
const noExecutor: ActionExecutor = {
  invoke: () => Promise.reject(new ActionError('system', 'No connector runtime is configured in this gateway.')),
};

export function createKernel(options: KernelOptions): Kernel {
  const clock = options.clock ?? systemClock;
  const log: Logger = options.log ?? createStderrLogger();
  const vault = createVault({ dataDir: options.dataDir, clock });
  const events = createEventBus();
  const catalog = options.catalog ?? createStaticCatalog();
  const pool: AuditVerifyPool = createAuditVerifyPool();
  const workspaces = new Map<string, Workspace>();
  const opening = new Map<string, Promise<Workspace>>();
  const tokenFailures = createFailureLimiter({ ...TOKEN_FAILURES, clock });
  const passwordGate = createPasswordGate({ ...PASSWORD_GATE_DEFAULTS, ...options.passwordGate });
  const lockListeners: Array<(name: string) => void> = [];
  const headRecords = createHeadRecords(options.dataDir);
  const rollbackWarnings = new Map<string, string>();
  /** Per unlocked database: its open count (as now in the file) and the audit seq last written outside. */
  const seen = new Map<string, { openCount: number; recordedSeq: number }>();

  /** Counts this open inside the file and compares the file with what was last seen of it outside. */
  const noteOpen = async (ws: Workspace): Promise<string | undefined> => {
    const record = await headRecords.read(ws.databaseId);
    const row = await ws.db.get<{ value: string }>("SELECT value FROM meta WHERE key = 'open_count'");
    const openCount = Number(row?.value ?? 0);
    const head = ws.audit.head();
    const warning = describeRollback(record, { openCount, auditSeq: head.seq, auditHash: head.hash });
    await ws.db.write((tx) => tx.run("INSERT INTO meta (key, value) VALUES ('open_count', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [String(openCount + 1)]));
    seen.set(ws.name, { openCount: openCount + 1, recordedSeq: -1 });
    return warning;
  };
  /** Keeps the outside record of a database at its current audit head (at unlock, lock, and every few seconds while it moves). */
  const recordHead = async (ws: Workspace) => {
    const state = seen.get(ws.name);
    const head = ws.audit.head();
    if (!state || state.recordedSeq === head.seq) return;
    await headRecords.write({ databaseId: ws.databaseId, openCount: state.openCount, auditSeq: head.seq, auditHash: head.hash, at: isoAt(clock.now()) });
    state.recordedSeq = head.seq;
  };

  const tooManyAttempts = (retryMs: number, what: string) =>
    new KernelError('too_many_attempts', `Too many failed ${what}. Try again in ${Math.ceil(retryMs / 1000)} s.`, {
      status: 429,
      details: { retryAfterSeconds: Math.ceil(retryMs / 1000) },
    });

  const wrongPassword = (name: string) => new KernelError('wrong_password', `That password does not open database "${name}".`, { status: 401 });

  const runMaintenance = async (ws: Workspace, retention: boolean) => {
    try {
      await recordHead(ws);
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
      const inProgress = opening.get(name);
      if (inProgress) {
        // Someone else is unlocking it right now: this caller still has to prove the password.
        await inProgress.catch(() => undefined);
        return kernel.unlock(name, password, actor);
      }
      const open = (async () => {
        let handle: Awaited<ReturnType<Vault['open']>> | undefined;
        const opened = await passwordGate.run(name, async () => {
          try {
            handle = await vault.open(name, password);
            return true;
          } catch (error) {
            if (error instanceof KernelError && error.code === 'wrong_password') return false;
            throw error;
          }
        });
        if (!opened || !handle) throw wrongPassword(name);
        try {
          const ws = await openWorkspace({
            handle,
            clock,
            events,
            pool,
            log,
            catalogFor: (approvals) => (options.plugins ? mergeCatalogs(catalog, options.plugins.catalogFor(() => approvals.list())) : catalog),
          });
          const rollback = await noteOpen(ws);
          await ws.audit.append({ actor, event: 'database.unlocked', subject: { database: name }, payload: { mcpRunning: ws.mcp.isRunning() } });
          if (rollback) {
            rollbackWarnings.set(name, rollback);
            log(`WARNING: database "${name}": ${rollback}`);
            await ws.audit.append({ actor: 'system', event: 'database.rollback_suspected', subject: { database: name }, payload: { message: rollback } });
          } else {
            rollbackWarnings.delete(name);
          }
          await recordHead(ws);
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
      if (!(await passwordGate.run(name, () => ws.handle.verifyPassword(password)))) {
        await ws.audit.append({ actor, event: 'auth.password_failed', subject: { database: name } }).catch(() => undefined);
        throw wrongPassword(name);
      }
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
        await recordHead(ws);
      } catch (error) {
        log(`could not audit locking "${name}"`, error);
      }
      rollbackWarnings.delete(name);
      seen.delete(name);
      await ws.handle.close();
      events.emit({ type: 'database.locked', database: name, at: isoAt(clock.now()) });
    },
    rollbackWarning: (name) => rollbackWarnings.get(name),
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
        const problem = typeof rawToken === 'string' ? tokenProblem(rawToken) : undefined;
        refuse('unknown', new KernelError('invalid_token', `The MCP token is ${problem ? `malformed: ${problem}` : 'missing'}. Ask your operator for a token.`, { status: 401 }));
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
