/**
 * credentials — the only reader of sealed profile secrets at run time: opens
 * one profile's credential for one invocation and hands out the lease of its
 * declared fields (invariant 1). The invocation scope holds it and wipes it.
 */
export { createCredentials } from './credentials.js';
export type { Credentials, OpenedCredential, SealedProfile } from './credentials.js';
