/**
 * databases — the named databases' lifecycle: create, unlock behind the
 * password gate (with rollback detection), prove, lock after draining, and
 * scheduled maintenance. The one holder of the vault's open handles.
 */
export { createDatabases } from './databases.js';
export type { Databases } from './databases.js';
