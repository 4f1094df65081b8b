/**
 * connectors — the seam between the kernel and connector implementations:
 * the catalog (what is installed, with schemas and hashes) and the executor
 * (what runs an invocation). The plugin host provides both for real plugins.
 */
export { createStaticCatalog, defineStaticConnector, mergeCatalogs, KERNEL_LIMITS, DEFAULT_ACTION_LIMITS } from './catalog.js';
export type { ActionDescriptor, ActionRisk, ConnectorCatalog, ConnectorDescriptor, StaticConnectorDefinition, StaticActionDefinition } from './catalog.js';
export type { ActionExecutor, Invocation, ProgressUpdate } from './executor.js';
export { OutcomeUnknown } from './executor.js';
export { createProgressGate, pluginText, PLUGIN_TEXT_LIMITS } from './plugin-text.js';
export type { PluginText } from './plugin-text.js';
export { credentialKindsOf, formSchemasOf, describeCredentialKinds, installedKinds } from './credential-kinds.js';
export type { CredentialKindInfo } from './credential-kinds.js';
