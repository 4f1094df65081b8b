import type { SealedProfile } from '../credentials/index.js';
import { canonicalJson } from '../lib/canonical.mjs';
import { isoAt, type Clock } from '../lib/clock.js';
import { errors, KernelError } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import type { SqlDb, SqlQueries, SqlTx, Sealer } from '../vault/index.js';
import type { Audit } from '../audit/index.js';
import { credentialKindsOf, describeCredentialKinds, installedKinds, type ConnectorCatalog } from '../connectors/index.js';
import { closestName } from '../lib/closest-name.js';

export interface Target {
  id: string;
  kind: string;
  name: string;
  description: string;
  config: Record<string, unknown>;
  configRevision: number;
  createdAt: string;
  updatedAt: string;
}

/** A credential profile as anyone may see it: the names of its secret fields, never their values. */
export interface Profile {
  id: string;
  targetId: string;
  label: string;
  credentialKind: string;
  config: Record<string, unknown>;
  secretFields: string[];
  configRevision: number;
  secretRevision: number;
  createdAt: string;
  updatedAt: string;
}


export interface TargetChange {
  targetId: string;
  profileId?: string;
  reason: string;
}

export interface TargetStore {
  listTargets(): Promise<Target[]>;
  getTarget(id: string): Promise<Target | undefined>;
  requireTarget(id: string): Promise<Target>;
  createTarget(input: { kind: string; name: string; description?: string; config?: Record<string, unknown> }, actor: string): Promise<Target>;
  updateTarget(id: string, patch: { name?: string; description?: string; config?: Record<string, unknown> }, actor: string): Promise<Target>;
  deleteTarget(id: string, actor: string): Promise<void>;
  listProfiles(targetId?: string): Promise<Profile[]>;
  getProfile(id: string): Promise<Profile | undefined>;
  requireProfile(id: string): Promise<Profile>;
  createProfile(
    targetId: string,
    input: { label: string; credentialKind?: string; config?: Record<string, unknown>; secret?: Record<string, unknown> },
    actor: string,
  ): Promise<Profile>;
  updateProfile(
    id: string,
    patch: { label?: string; config?: Record<string, unknown>; secret?: Record<string, unknown> },
    actor: string,
  ): Promise<Profile>;
  deleteProfile(id: string, actor: string): Promise<void>;
  /** Opens a profile's sealed secret for one invocation. */
  /** A profile with its secret still sealed, for the credentials module (the only one that opens it at run time). */
  sealedProfile(profileId: string): SealedProfile | undefined;
  /** Synchronous reads from the in-memory mirror, for the hot path. */
  cachedTarget(id: string): Target | undefined;
  cachedProfile(id: string): Profile | undefined;
  /**
   * The revision counters approval snapshots bind to; null for a part that no
   * longer exists. Pass `q` inside a transaction (to see its uncommitted
   * changes); without it the in-memory mirror answers.
   */
  revisions(
    q: SqlQueries | undefined,
    targetId: string,
    profileId: string,
  ): Promise<{ target: { kind: string; configRevision: number } | null; profile: { configRevision: number; secretRevision: number } | null }>;
}

interface TargetRow {
  id: string;
  kind: string;
  name: string;
  description: string;
  config: string;
  config_revision: number;
  created_at: string;
  updated_at: string;
}

interface ProfileRow {
  id: string;
  target_id: string;
  label: string;
  credential_kind: string;
  config: string;
  secret: Uint8Array | null;
  secret_fields: string;
  config_revision: number;
  secret_revision: number;
  created_at: string;
  updated_at: string;
}

const toTarget = (row: TargetRow): Target => ({
  id: row.id,
  kind: row.kind,
  name: row.name,
  description: row.description,
  config: JSON.parse(row.config) as Record<string, unknown>,
  configRevision: row.config_revision,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

const toProfile = (row: ProfileRow): Profile => ({
  id: row.id,
  targetId: row.target_id,
  label: row.label,
  credentialKind: row.credential_kind,
  config: JSON.parse(row.config) as Record<string, unknown>,
  secretFields: JSON.parse(row.secret_fields) as string[],
  configRevision: row.config_revision,
  secretRevision: row.secret_revision,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

const KIND_PATTERN = /^[a-z][a-z0-9_-]{0,63}$/;
/** The additional data a profile's sealed secret is bound to (the credentials module opens it with the same). */
export const profileSecretAad = (profileId: string) => `profile:${profileId}:secret`;
const secretAad = profileSecretAad;

function checkName(name: string, what: string): string {
  const trimmed = name.trim();
  if (trimmed.length === 0 || trimmed.length > 120) throw errors.invalid(`A ${what} must be 1-120 characters.`);
  return trimmed;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Targets and their credential profiles, stored generically: kind = connector
 * id, config JSON, sealed secret JSON, and revision counters that approval
 * snapshots bind to. When the connector of a kind is installed, its manifest
 * schemas validate what is stored here.
 */
export async function createTargetStore(deps: {
  db: SqlDb;
  clock: Clock;
  audit: Pick<Audit, 'record'>;
  sealer: Sealer;
  catalog: ConnectorCatalog;
  /** Called inside the change's transaction so pending approvals go stale atomically with the edit. */
  onChanged: (tx: SqlTx, change: TargetChange) => Promise<void>;
  /** Called inside a delete's transaction: the cascade removed grants too. */
  onDeleted: (tx: SqlTx) => Promise<void>;
}): Promise<TargetStore> {
  const { db, clock, audit, sealer, catalog } = deps;
  // The whole (small) targets and profiles tables, mirrored in memory and
  // updated after each commit, so a call reads no rows to find its target,
  // profile or credential lease.
  const targets = new Map<string, TargetRow>();
  const profiles = new Map<string, ProfileRow>();
  for (const row of await db.all<TargetRow>('SELECT * FROM targets')) targets.set(row.id, row);
  for (const row of await db.all<ProfileRow>('SELECT * FROM profiles')) profiles.set(row.id, row);
  const byName = <T extends { name?: string; label?: string }>(a: T, b: T) => (a.name ?? a.label ?? '').localeCompare(b.name ?? b.label ?? '');

  const validateTarget = (kind: string, config: Record<string, unknown>) => {
    const connector = catalog.get(kind);
    const problem = connector?.validateTargetConfig(config);
    if (problem) throw new KernelError('invalid_target_config', `The ${kind} target configuration is invalid: ${problem}`);
  };
  /** A target of a kind no installed connector provides could never run anything: refused, with the kinds there are. */
  const requireKnownKind = (kind: string) => {
    if (catalog.get(kind)) return;
    const kinds = installedKinds(catalog);
    const guess = closestName(kind, kinds);
    throw new KernelError(
      'unknown_connector_kind',
      `No installed connector provides the kind "${kind}".${guess ? ` Did you mean "${guess}"?` : ''} ${
        kinds.length ? `Installed kinds: ${kinds.join(', ')}.` : 'No connectors are installed.'
      } Install another with aip plugin install.`,
      { status: 400 },
    );
  };
  /**
   * Checks a profile's fields against its credential kind. When the kind was
   * left out (the connector's first was taken) or is not one the connector
   * has, the error lists every kind with its fields, so the operator sees at
   * once that e.g. a Redis without a password takes the kind "none".
   */
  const validateCredential = (kind: string, credentialKind: string, config: Record<string, unknown>, secret: Record<string, unknown>, defaulted: boolean) => {
    const connector = catalog.get(kind);
    if (!connector) return;
    const kinds = credentialKindsOf(connector);
    const known = kinds.length === 0 || kinds.some((k) => k.kind === credentialKind);
    const listing = () => `The ${kind} connector's credential kinds: ${describeCredentialKinds(kinds)}. Name one as credentialKind (aip profile add --credential-kind KIND).`;
    if (!known) {
      const guess = closestName(credentialKind, kinds.map((k) => k.kind));
      throw new KernelError('invalid_credential', `The ${kind} connector has no credential kind "${credentialKind}".${guess ? ` Did you mean "${guess}"?` : ''} ${listing()}`);
    }
    const problem = connector.validateCredential(credentialKind, config, secret);
    if (problem) {
      const hint = defaulted && kinds.length > 1 ? ` No credential kind was given, so the first, "${credentialKind}", was used. ${listing()}` : '';
      throw new KernelError('invalid_credential', `The ${kind} credential profile is invalid: ${problem}${hint}`);
    }
  };

  const store: TargetStore = {
    async listTargets() {
      return [...targets.values()].sort(byName).map(toTarget);
    },
    async getTarget(id) {
      return store.cachedTarget(id);
    },
    cachedTarget(id) {
      const row = targets.get(id);
      return row ? toTarget(row) : undefined;
    },
    cachedProfile(id) {
      const row = profiles.get(id);
      return row ? toProfile(row) : undefined;
    },
    async requireTarget(id) {
      const target = await store.getTarget(id);
      if (!target) throw errors.notFound('Target', id);
      return target;
    },
    async createTarget(input, actor) {
      if (!KIND_PATTERN.test(input.kind)) throw errors.invalid(`${JSON.stringify(input.kind)} is not a connector kind (lowercase letters, digits, - and _).`);
      requireKnownKind(input.kind);
      const config = input.config ?? {};
      if (!isPlainObject(config)) throw errors.invalid('A target config must be a JSON object.');
      validateTarget(input.kind, config);
      const now = isoAt(clock.now());
      const row: TargetRow = {
        id: newId('tgt'),
        kind: input.kind,
        name: checkName(input.name, 'target name'),
        description: input.description?.trim() ?? '',
        config: canonicalJson(config),
        config_revision: 1,
        created_at: now,
        updated_at: now,
      };
      await db.write(async (tx) => {
        if (await tx.get('SELECT 1 FROM targets WHERE name = ?', [row.name])) {
          throw errors.conflict('target_exists', `A target named "${row.name}" already exists. Pick another name.`);
        }
        await tx.run(
          'INSERT INTO targets (id, kind, name, description, config, config_revision, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
          [row.id, row.kind, row.name, row.description, row.config, row.config_revision, row.created_at, row.updated_at],
        );
        await audit.record(tx, { actor, event: 'target.created', subject: { targetId: row.id }, payload: { kind: row.kind, name: row.name, config } });
        tx.afterCommit(() => targets.set(row.id, row));
      });
      return toTarget(row);
    },
    async updateTarget(id, patch, actor) {
      return db.write(async (tx) => {
        const row = await tx.get<TargetRow>('SELECT * FROM targets WHERE id = ?', [id]);
        if (!row) throw errors.notFound('Target', id);
        const next = { ...row };
        if (patch.name !== undefined) next.name = checkName(patch.name, 'target name');
        if (patch.description !== undefined) next.description = patch.description.trim();
        let configChanged = false;
        if (patch.config !== undefined) {
          if (!isPlainObject(patch.config)) throw errors.invalid('A target config must be a JSON object.');
          validateTarget(row.kind, patch.config);
          const encoded = canonicalJson(patch.config);
          if (encoded !== row.config) {
            next.config = encoded;
            next.config_revision = row.config_revision + 1;
            configChanged = true;
          }
        }
        if (next.name !== row.name && (await tx.get('SELECT 1 FROM targets WHERE name = ? AND id <> ?', [next.name, id]))) {
          throw errors.conflict('target_exists', `A target named "${next.name}" already exists. Pick another name.`);
        }
        next.updated_at = isoAt(clock.now());
        await tx.run('UPDATE targets SET name = ?, description = ?, config = ?, config_revision = ?, updated_at = ? WHERE id = ?', [
          next.name,
          next.description,
          next.config,
          next.config_revision,
          next.updated_at,
          id,
        ]);
        await audit.record(tx, {
          actor,
          event: 'target.updated',
          subject: { targetId: id },
          payload: { name: next.name, configRevision: next.config_revision, ...(configChanged ? { config: JSON.parse(next.config) } : {}) },
        });
        // Any edit, even a rename, invalidates what the operator saw when approving.
        await deps.onChanged(tx, { targetId: id, reason: configChanged ? 'the target configuration changed' : 'the target was edited' });
        tx.afterCommit(() => targets.set(id, next));
        return toTarget(next);
      });
    },
    async deleteTarget(id, actor) {
      await db.write(async (tx) => {
        const row = await tx.get<TargetRow>('SELECT * FROM targets WHERE id = ?', [id]);
        if (!row) throw errors.notFound('Target', id);
        await deps.onChanged(tx, { targetId: id, reason: 'the target was deleted' });
        await tx.run('DELETE FROM targets WHERE id = ?', [id]);
        await audit.record(tx, { actor, event: 'target.deleted', subject: { targetId: id }, payload: { kind: row.kind, name: row.name } });
        await deps.onDeleted(tx);
        tx.afterCommit(() => {
          targets.delete(id);
          for (const [profileId, profile] of profiles) if (profile.target_id === id) profiles.delete(profileId);
        });
      });
    },
    async listProfiles(targetId) {
      return [...profiles.values()]
        .filter((row) => targetId === undefined || row.target_id === targetId)
        .sort((a, b) => a.target_id.localeCompare(b.target_id) || a.label.localeCompare(b.label))
        .map(toProfile);
    },
    async getProfile(id) {
      return store.cachedProfile(id);
    },
    async requireProfile(id) {
      const profile = await store.getProfile(id);
      if (!profile) throw errors.notFound('Credential profile', id);
      return profile;
    },
    async createProfile(targetId, input, actor) {
      const target = await store.requireTarget(targetId);
      const config = input.config ?? {};
      const secret = input.secret ?? {};
      if (!isPlainObject(config) || !isPlainObject(secret)) throw errors.invalid('Profile config and secret must be JSON objects.');
      // The connector's first credential kind unless the caller names one.
      const credentialKind = input.credentialKind ?? catalog.get(target.kind)?.credentialKinds?.[0] ?? 'default';
      validateCredential(target.kind, credentialKind, config, secret, input.credentialKind === undefined);
      const now = isoAt(clock.now());
      const id = newId('prf');
      const row: ProfileRow = {
        id,
        target_id: targetId,
        label: checkName(input.label, 'profile label'),
        credential_kind: credentialKind,
        config: canonicalJson(config),
        secret: Object.keys(secret).length > 0 ? sealer.seal(canonicalJson(secret), secretAad(id)) : null,
        secret_fields: canonicalJson(Object.keys(secret).sort()),
        config_revision: 1,
        secret_revision: 1,
        created_at: now,
        updated_at: now,
      };
      await db.write(async (tx) => {
        if (await tx.get('SELECT 1 FROM profiles WHERE target_id = ? AND label = ?', [targetId, row.label])) {
          throw errors.conflict('profile_exists', `Target "${target.name}" already has a profile labelled "${row.label}".`);
        }
        await tx.run(
          `INSERT INTO profiles (id, target_id, label, credential_kind, config, secret, secret_fields, config_revision, secret_revision, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [row.id, row.target_id, row.label, row.credential_kind, row.config, row.secret, row.secret_fields, 1, 1, now, now],
        );
        await audit.record(tx, {
          actor,
          event: 'profile.created',
          subject: { targetId, profileId: id },
          payload: { label: row.label, credentialKind, config, secretFields: JSON.parse(row.secret_fields) },
        });
        tx.afterCommit(() => profiles.set(id, row));
      });
      return toProfile(row);
    },
    async updateProfile(id, patch, actor) {
      return db.write(async (tx) => {
        const row = await tx.get<ProfileRow>('SELECT * FROM profiles WHERE id = ?', [id]);
        if (!row) throw errors.notFound('Credential profile', id);
        const target = await tx.get<TargetRow>('SELECT * FROM targets WHERE id = ?', [row.target_id]);
        const next = { ...row };
        if (patch.label !== undefined) next.label = checkName(patch.label, 'profile label');
        const changes: string[] = [];
        const config = patch.config ?? (JSON.parse(row.config) as Record<string, unknown>);
        if (!isPlainObject(config)) throw errors.invalid('Profile config must be a JSON object.');
        const currentSecret = row.secret ? (JSON.parse(sealer.open(row.secret, secretAad(id))) as Record<string, unknown>) : {};
        const secret = patch.secret ?? currentSecret;
        if (!isPlainObject(secret)) throw errors.invalid('Profile secret must be a JSON object.');
        validateCredential(target!.kind, row.credential_kind, config, secret, false);
        if (patch.config !== undefined && canonicalJson(config) !== row.config) {
          next.config = canonicalJson(config);
          next.config_revision = row.config_revision + 1;
          changes.push('configuration');
        }
        if (patch.secret !== undefined) {
          next.secret = Object.keys(secret).length > 0 ? sealer.seal(canonicalJson(secret), secretAad(id)) : null;
          next.secret_fields = canonicalJson(Object.keys(secret).sort());
          next.secret_revision = row.secret_revision + 1;
          changes.push('secret');
        }
        if (next.label !== row.label) {
          if (await tx.get('SELECT 1 FROM profiles WHERE target_id = ? AND label = ? AND id <> ?', [row.target_id, next.label, id])) {
            throw errors.conflict('profile_exists', `That target already has a profile labelled "${next.label}".`);
          }
          changes.push('label');
        }
        next.updated_at = isoAt(clock.now());
        await tx.run(
          'UPDATE profiles SET label = ?, config = ?, secret = ?, secret_fields = ?, config_revision = ?, secret_revision = ?, updated_at = ? WHERE id = ?',
          [next.label, next.config, next.secret, next.secret_fields, next.config_revision, next.secret_revision, next.updated_at, id],
        );
        await audit.record(tx, {
          actor,
          event: 'profile.updated',
          subject: { targetId: row.target_id, profileId: id },
          // Which parts changed, never the secret values.
          payload: { label: next.label, changed: changes, configRevision: next.config_revision, secretRevision: next.secret_revision },
        });
        await deps.onChanged(tx, {
          targetId: row.target_id,
          profileId: id,
          reason: changes.includes('secret') ? "the credential profile's secret changed" : 'the credential profile changed',
        });
        tx.afterCommit(() => profiles.set(id, next));
        return toProfile(next);
      });
    },
    async deleteProfile(id, actor) {
      await db.write(async (tx) => {
        const row = await tx.get<ProfileRow>('SELECT * FROM profiles WHERE id = ?', [id]);
        if (!row) throw errors.notFound('Credential profile', id);
        await deps.onChanged(tx, { targetId: row.target_id, profileId: id, reason: 'the credential profile was deleted' });
        await tx.run('DELETE FROM profiles WHERE id = ?', [id]);
        await audit.record(tx, { actor, event: 'profile.deleted', subject: { targetId: row.target_id, profileId: id }, payload: { label: row.label } });
        await deps.onDeleted(tx);
        tx.afterCommit(() => profiles.delete(id));
      });
    },
    async revisions(q, targetId, profileId) {
      if (!q) {
        const target = targets.get(targetId);
        const profile = profiles.get(profileId);
        return {
          target: target ? { kind: target.kind, configRevision: target.config_revision } : null,
          profile: profile && profile.target_id === targetId ? { configRevision: profile.config_revision, secretRevision: profile.secret_revision } : null,
        };
      }
      const target = await q.get<{ kind: string; config_revision: number }>('SELECT kind, config_revision FROM targets WHERE id = ?', [targetId]);
      const profile = await q.get<{ config_revision: number; secret_revision: number }>(
        'SELECT config_revision, secret_revision FROM profiles WHERE id = ? AND target_id = ?',
        [profileId, targetId],
      );
      return {
        target: target ? { kind: target.kind, configRevision: target.config_revision } : null,
        profile: profile ? { configRevision: profile.config_revision, secretRevision: profile.secret_revision } : null,
      };
    },
    sealedProfile(profileId) {
      const row = profiles.get(profileId);
      return row ? { kind: row.credential_kind, config: row.config, secret: row.secret } : undefined;
    },
  };
  return store;
}
