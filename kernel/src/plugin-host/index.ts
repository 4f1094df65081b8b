/**
 * plugin-host — runs connectors as sandboxed child processes speaking the
 * plugin protocol (invariant 1): manifests validated and hashed, lazy spawn
 * under Node's permission model (and bubblewrap where available, with no
 * network but the endpoints the transports open per invocation), handshake,
 * invoke/cancel/progress, bounded framing, redacted logs, supervision with a
 * restart budget and quarantine, and install with integrity and approval.
 */
export { createPluginHost, leaseFor } from './host.js';
export type { PluginHost, PluginHostOptions, PluginApproval, InspectedPlugin, PluginListing, VerifyReport } from './host.js';
export { approvalVerdict, describeVerdict, isApproved } from './approval-check.js';
export type { ApprovalVerdict, InstalledFacts } from './approval-check.js';
export type { PluginReach, InspectionSandbox } from './reach.js';
export { INSPECT_LIMITS } from './inspect.js';
export { PACKAGE_LIMITS, readPackageFiles } from './package-files.js';
export { sandboxLevel, detectBwrap, nodePermissionFlag, buildSpawnSpec, SANDBOX_ENDPOINT_DIR } from './sandbox.js';
export type { SandboxLevel, BwrapMode, NetworkIsolation } from './sandbox.js';
export type { PluginStatus } from './supervisor.js';
export { SUPERVISOR_DEFAULTS } from './supervisor.js';
export { packageIntegrity, assertPluginId, BUILTIN_PLUGIN_NAMES } from './registry.js';
export type { PluginSource } from './registry.js';
export { createPluginApprovalStore } from './approvals-store.js';
export type { PluginApprovalStore, StoredPluginApproval } from './approvals-store.js';
export { pinBuiltins, pinOf, readPinnedSet, defaultPinsFile, PINNED_SET_LIMITS } from './builtin-pins.js';
export type { BuiltinPins, BuiltinPin } from './builtin-pins.js';
