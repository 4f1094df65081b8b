/**
 * What the HTTP routes depend on, as narrow capabilities: each route group
 * names the few methods it calls (see the `*RouteDeps` of routes/*.ts), and
 * nothing here hands out a database, a vault handle or the pipeline. The
 * kernel-side implementation of all of it is in ../wiring.ts (the composition root), the one place
 * that knows today's Kernel and Workspace.
 */
import type { OperatorPrincipal } from '../lib/principal.js';
import type { ActionRequest } from '../approvals/index.js';
import type { ConnectionCheckResult } from '@aipermission/plugin-sdk/protocol';
import type { DatabaseInfo } from '../vault/index.js';

/** A per-database capability: the store (or the part of it a route uses) of one unlocked database. */
export type PerDatabase<T> = (database: string) => T;

/** What the 400/404/423/401 checks in front of a route ask about databases (helpers.ts). */
export interface DatabaseGuard {
  isUnlocked(name: string): boolean;
  /** Whether a database of that name exists, locked or not. */
  exists(name: string): Promise<boolean>;
  /** Whether any database is unlocked (a route without a session says 423 before 401). */
  anyUnlocked(): boolean;
}

/**
 * Creating, opening, closing and rekeying databases: what the system routes
 * ask of the databases' lifecycle. Every password check waits its turn at the
 * password gate; every change is on the audit record before it is made.
 */
export interface DatabaseLifecycle {
  list(): Promise<Array<DatabaseInfo & { unlocked: boolean }>>;
  unlockedNames(): string[];
  create(name: string, password: string): Promise<void>;
  /** Unlocks a database, or proves the password of one already unlocked. */
  unlock(name: string, password: string, actor: string): Promise<void>;
  /** Proves the password of an unlocked database (401 when wrong, audited). */
  provePassword(name: string, password: string, actor: string): Promise<void>;
  lock(name: string, actor: string): Promise<void>;
  /** Set at unlock when the file is older than what was last seen of it (a rollback). */
  rollbackWarning(name: string): string | undefined;
  /**
   * Proves the current password, then rekeys: `database.password_changing`
   * is written first (invariant 6, no audit, no action), a failure is
   * recorded as `database.password_change_failed`, success as `database.password_changed`.
   */
  changePassword(name: string, currentPassword: string, newPassword: string, actor: string): Promise<void>;
  /** Proves the password, records `database.exported`, then writes the `.aipdb` file. */
  exportTo(name: string, file: string, password: string, actor: string): Promise<void>;
  /** Imports an `.aipdb` file as a new (locked) database. */
  importFrom(file: string, password: string, name: string): Promise<DatabaseInfo>;
}

/** The operator's Run on a pending request: re-checks its snapshot, then executes the sealed input. */
export interface ApprovalsRunner {
  /** Waits up to `waitMs` for the action; a request still running is returned as `running`. */
  run(operator: OperatorPrincipal, requestId: string, note: string | null, options: { waitMs: number }): Promise<ActionRequest>;
  /**
   * The operator's own action on a target (the UI's and CLI's), through the
   * same pipeline as an agent's call: recorded, audited first, executed in an
   * invocation scope, bounded and redacted. No grant is needed, and the MCP
   * switch (which stops agents) does not hold it.
   */
  call(operator: OperatorPrincipal, input: { targetRef: string; action: string; input?: unknown; reason?: string; idempotencyKey?: string }, options: { waitMs: number }): Promise<ActionRequest>;
}

/**
 * A connection check of one target with one of its profiles, run by the
 * plugin host with that profile's credential lease; the result is redacted
 * and recorded (`target.checked`). The route never sees the lease.
 */
export interface ConnectionChecks {
  check(database: string, input: { targetId: string; profileId: string }, actor: string): Promise<ConnectionCheckResult>;
}
