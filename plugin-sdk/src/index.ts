/**
 * @aipermission/plugin-sdk — what a connector author uses:
 * `definePlugin`, `defineAction`, `serve()`, the action context, error
 * helpers, output-size helpers and a connection pool. The wire protocol is
 * under `@aipermission/plugin-sdk/protocol`; tests under `/testing`.
 */
export { ActionError, isActionError, configError, transientError, systemError } from './errors.js';
export type { ActionErrorKind } from './errors.js';
export { definePlugin, defineAction, DEFAULT_LIMITS } from './plugin.js';
export type { Action, ActionContext, ActionDefinition, CheckContext, Logger, Plugin, PluginDefinition, SchemaType } from './plugin.js';
export { serve, maskSecrets, isEntryPoint } from './serve.js';
export { createPool } from './pool.js';
export type { Pool, PoolOptions } from './pool.js';
export { byteLength, truncateText, takeWithinBudget, encodeBytes } from './output.js';
export { connectEndpoint, socketOptionsOf, tlsIdentityFor } from './endpoint.js';
export type { ConnectEndpointOptions } from './endpoint.js';
export type { ConnectionCheckResult, ConnectionProblem, CredentialLease, Endpoint, TcpEndpoint, UnixEndpoint, InvocationLimits, ProgressValue } from './protocol/messages.js';
export type { Manifest, ManifestAction, JsonSchema, Risk, Transport } from './protocol/manifest-types.js';
