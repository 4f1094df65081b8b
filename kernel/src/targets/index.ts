/**
 * targets — targets and their credential profiles: generic storage (kind =
 * connector id, config JSON, sealed secret JSON) with revision counters that
 * approval snapshots bind to. Secret values leave this module only through
 * `lease()`, for one invocation (invariant 1).
 */
export { createTargetStore } from './targets.js';
export type { Target, Profile, TargetStore, CredentialLease, TargetChange } from './targets.js';
