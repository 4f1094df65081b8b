/**
 * redaction — built-in and custom rules, applied to everything shown or
 * stored in clear (input previews, outputs, plugin logs, audit payloads,
 * operator/agent notes). Redaction changes only what is shown: the raw input
 * that runs is kept sealed by the approvals module (invariant 5).
 */
export { createRedactor, compileCustomRule, MAX_CUSTOM_PATTERN_LENGTH } from './redactor.js';
export type { Redactor, CustomRuleInput } from './redactor.js';
export { BUILTIN_RULES, REDACTED, isSecretKey } from './rules.js';
export type { RedactionRule } from './rules.js';
export { createRedactionStore, createRedactorCell } from './store.js';
export type { RedactionStore, RedactorCell, StoredRedactionRule } from './store.js';
