import { isoAt, type Clock } from '../lib/clock.js';
import type { OpenDatabase, SqlDb } from '../vault/index.js';
import { createAudit, type Audit, type AuditVerifyPool } from '../audit/index.js';
import { createSettingsStore, type SettingsStore } from '../settings/index.js';
import { createRedactionStore, type RedactionStore } from '../redaction/index.js';
import { createTokenStore, type TokenStore } from '../tokens/index.js';
import { createTargetStore, type TargetStore } from '../targets/index.js';
import { createGrantStore, type GrantStore } from '../grants/index.js';
import { createApprovalStore, type ApprovalStore } from '../approvals/index.js';
import { createMessageStore, type MessageStore } from '../messages/index.js';
import { createMcpSwitch, type McpSwitch } from '../mcp-switch/index.js';
import type { EventBus } from '../events/index.js';
import type { ConnectorCatalog } from '../connectors/index.js';
import { createPluginApprovalStore, type PluginApprovalStore } from '../plugin-host/index.js';
import { errors } from '../lib/errors.js';

/** Counts actions in flight so locking a database can wait for them. */
export interface InflightTracker {
  begin(): () => void;
  readonly count: number;
  /** Resolves when nothing is in flight, or after timeoutMs. */
  drain(timeoutMs: number): Promise<boolean>;
}

function createInflightTracker(): InflightTracker {
  let count = 0;
  let waiters: Array<() => void> = [];
  return {
    begin() {
      count += 1;
      let ended = false;
      return () => {
        if (ended) return;
        ended = true;
        count -= 1;
        if (count === 0) {
          const current = waiters;
          waiters = [];
          for (const wake of current) wake();
        }
      };
    },
    get count() {
      return count;
    },
    drain(timeoutMs) {
      if (count === 0) return Promise.resolve(true);
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), timeoutMs);
        waiters.push(() => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    },
  };
}

export interface MaintenanceReport {
  expired: number;
  auditPruned: number;
  historyPruned: number;
  messagesPruned: number;
}

/** One unlocked database with every per-database service wired to it. */
export interface Workspace {
  readonly name: string;
  readonly databaseId: string;
  readonly handle: OpenDatabase;
  readonly db: SqlDb;
  readonly catalog: ConnectorCatalog;
  readonly audit: Audit;
  readonly settings: SettingsStore;
  readonly redaction: RedactionStore;
  readonly tokens: TokenStore;
  readonly targets: TargetStore;
  readonly grants: GrantStore;
  readonly approvals: ApprovalStore;
  readonly messages: MessageStore;
  readonly mcp: McpSwitch;
  /** The installed plugins this database approved (built-ins need no approval). */
  readonly pluginApprovals: PluginApprovalStore;
  readonly inflight: InflightTracker;
  readonly unlockedAt: string;
  /** TTL expiry of pending approvals; cheap, run every few seconds. */
  expirePending(): Promise<number>;
  /** Retention (audit behind a checkpoint, history, messages), run on a schedule. */
  runRetention(): Promise<Omit<MaintenanceReport, 'expired'>>;
}

const DAY_MS = 86_400_000;

export async function openWorkspace(deps: {
  handle: OpenDatabase;
  clock: Clock;
  /** The connectors this database may use, given its plugin approvals. */
  catalogFor: (approvals: PluginApprovalStore) => ConnectorCatalog;
  events: EventBus;
  pool: AuditVerifyPool;
  log?: (message: string, error?: unknown) => void;
}): Promise<Workspace> {
  const { handle, clock, events } = deps;
  const db = handle.db;
  const name = handle.name;
  // Composition order matters only for construction; the late-bound getters
  // (redactor for the audit, audit for redaction rules) break the cycle.
  let redaction: RedactionStore | undefined;
  const audit = await createAudit({ db, clock, pool: deps.pool, redactor: () => redaction!.current(), ...(deps.log ? { log: deps.log } : {}) });
  const settings = await createSettingsStore({ db, clock, audit });
  redaction = await createRedactionStore({ db, clock, builtin: settings.get().builtinRedaction, audit: () => audit });
  settings.onChange((values) => redaction!.setBuiltin(values.builtinRedaction));
  // approvals needs tokens, targets and grants for snapshots, and they need
  // approvals to stale pending requests when they change: bind late.
  let approvals: ApprovalStore | undefined;
  const pluginApprovals = await createPluginApprovalStore({ db, clock, audit });
  const catalog = deps.catalogFor(pluginApprovals);
  const tokens = await createTokenStore({ db, clock, audit, onChanged: async (tx, tokenId) => void (await approvals!.revalidatePending(tx, { tokenId })) });
  const messages = await createMessageStore({ db, clock, audit, events, database: name, redactor: () => redaction!.current() });

  let grants: GrantStore | undefined;
  const targets = await createTargetStore({
    db,
    clock,
    audit,
    sealer: handle.sealer,
    catalog,
    onChanged: async (tx, change) => {
      await approvals!.staleFor(tx, { targetId: change.targetId, ...(change.profileId ? { profileId: change.profileId } : {}) }, change.reason);
    },
    onDeleted: (tx) => grants!.reload(tx),
  });
  grants = await createGrantStore({
    db,
    clock,
    audit,
    checkRefs: async (input) => {
      tokens.require(input.tokenId);
      const target = await targets.requireTarget(input.targetId);
      const profile = await targets.requireProfile(input.profileId);
      if (profile.targetId !== target.id) throw errors.invalid(`Profile ${profile.id} belongs to another target, not ${target.id}.`);
      const connector = catalog.get(target.kind);
      if (connector && input.action !== '*' && !connector.actions.has(input.action)) {
        throw errors.invalid(`The ${target.kind} connector has no action "${input.action}". Its actions: ${[...connector.actions.keys()].join(', ')}.`);
      }
    },
    onChanged: async (tx, change) => {
      await approvals!.revalidatePending(tx, change);
    },
  });
  approvals = createApprovalStore({
    db,
    clock,
    audit,
    events,
    sealer: handle.sealer,
    messages,
    database: name,
    sources: { tokens, grants, targets, catalog, clock },
    redactText: (text) => redaction!.current().text(text),
    ...(deps.log ? { log: deps.log } : {}),
  });
  const mcp = createMcpSwitch({ database: name, initial: settings.get().mcpAutostart, audit, events, clock });

  const workspace: Workspace = {
    name,
    databaseId: handle.databaseId,
    handle,
    db,
    catalog,
    audit,
    settings,
    redaction,
    tokens,
    targets,
    grants,
    approvals,
    messages,
    mcp,
    pluginApprovals,
    inflight: createInflightTracker(),
    unlockedAt: isoAt(clock.now()),
    expirePending: () => approvals!.expireDue(),
    async runRetention() {
      const values = settings.get();
      const now = clock.now();
      const report = { auditPruned: 0, historyPruned: 0, messagesPruned: 0 };
      if (values.historyRetentionDays > 0) report.historyPruned = await approvals!.pruneFinished(isoAt(now - values.historyRetentionDays * DAY_MS));
      if (values.messageRetentionDays > 0) {
        const cutoff = isoAt(now - values.messageRetentionDays * DAY_MS);
        report.messagesPruned = await db.write(async (tx) => {
          const deleted = await tx.run('DELETE FROM messages WHERE created_at < ?', [cutoff]);
          if (deleted.changes > 0) await audit.record(tx, { actor: 'system', event: 'messages.pruned', payload: { deletedMessages: deleted.changes, cutoff } });
          return deleted.changes;
        });
      }
      // The audit is pruned last so the checkpoint it appends is newer than
      // the entries the other prunes just wrote.
      if (values.auditRetentionDays > 0) report.auditPruned = (await audit.prune(isoAt(now - values.auditRetentionDays * DAY_MS))).deleted;
      return report;
    },
  };
  // Requests that were running when the process died have an unknown outcome, not an error.
  await approvals.recoverInterrupted();
  return workspace;
}
