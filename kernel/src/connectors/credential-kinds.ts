import type { ConnectorCatalog, ConnectorDescriptor } from './catalog.js';

/** One credential kind of a connector, as an operator needs it to fill in a profile. */
export interface CredentialKindInfo {
  kind: string;
  /** Every field a profile of this kind takes (config and secret). */
  fields: string[];
  /** The fields that are secret: they go in the profile's `secret` (a --secret-file), never its `config`. */
  secret: string[];
  required: string[];
}

interface SchemaShape {
  properties?: Record<string, Record<string, unknown>>;
  required?: string[];
}

/** A plugin descriptor carries its validated manifest; the credential schemas are read from it. */
function manifestSchemas(connector: ConnectorDescriptor): Record<string, SchemaShape> | undefined {
  return (connector as { plugin?: { manifest?: { credentialSchemas?: Record<string, SchemaShape> } } }).plugin?.manifest?.credentialSchemas;
}

/** The credential kinds of a connector with their fields, the default (first) kind first. */
export function credentialKindsOf(connector: ConnectorDescriptor): CredentialKindInfo[] {
  const schemas = manifestSchemas(connector);
  return (connector.credentialKinds ?? []).map((kind) => {
    const own = connector.credentialFields?.(kind);
    if (own) return { kind, ...own };
    const schema = schemas?.[kind] ?? {};
    return {
      kind,
      fields: Object.keys(schema.properties ?? {}),
      secret: connector.secretFields(kind) ?? [],
      required: schema.required ?? [],
    };
  });
}

/** `password (username, password [secret, required]); none (no fields)` — for errors and help. */
export function describeCredentialKinds(kinds: CredentialKindInfo[]): string {
  return kinds
    .map(({ kind, fields, secret, required }) => {
      if (fields.length === 0) return `${kind} (no fields)`;
      const shown = fields.map((field) => {
        const marks = [secret.includes(field) ? 'secret' : '', required.includes(field) ? 'required' : ''].filter(Boolean);
        return marks.length ? `${field} [${marks.join(', ')}]` : field;
      });
      return `${kind} (${shown.join(', ')})`;
    })
    .join('; ');
}

/** The installed connector kinds, for a refusal that lists them. */
export function installedKinds(catalog: ConnectorCatalog): string[] {
  return catalog
    .list()
    .map((connector) => connector.id)
    .sort();
}

/**
 * The connector's own JSON Schemas for a target's config and each credential
 * kind, as its manifest declares them (secret fields marked `x-secret`): the
 * web UI generates its forms from them, so a community connector gets forms
 * with no UI code. Null for a connector without a manifest (in-process test
 * connectors), whose forms fall back to `credentialKinds`.
 */
export function formSchemasOf(connector: ConnectorDescriptor): { targetSchema: object | null; credentialSchemas: Record<string, object> | null } {
  const manifest = (connector as { plugin?: { manifest?: { targetSchema?: object; credentialSchemas?: Record<string, object> } } }).plugin?.manifest;
  return { targetSchema: manifest?.targetSchema ?? null, credentialSchemas: manifest?.credentialSchemas ?? null };
}
