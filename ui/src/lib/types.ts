/** The shapes the REST API answers with (docs/api.md), as far as the UI reads them. */
export interface DatabaseInfo {
  name: string;
  unlocked: boolean;
  default: boolean;
  mcpRunning: boolean;
  sizeBytes: number;
  createdAt: string;
  modifiedAt: string;
  rollbackWarning: string | null;
}
export interface Status {
  name: string;
  version: string;
  dataDir: string;
  locked: boolean;
  databases: DatabaseInfo[];
  session: { id: string; client: string; databases: string[] } | null;
}
export type Risk = 'read' | 'write' | 'destructive';
export interface ActionInfo {
  name: string;
  title: string;
  description: string;
  risk: Risk;
  limits: { timeoutMs: number; maxOutputBytes: number };
  inputSchema: JsonSchema;
}
export interface CredentialKindInfo {
  kind: string;
  fields: string[];
  secret: string[];
  required: string[];
}
export interface ConnectorInfo {
  id: string;
  version: string;
  title: string;
  description?: string;
  manifestHash: string;
  credentialKinds: CredentialKindInfo[];
  targetSchema: JsonSchema | null;
  credentialSchemas: Record<string, JsonSchema> | null;
  actions: ActionInfo[];
}
export interface Profile {
  id: string;
  targetId: string;
  label: string;
  credentialKind: string;
  config: Record<string, unknown>;
  secretFields: string[];
  configRevision: number;
  secretRevision: number;
}
export interface Target {
  id: string;
  kind: string;
  name: string;
  description: string;
  config: Record<string, unknown>;
  configRevision: number;
  profiles: Profile[];
}
export interface Token {
  id: string;
  name: string;
  prefix: string;
  state: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
}
export type Rule = 'always_run' | 'approval_required' | 'blocked';
export interface Grant {
  id: string;
  tokenId: string;
  targetId: string;
  profileId: string;
  action: string;
  rule: Rule;
  expiresAt: string | null;
  expired: boolean;
  effectiveRule: Rule | 'denied';
  overriddenBy: { id: string; action: string; rule: Rule } | null;
}
export interface RequestBinding {
  connector: { id: string; version: string; manifestHash: string; integrity: string | null } | null;
  target: { id: string; configRevision: number } | null;
  profile: { id: string; configRevision: number; secretRevision: number } | null;
  action: { name: string; definitionHash: string } | null;
  inputHash: string;
}
export interface ActionRequest {
  id: string;
  status: string;
  targetRef: string;
  tokenId: string;
  tokenName: string;
  requestedBy: 'agent' | 'operator';
  operatorActor: string | null;
  targetId: string;
  targetName: string;
  profileId: string;
  profileLabel: string;
  connectorId: string;
  action: string;
  rule: string | null;
  reason: string;
  inputPreview: unknown;
  inputHash: string;
  snapshotHash: string | null;
  binding?: RequestBinding | null;
  statusReason: string | null;
  output: unknown;
  outputTruncated: boolean;
  error: { kind: string; retryable: boolean; message: string } | null;
  operatorNote: string | null;
  createdAt: string;
  expiresAt: string | null;
  decidedAt: string | null;
  finishedAt: string | null;
}
export interface AuditEntry {
  seq: number;
  ts: string;
  actor: string;
  event: string;
  subject: unknown;
  payload: unknown;
  hash?: string;
}
export interface Message {
  id: string;
  tokenId: string;
  direction: string;
  requestId: string | null;
  body: string;
  createdAt: string;
  deliveredAt: string | null;
  readAt: string | null;
}
export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  description?: string;
  title?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  items?: JsonSchema;
  oneOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  additionalProperties?: boolean | JsonSchema;
  'x-secret'?: boolean;
  [key: string]: unknown;
}
