/**
 * invocations — one scope per plugin invocation, registered by invocation id:
 * it owns the credential lease, the endpoints and (later) the SSH signer of
 * that call, and is disposed when the call ends. Plugin messages that name an
 * invocation are answered only for a live scope of the same connector.
 */
export { createInvocationScopes } from './scopes.js';
export type { InvocationScope, InvocationScopes, ScopedResource } from './scopes.js';
