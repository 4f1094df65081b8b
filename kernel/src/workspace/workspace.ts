import { isoAt, type Clock } from '../lib/clock.js';
import { createHooks } from '../lib/hooks.js';
import { createInflightTracker, type InflightTracker } from '../lib/inflight.js';
import type { OpenDatabase, SqlDb, SqlTx } from '../vault/index.js';
import { createAudit, type Audit, type AuditVerifyPool } from '../audit/index.js';
import { createSettingsStore, type SettingsStore } from '../settings/index.js';
import { createRedactionStore, createRedactorCell, type RedactionStore } from '../redaction/index.js';
import { createTokenStore, type TokenStore } from '../tokens/index.js';
import { createTargetStore, profileSecretAad, type TargetChange, type TargetStore } from '../targets/index.js';
import { createGrantStore, type GrantChange, type GrantStore } from '../grants/index.js';
import { createAdmissions, createApprovalStore, type Admissions, type ApprovalStore } from '../approvals/index.js';
import { createMessageStore, type MessageStore } from '../messages/index.js';
import { createMcpSwitch, type McpSwitch } from '../mcp-switch/index.js';
import { createCredentials, type Credentials } from '../credentials/index.js';
import type { EventBus } from '../events/index.js';
import type { ConnectorCatalog } from '../connectors/index.js';
import { createPluginApprovalStore, type PluginApprovalStore } from '../plugin-host/index.js';
import { createHostKeys, createSshKeyStore, type HostKeys, type SshKeyStore } from '../transports/index.js';
import { errors } from '../lib/errors.js';
import { runInChunks } from '../lib/chunked.js';

export type { InflightTracker };

export interface MaintenanceReport {
  expired: number;
  auditPruned: number;
  historyPruned: number;
  messagesPruned: number;
}

/**
 * One unlocked database with its per-database services composed. This is
 * the composition's record, held by the databases module and the composition
 * root only: no module is handed a Workspace. Each gets the one store (or
 * the few methods) it uses, built from it in kernel.ts / main.ts. The vault
 * handle and the raw database are here for the databases module (open count,
 * rekey, export) and for tests that tamper with the file on purpose.
 */
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
  readonly admissions: Admissions;
  readonly messages: MessageStore;
  readonly mcp: McpSwitch;
  readonly credentials: Credentials;
  /** The installed plugins this database approved (built-ins need no approval). */
  readonly pluginApprovals: PluginApprovalStore;
  /** The SSH keys of this database, sealed (invariant 2): shown as public key and fingerprint, used only by the signer. */
  readonly sshKeys: SshKeyStore;
  /** This database's known_hosts and host-key approvals (invariant 3). */
  readonly hostKeys: HostKeys;
  readonly inflight: InflightTracker;
  readonly unlockedAt: string;
  /** TTL expiry of pending approvals; cheap, run every few seconds. */
  expirePending(): Promise<number>;
  /** Retention (audit behind a checkpoint, history, messages), run on a schedule. */
  runRetention(): Promise<Omit<MaintenanceReport, 'expired'>>;
}

const DAY_MS = 86_400_000;

/**
 * Composes one database's services. The order is the dependency order, with
 * no placeholders: the redactor lives in a cell both the audit and the
 * redaction store are given, and the stores whose changes stale pending
 * approvals announce them through hooks the approvals store is added to once
 * it exists.
 */
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
  const log = deps.log ? { log: deps.log } : {};

  const redactor = createRedactorCell(true);
  const audit = await createAudit({ db, clock, pool: deps.pool, redactor: redactor.current, ...log });
  const settings = await createSettingsStore({ db, clock, audit });
  const redaction = await createRedactionStore({ db, clock, builtin: settings.get().builtinRedaction, audit, cell: redactor });
  settings.onChange((values) => redaction.setBuiltin(values.builtinRedaction));
  const pluginApprovals = await createPluginApprovalStore({ db, clock, audit });
  const catalog = deps.catalogFor(pluginApprovals);
  const messages = await createMessageStore({ db, clock, audit, events, database: name, redactor: redactor.current });

  // What changes the approval context of pending requests (invariant 5).
  const tokenChanged = createHooks<[SqlTx, string]>();
  const targetChanged = createHooks<[SqlTx, TargetChange]>();
  const targetDeleted = createHooks<[SqlTx]>();
  const grantChanged = createHooks<[SqlTx, GrantChange]>();

  const tokens = await createTokenStore({ db, clock, audit, onChanged: tokenChanged.run });
  const targets = await createTargetStore({ db, clock, audit, sealer: handle.sealer, catalog, onChanged: targetChanged.run, onDeleted: targetDeleted.run });
  const grants = await createGrantStore({
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
    onChanged: grantChanged.run,
  });
  targetDeleted.add((tx) => grants.reload(tx));
  const approvals = createApprovalStore({
    db,
    clock,
    audit,
    events,
    sealer: handle.sealer,
    messages,
    database: name,
    sources: { tokens, grants, targets, catalog, clock },
    redactText: (text) => redaction.current().text(text),
    ...log,
  });
  tokenChanged.add(async (tx, tokenId) => void (await approvals.revalidatePending(tx, { tokenId })));
  grantChanged.add(async (tx, change) => void (await approvals.revalidatePending(tx, change)));
  targetChanged.add(async (tx, change) => void (await approvals.staleFor(tx, { targetId: change.targetId, ...(change.profileId ? { profileId: change.profileId } : {}) }, change.reason)));
  const admissions = createAdmissions({
    db,
    clock,
    audit,
    store: approvals,
    messages,
    seal: (text, aad) => handle.sealer.seal(text, aad),
    approvalTtlSeconds: () => settings.get().approvalTtlSeconds,
  });
  // The only reader of sealed profile secrets at run time.
  const credentials = createCredentials({ sealedProfile: (id) => targets.sealedProfile(id), unseal: (sealed, profileId) => handle.sealer.open(sealed, profileSecretAad(profileId)) });
  const sshKeys = await createSshKeyStore({ db, clock, audit, sealer: handle.sealer });
  const hostKeys = await createHostKeys({ db, clock, audit });
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
    admissions,
    messages,
    mcp,
    credentials,
    pluginApprovals,
    sshKeys,
    hostKeys,
    inflight: createInflightTracker(),
    unlockedAt: isoAt(clock.now()),
    expirePending: () => approvals.expireDue(),
    async runRetention() {
      const values = settings.get();
      const now = clock.now();
      const report = { auditPruned: 0, historyPruned: 0, messagesPruned: 0 };
      if (values.historyRetentionDays > 0) report.historyPruned = await approvals.pruneFinished(isoAt(now - values.historyRetentionDays * DAY_MS));
      if (values.messageRetentionDays > 0) {
        const cutoff = isoAt(now - values.messageRetentionDays * DAY_MS);
        // Oldest first through the created_at index, in short chunks: retention never holds the database for long.
        const run = await runInChunks({
          db,
          step: async (tx, maxRows) =>
            (await tx.run('DELETE FROM messages WHERE seq IN (SELECT seq FROM messages WHERE created_at < ? ORDER BY created_at LIMIT ?)', [cutoff, maxRows])).changes,
        });
        report.messagesPruned = run.rows;
        if (run.rows > 0) await db.write((tx) => audit.record(tx, { actor: 'system', event: 'messages.pruned', payload: { deletedMessages: run.rows, cutoff } }));
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
