/**
 * @aipermission/plugin-sdk — what a connector author uses. For now the error
 * vocabulary shared by the kernel and connectors; the protocol, `definePlugin`
 * and the conformance kit arrive with the plugin host.
 */
export { ActionError, isActionError, configError, transientError, systemError } from './errors.js';
export type { ActionErrorKind } from './errors.js';
