/**
 * grants — the permission table token x target x profile x action ->
 * always_run | approval_required | blocked, with optional expiry (invariant 4).
 * No row means denied; the strictest applicable row wins.
 */
export { createGrantStore, grantRefusal, GRANT_RULES, ANY_ACTION } from './grants.js';
export type { Grant, GrantRule, GrantDecision, GrantStore, GrantSetInput, GrantChange, EffectiveGrant } from './grants.js';
