import type { Audit } from '../audit/index.js';
import type { SqlDb } from '../vault/index.js';
import { isoAt, type Clock } from '../lib/clock.js';
import { errors } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import { blobKeyType, sshFingerprint } from './ssh-wire.js';

export type HostKeyVerdict =
  | { trusted: true }
  | {
      trusted: false;
      /** unknown: never pinned; changed: another key is pinned; rejected: the operator refused this key. */
      status: 'host_key_unknown' | 'host_key_changed' | 'host_key_rejected';
      approvalId: string;
      host: string;
      port: number;
      keyType: string;
      fingerprint: string;
      pinnedFingerprint?: string;
      /** What the operator does next, in words. */
      message: string;
    };

export interface HostKeyApproval {
  id: string;
  host: string;
  port: number;
  keyType: string;
  fingerprint: string;
  reason: 'unknown' | 'changed';
  pinnedFingerprint: string | null;
  status: 'pending' | 'approved' | 'rejected';
  createdAt: string;
  decidedAt: string | null;
  decidedBy: string | null;
}

export interface PinnedHostKey {
  host: string;
  port: number;
  keyType: string;
  fingerprint: string;
  pinnedAt: string;
  pinnedBy: string;
}

export interface HostKeys {
  /** The verdict for a key offered by host:port; an untrusted one leaves (or reuses) an approval for the operator. */
  check(offer: { host: string; port: number; keyType: string; fingerprint: string }): Promise<HostKeyVerdict>;
  /** The same, from the raw key blob ssh2 hands a host verifier. */
  checkBlob(host: string, port: number, blob: Buffer): Promise<HostKeyVerdict>;
  pinned(): Promise<PinnedHostKey[]>;
  approvals(filter?: { status?: HostKeyApproval['status'] }): Promise<HostKeyApproval[]>;
  /** Pins the key. A changed key needs `replace: true`: a pin is never replaced by a plain approve. */
  approve(id: string, options: { replace?: boolean }, actor: string): Promise<HostKeyApproval>;
  reject(id: string, actor: string): Promise<HostKeyApproval>;
}

interface ApprovalRow {
  id: string;
  host: string;
  port: number;
  key_type: string;
  fingerprint: string;
  reason: 'unknown' | 'changed';
  pinned_fingerprint: string | null;
  status: HostKeyApproval['status'];
  created_at: string;
  decided_at: string | null;
  decided_by: string | null;
}

const toApproval = (r: ApprovalRow): HostKeyApproval => ({
  id: r.id,
  host: r.host,
  port: r.port,
  keyType: r.key_type,
  fingerprint: r.fingerprint,
  reason: r.reason,
  pinnedFingerprint: r.pinned_fingerprint,
  status: r.status,
  createdAt: r.created_at,
  decidedAt: r.decided_at,
  decidedBy: r.decided_by,
});

const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;

/**
 * known_hosts of one database and its host-key approvals (invariant 3):
 * every SSH connection the kernel opens or a plugin reports is checked here;
 * an unknown key becomes an approval for the operator, a changed one is
 * refused loudly and replaced only by an explicit, audited "replace".
 */
export async function createHostKeys(deps: { db: SqlDb; clock: Clock; audit: Pick<Audit, 'record'>; onApprovalCreated?: (approval: HostKeyApproval) => void }): Promise<HostKeys> {
  const { db, clock, audit } = deps;
  const findApproval = async (id: string) => {
    const row = await db.get<ApprovalRow>('SELECT * FROM ssh_host_key_approvals WHERE id = ?', [id]);
    if (!row) throw errors.notFound('Host-key approval', id);
    return row;
  };

  const hostKeys: HostKeys = {
    async check({ host, port, keyType, fingerprint }) {
      if (typeof host !== 'string' || host.length === 0 || host.length > 255) throw errors.invalid('host must be a host name or address.');
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw errors.invalid('port must be an integer from 1 to 65535.');
      if (typeof keyType !== 'string' || !/^[a-z0-9@.-]{1,64}$/.test(keyType)) throw errors.invalid('keyType must be an SSH key type such as ssh-ed25519.');
      if (typeof fingerprint !== 'string' || !FINGERPRINT.test(fingerprint)) throw errors.invalid('fingerprint must be SHA256:<43 base64 characters> as ssh-keygen -l prints it.');
      const pin = await db.get<{ key_type: string; fingerprint: string }>('SELECT key_type, fingerprint FROM ssh_host_keys WHERE host = ? AND port = ?', [host, port]);
      if (pin && pin.fingerprint === fingerprint && pin.key_type === keyType) return { trusted: true };
      const reason = pin ? 'changed' : 'unknown';
      const same = await db.get<ApprovalRow>(
        "SELECT * FROM ssh_host_key_approvals WHERE host = ? AND port = ? AND fingerprint = ? AND key_type = ? AND status IN ('pending', 'rejected') ORDER BY created_at DESC LIMIT 1",
        [host, port, fingerprint, keyType],
      );
      let row = same;
      if (!row) {
        const id = newId('hka');
        const now = isoAt(clock.now());
        await db.write(async (tx) => {
          await tx.run(
            "INSERT INTO ssh_host_key_approvals (id, host, port, key_type, fingerprint, reason, pinned_fingerprint, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
            [id, host, port, keyType, fingerprint, reason, pin?.fingerprint ?? null, now],
          );
          await audit.record(tx, {
            actor: 'system',
            event: reason === 'changed' ? 'host_key.changed' : 'host_key.unknown',
            payload: { approvalId: id, host, port, keyType, fingerprint, ...(pin ? { pinnedFingerprint: pin.fingerprint } : {}) },
          });
        });
        row = await findApproval(id);
        deps.onApprovalCreated?.(toApproval(row));
      }
      const where = `${host}:${port}`;
      const status = row.status === 'rejected' ? 'host_key_rejected' : reason === 'changed' ? 'host_key_changed' : 'host_key_unknown';
      const message =
        status === 'host_key_rejected'
          ? `The host key of ${where} (${keyType} ${fingerprint}) was rejected by the operator; the connection is refused.`
          : status === 'host_key_changed'
            ? `WARNING: the host key of ${where} CHANGED: pinned ${pin!.fingerprint}, offered ${keyType} ${fingerprint}. This can be a man-in-the-middle attack; the connection is refused. If the host was really re-keyed, check the new fingerprint on the host (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) and replace the pin: aip ssh hostkey approve ${row.id} --replace.`
            : `The host key of ${where} is not known yet (${keyType} ${fingerprint}); the connection is refused until the operator approves it: aip ssh hostkey approve ${row.id} (check the fingerprint on the host first).`;
      return { trusted: false, status, approvalId: row.id, host, port, keyType, fingerprint, ...(pin ? { pinnedFingerprint: pin.fingerprint } : {}), message };
    },
    async checkBlob(host, port, blob) {
      return hostKeys.check({ host, port, keyType: blobKeyType(blob), fingerprint: sshFingerprint(blob) });
    },
    async pinned() {
      const rows = await db.all<{ host: string; port: number; key_type: string; fingerprint: string; pinned_at: string; pinned_by: string }>('SELECT * FROM ssh_host_keys ORDER BY host, port');
      return rows.map((r) => ({ host: r.host, port: r.port, keyType: r.key_type, fingerprint: r.fingerprint, pinnedAt: r.pinned_at, pinnedBy: r.pinned_by }));
    },
    async approvals(filter = {}) {
      const rows = filter.status
        ? await db.all<ApprovalRow>('SELECT * FROM ssh_host_key_approvals WHERE status = ? ORDER BY created_at DESC, id', [filter.status])
        : await db.all<ApprovalRow>('SELECT * FROM ssh_host_key_approvals ORDER BY created_at DESC, id');
      return rows.map(toApproval);
    },
    async approve(id, { replace = false }, actor) {
      const row = await findApproval(id);
      if (row.status !== 'pending') throw errors.conflict('host_key_approval_decided', `Host-key approval ${id} was already ${row.status}.`);
      const now = isoAt(clock.now());
      await db.write(async (tx) => {
        const pin = await tx.get<{ fingerprint: string }>('SELECT fingerprint FROM ssh_host_keys WHERE host = ? AND port = ?', [row.host, row.port]);
        if (pin && pin.fingerprint !== row.fingerprint && !replace) {
          throw errors.conflict(
            'host_key_replace_required',
            `${row.host}:${row.port} already has a pinned key (${pin.fingerprint}); approving ${row.fingerprint} replaces it. Check the new fingerprint on the host, then approve with replace (aip ssh hostkey approve ${id} --replace).`,
          );
        }
        await tx.run(
          'INSERT INTO ssh_host_keys (host, port, key_type, fingerprint, pinned_at, pinned_by) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (host, port) DO UPDATE SET key_type = excluded.key_type, fingerprint = excluded.fingerprint, pinned_at = excluded.pinned_at, pinned_by = excluded.pinned_by',
          [row.host, row.port, row.key_type, row.fingerprint, now, actor],
        );
        await tx.run("UPDATE ssh_host_key_approvals SET status = 'approved', decided_at = ?, decided_by = ? WHERE id = ?", [now, actor, id]);
        await audit.record(tx, {
          actor,
          event: pin && pin.fingerprint !== row.fingerprint ? 'host_key.replaced' : 'host_key.pinned',
          payload: { approvalId: id, host: row.host, port: row.port, keyType: row.key_type, fingerprint: row.fingerprint, ...(pin ? { previousFingerprint: pin.fingerprint } : {}) },
        });
      });
      return toApproval(await findApproval(id));
    },
    async reject(id, actor) {
      const row = await findApproval(id);
      if (row.status !== 'pending') throw errors.conflict('host_key_approval_decided', `Host-key approval ${id} was already ${row.status}.`);
      const now = isoAt(clock.now());
      await db.write(async (tx) => {
        await tx.run("UPDATE ssh_host_key_approvals SET status = 'rejected', decided_at = ?, decided_by = ? WHERE id = ?", [now, actor, id]);
        await audit.record(tx, { actor, event: 'host_key.rejected', payload: { approvalId: id, host: row.host, port: row.port, keyType: row.key_type, fingerprint: row.fingerprint } });
      });
      return toApproval(await findApproval(id));
    },
  };
  return hostKeys;
}
