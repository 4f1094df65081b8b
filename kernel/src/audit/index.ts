/**
 * audit — the append-only, hash-chained log (invariant 6): write-ahead intent
 * and completion entries, FTS5 search, verify (piscina for large logs) and
 * retention that leaves the rest of the chain verifiable.
 */
export { createAudit, auditUnavailable, CHECKPOINT_EVENT, WORKER_THRESHOLD_ENTRIES } from './audit.js';
export type { Audit, AuditEntry, AuditEntryInput, AuditHead, AuditSearch, AuditSubject, VerifyReport, CommitUnit, UnitStatement } from './audit.js';
export { createAuditVerifyPool } from './verify-pool.js';
export type { AuditVerifyPool } from './verify-pool.js';
