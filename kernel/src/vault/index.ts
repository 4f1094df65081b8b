/**
 * vault — SQLCipher databases (named, several unlocked at once), password
 * rules, rekey, export/import `.aipdb`, AES-256-GCM sealing of secret fields
 * and schema migrations. Only the modules that must (the composition root,
 * and later the plugin host's credential lease) reach it.
 */
export { createVault, SCHEMA_VERSION } from './vault.js';
export type { Vault, OpenDatabase, DatabaseInfo } from './vault.js';
export type { SqlDb, SqlTx, SqlQueries, RunResult } from './sqlcipher.js';
export { openSqlCipher, sqliteCode, sqlValue, inlineParams } from './sqlcipher.js';
export type { Sealer } from './seal.js';
export { passwordProblems, assertPasswordRules, MIN_PASSWORD_LENGTH } from './password-rules.js';
export { resolveDataDir, assertDatabaseName, databaseNameFromFile, DATABASE_EXTENSION, PLAINTEXT_REFUSED_MESSAGE } from './data-dir.js';
export { createHeadRecords, describeRollback } from './head-records.js';
export type { HeadRecord, HeadRecords } from './head-records.js';
export { acquireDataDirLock, LOCK_FILE, GATEWAY_INFO_FILE } from './data-dir-lock.js';
export type { DataDirLock } from './data-dir-lock.js';
