import { isoAt, type Clock } from '../lib/clock.js';
import { errors, KernelError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import type { PasswordGate } from '../lib/password-gate.js';
import { describeRollback, type DatabaseInfo, type HeadRecords, type OpenDatabase, type Vault } from '../vault/index.js';
import type { EventBus } from '../events/index.js';
import type { Workspace } from '../workspace/index.js';

/**
 * The lifecycle of the named databases: create, unlock (the password gate,
 * rollback detection), prove a password, lock (drain, audit, close), and the
 * maintenance each unlocked one gets on a schedule. It is the one module that
 * holds the vault's open handles; everything else reaches a database's
 * stores through the narrow accessors the composition root builds from it.
 */
export interface Databases {
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
  exists(name: string): Promise<boolean>;
  /**
   * Changes an unlocked database's password, audit-first (invariant 6, no
   * audit, no action): proven through the password gate, recorded
   * (`database.password_changing`), then made; a failure is recorded too.
   */
  changePassword(name: string, currentPassword: string, newPassword: string, actor: string): Promise<void>;
  /** Writes an `.aipdb` copy of an unlocked database: proven through the gate and recorded first. */
  exportTo(name: string, file: string, password: string, actor: string): Promise<void>;
  /** Imports an `.aipdb` file as a new database. */
  importFrom(file: string, password: string, name: string): Promise<DatabaseInfo>;
  /** Runs TTL expiry now (the scheduler does this every few seconds). */
  expireNow(): Promise<void>;
  onLocked(listener: (name: string) => void): void;
  /** Locks everything and stops the schedule. */
  close(): Promise<void>;
}

/** How long lock waits for running actions to finish before closing under them. */
const LOCK_DRAIN_MS = 5_000;

export function createDatabases(deps: {
  vault: Pick<Vault, 'list' | 'create' | 'open' | 'exists' | 'importDatabase'>;
  clock: Clock;
  log: Logger;
  events: EventBus;
  passwordGate: PasswordGate;
  headRecords: HeadRecords;
  /** Composes one opened database's services. */
  compose: (handle: OpenDatabase) => Promise<Workspace>;
  /** How often pending approvals are checked for TTL expiry. */
  expiryIntervalMs: number;
  /** How often retention runs (it also runs at every unlock). */
  retentionIntervalMs: number;
}): Databases {
  const { vault, clock, log, events, passwordGate, headRecords } = deps;
  const workspaces = new Map<string, Workspace>();
  const opening = new Map<string, Promise<Workspace>>();
  const lockListeners: Array<(name: string) => void> = [];
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
  }, deps.expiryIntervalMs);
  expiryTimer.unref();
  const retentionTimer = setInterval(() => {
    for (const ws of workspaces.values()) void runMaintenance(ws, true);
  }, deps.retentionIntervalMs);
  retentionTimer.unref();

  const databases: Databases = {
    async listDatabases() {
      return (await vault.list()).map((info) => ({ ...info, unlocked: workspaces.has(info.name) }));
    },
    createDatabase: (name, password) => vault.create(name, password),
    exists: (name) => vault.exists(name),
    async changePassword(name, currentPassword, newPassword, actor) {
      const ws = await databases.provePassword(name, currentPassword, actor);
      await ws.audit.append({ actor, event: 'database.password_changing', subject: { database: name } });
      try {
        await ws.handle.changePassword(currentPassword, newPassword);
      } catch (error) {
        await ws.audit
          .append({ actor, event: 'database.password_change_failed', subject: { database: name }, payload: { code: (error as { code?: string }).code ?? 'internal_error' } })
          .catch(() => undefined);
        throw error;
      }
      await ws.audit.append({ actor, event: 'database.password_changed', subject: { database: name } });
    },
    async exportTo(name, file, password, actor) {
      // Through the password gate like every other check: no unthrottled way to test a guess.
      const ws = await databases.provePassword(name, password, actor);
      await ws.audit.append({ actor, event: 'database.exported', subject: { database: name } });
      await ws.handle.exportTo(file, password);
    },
    importFrom: (file, password, name) => vault.importDatabase(file, password, name),
    async unlock(name, password, actor) {
      const existing = workspaces.get(name);
      if (existing) return databases.provePassword(name, password, actor);
      const inProgress = opening.get(name);
      if (inProgress) {
        // Someone else is unlocking it right now: this caller still has to prove the password.
        await inProgress.catch(() => undefined);
        return databases.unlock(name, password, actor);
      }
      const open = (async () => {
        let handle: OpenDatabase | undefined;
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
          const ws = await deps.compose(handle);
          const rollback = await noteOpen(ws);
          await ws.audit.append({ actor, event: 'database.unlocked', subject: { database: name }, payload: { mcpRunning: ws.mcp.isRunning() } });
          if (handle.recovered) {
            // An interrupted password change was finished by this unlock: which password is now in force is on the record.
            const outcome = handle.recovered;
            log(`database "${name}": an interrupted password change was ${outcome === 'completed' ? 'completed (the new password is in force)' : outcome === 'abandoned' ? 'abandoned (the old password stays)' : 'reverted (the old password is back)'}`);
            await ws.audit.append({ actor, event: 'database.password_change_recovered', subject: { database: name }, payload: { outcome } });
          }
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
      const ws = databases.workspace(name);
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
    async expireNow() {
      for (const ws of workspaces.values()) await ws.expirePending();
    },
    onLocked: (listener) => lockListeners.push(listener),
    async close() {
      clearInterval(expiryTimer);
      clearInterval(retentionTimer);
      for (const name of [...workspaces.keys()]) await databases.lock(name, 'system');
    },
  };
  return databases;
}
