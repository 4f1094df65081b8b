import { isoAt, type Clock } from '../lib/clock.js';
import { errors } from '../lib/errors.js';
import type { SqlDb } from '../vault/index.js';
import type { Audit } from '../audit/index.js';
import type { PluginApproval } from './approval-check.js';

interface Row {
  plugin_id: string;
  version: string;
  integrity: string;
  manifest_hash: string;
  entry: string | null;
  approved_at: string;
  approved_by: string;
}

export interface StoredPluginApproval extends PluginApproval {
  approvedAt: string;
  approvedBy: string;
}

/** The installed plugins one database trusts, pinned to version, integrity, manifest and entry; mirrored in memory. */
export interface PluginApprovalStore {
  list(): readonly StoredPluginApproval[];
  get(pluginId: string): StoredPluginApproval | undefined;
  approve(approval: PluginApproval, actor: string): Promise<StoredPluginApproval>;
  revoke(pluginId: string, actor: string): Promise<void>;
}

const toApproval = (row: Row): StoredPluginApproval => ({
  pluginId: row.plugin_id,
  version: row.version,
  integrity: row.integrity,
  manifestHash: row.manifest_hash,
  entry: row.entry,
  approvedAt: row.approved_at,
  approvedBy: row.approved_by,
});

export async function createPluginApprovalStore(deps: { db: SqlDb; clock: Clock; audit: Pick<Audit, 'record'> }): Promise<PluginApprovalStore> {
  const { db, clock, audit } = deps;
  let mirror = (await db.all<Row>('SELECT * FROM plugin_approvals ORDER BY plugin_id')).map(toApproval);
  return {
    list: () => mirror,
    get: (pluginId) => mirror.find((a) => a.pluginId === pluginId),
    async approve(approval, actor) {
      const row: Row = {
        plugin_id: approval.pluginId,
        version: approval.version,
        integrity: approval.integrity,
        manifest_hash: approval.manifestHash,
        entry: approval.entry ?? null,
        approved_at: isoAt(clock.now()),
        approved_by: actor,
      };
      await db.write(async (tx) => {
        const previous = await tx.get<Row>('SELECT * FROM plugin_approvals WHERE plugin_id = ?', [approval.pluginId]);
        await tx.run(
          `INSERT INTO plugin_approvals (plugin_id, version, integrity, manifest_hash, entry, approved_at, approved_by) VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (plugin_id) DO UPDATE SET version = excluded.version, integrity = excluded.integrity, manifest_hash = excluded.manifest_hash,
             entry = excluded.entry, approved_at = excluded.approved_at, approved_by = excluded.approved_by`,
          [row.plugin_id, row.version, row.integrity, row.manifest_hash, row.entry, row.approved_at, row.approved_by],
        );
        await audit.record(tx, {
          actor,
          event: 'plugin.approved',
          payload: { pluginId: row.plugin_id, version: row.version, integrity: row.integrity, manifestHash: row.manifest_hash, ...(row.entry !== null ? { entry: row.entry } : {}), ...(previous ? { previousVersion: previous.version } : {}) },
        });
        tx.afterCommit(() => {
          mirror = [...mirror.filter((a) => a.pluginId !== row.plugin_id), toApproval(row)].sort((a, b) => a.pluginId.localeCompare(b.pluginId));
        });
      });
      return toApproval(row);
    },
    async revoke(pluginId, actor) {
      await db.write(async (tx) => {
        const result = await tx.run('DELETE FROM plugin_approvals WHERE plugin_id = ?', [pluginId]);
        if (result.changes === 0) throw errors.notFound('Plugin approval', pluginId);
        await audit.record(tx, { actor, event: 'plugin.revoked', payload: { pluginId } });
        tx.afterCommit(() => {
          mirror = mirror.filter((a) => a.pluginId !== pluginId);
        });
      });
    },
  };
}
