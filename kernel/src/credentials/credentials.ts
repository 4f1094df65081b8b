import type { CredentialLease } from '@aipermission/plugin-sdk/protocol';
import { errors } from '../lib/errors.js';

/**
 * A profile as the targets store keeps it: the clear config and the secret
 * part still sealed. Only this module opens the seal at run time.
 */
export interface SealedProfile {
  kind: string;
  /** JSON text of the non-secret fields. */
  config: string;
  /** The sealed JSON of the secret fields, or null when the profile has none. */
  secret: Uint8Array | null;
}

/**
 * One profile's credential, opened for one invocation. It is not a plain
 * object on purpose: the fields leave only as the lease of the declared
 * fields, and `wipe()` (called when the invocation ends) drops them.
 */
export interface OpenedCredential {
  readonly profileId: string;
  readonly kind: string;
  /**
   * The lease on the wire (invariant 1): the fields the connector's schema
   * declares, from this one profile, secret ones included. With no list, every
   * field of the profile (in-process connectors, which declare their kinds in
   * the catalog).
   */
  lease(declared?: readonly string[]): CredentialLease;
  /** The secret values, so everything shown or stored can mask them. */
  secretValues(): string[];
  wipe(): void;
}

export interface Credentials {
  /** Opens the one profile's credential (404 if the profile is gone). */
  open(profileId: string): OpenedCredential;
}

/**
 * The credentials module: the only reader of sealed profile secrets at run
 * time. It is given the sealed rows and the opener of the vault's seal, never
 * the database.
 */
export function createCredentials(deps: {
  sealedProfile: (profileId: string) => SealedProfile | undefined;
  unseal: (sealed: Uint8Array, profileId: string) => string;
}): Credentials {
  return {
    open(profileId) {
      const row = deps.sealedProfile(profileId);
      if (!row) throw errors.notFound('Credential profile', profileId);
      let config: Record<string, unknown> | undefined = JSON.parse(row.config) as Record<string, unknown>;
      let secret: Record<string, unknown> | undefined = row.secret ? (JSON.parse(deps.unseal(row.secret, profileId)) as Record<string, unknown>) : {};
      const gone = () => errors.conflict('lease_ended', 'This credential was already handed back; the invocation that held it has ended.');
      return {
        profileId,
        kind: row.kind,
        lease(declared) {
          if (!config || !secret) throw gone();
          const merged: Record<string, unknown> = { ...config, ...secret };
          const fields: Record<string, unknown> = {};
          for (const name of declared ?? Object.keys(merged)) if (merged[name] !== undefined) fields[name] = merged[name];
          return { kind: row.kind, fields };
        },
        secretValues() {
          return Object.values(secret ?? {}).filter((value): value is string => typeof value === 'string');
        },
        wipe() {
          config = undefined;
          secret = undefined;
        },
      };
    },
  };
}
