/**
 * What the pipeline's stages use of one unlocked database, and nothing more
 * (ARCHITECTURE.md: modules take only what they use). The composition root
 * builds it per database; the pipeline never sees the vault, the raw
 * database or a token string.
 */
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { Audit } from '../audit/index.js';
import type { Admissions, ApprovalStore } from '../approvals/index.js';
import type { ActionExecutor, ConnectorCatalog } from '../connectors/index.js';
import type { Credentials } from '../credentials/index.js';
import type { GrantStore } from '../grants/index.js';
import type { InvocationScopes } from '../invocations/index.js';
import type { McpSwitch } from '../mcp-switch/index.js';
import type { RedactionStore } from '../redaction/index.js';
import type { SettingsStore } from '../settings/index.js';
import type { TargetStore } from '../targets/index.js';
import type { TokenRecord, TokenStore } from '../tokens/index.js';
import type { AgentPrincipal } from '../lib/principal.js';
import type { InflightTracker } from '../lib/inflight.js';

export interface PipelineDatabase {
  readonly name: string;
  readonly mcp: Pick<McpSwitch, 'isRunning'>;
  readonly targets: Pick<TargetStore, 'cachedTarget' | 'cachedProfile'>;
  readonly grants: Pick<GrantStore, 'evaluate'>;
  readonly redaction: Pick<RedactionStore, 'current'>;
  readonly catalog: ConnectorCatalog;
  readonly approvals: Pick<ApprovalStore, 'finishBatched' | 'require' | 'expireDue' | 'openInput'>;
  readonly admissions: Admissions;
  readonly audit: Pick<Audit, 'commit'>;
  readonly tokens: Pick<TokenStore, 'touch'>;
  readonly settings: Pick<SettingsStore, 'get'>;
  readonly inflight: InflightTracker;
  readonly credentials: Credentials;
}

export interface PipelineDeps {
  clock: Clock;
  log?: Logger;
  /** Runs the plugin call (the plugin host, or an in-process executor in tests). */
  executor: ActionExecutor;
  /** The registry of invocation scopes the plugin host answers plugin messages from. */
  scopes: InvocationScopes;
  /** The unlocked database a principal acts in (423 when it is locked). */
  database(name: string): PipelineDatabase;
  /** The token of an agent principal if it still works now, or its refusal. */
  currentToken(principal: AgentPrincipal): TokenRecord;
}
