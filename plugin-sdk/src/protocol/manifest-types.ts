/** Manifest types (no runtime code: plugins import these without pulling in ajv). */
/** A JSON Schema (draft-07 subset ajv supports), as plain data. */
export type JsonSchema = Record<string, unknown>;

export type Risk = 'read' | 'write' | 'destructive';
export type Transport = 'direct' | 'over_ssh' | 'none';

/** MCP tool annotations; derived from `risk` when a manifest leaves them out. */
export interface ActionAnnotations {
  readOnlyHint?: boolean;
  destructiveHint?: boolean;
  idempotentHint?: boolean;
  openWorldHint?: boolean;
}

export interface ManifestAction {
  /** snake_case; the qualified id is `<plugin id>.<name>`. */
  name: string;
  title: string;
  description: string;
  risk: Risk;
  input: JsonSchema;
  output: JsonSchema;
  annotations?: ActionAnnotations;
  limits: { timeoutMs: number; maxOutputBytes: number };
}

export interface Manifest {
  id: string;
  version: string;
  title: string;
  description: string;
  /** Non-secret target configuration (host, port, database number...). */
  targetSchema: JsonSchema;
  /** One object schema per credential kind; secret properties carry `"x-secret": true`. */
  credentialSchemas: Record<string, JsonSchema>;
  transports: Transport[];
  /** The port a direct endpoint uses when the target config gives none. */
  defaultPort?: number;
  /** What `get_connector_help` shows an agent. */
  help?: { summary: string; usage?: string; warnings?: string[] };
  actions: ManifestAction[];
}

