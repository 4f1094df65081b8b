/**
 * targets — targets and their credential profiles: generic storage (kind =
 * connector id, config JSON, sealed secret JSON) with revision counters that
 * approval snapshots bind to. Secret values leave this module only sealed
 * (`sealedProfile()`); the credentials module opens them for one invocation
 * (invariant 1).
 */
export { createTargetStore, profileSecretAad } from './targets.js';
export type { Target, Profile, TargetStore, TargetChange } from './targets.js';
