/**
 * approvals — action requests and their lifecycle: approval-context
 * snapshots and staleness (invariant 5), TTL expiry, idempotency, operator
 * notes, agent cancel, and `outcome_unknown` after a crash.
 */
export { createApprovalStore, toRequest, requesterOf, inputAad, checkNote, REQUEST_STATUSES, ACTIVE_STATUSES } from './requests.js';
export type { ApprovalStore, ActionRequest, RequestError, RequestStatus, RequestRow, NewRequest, RequestListFilter } from './requests.js';
export { computeSnapshot, describeDrift, snapshotHash } from './snapshot.js';
export type { ApprovalSnapshot, SnapshotSources, SnapshotSubject } from './snapshot.js';
export { createAdmissions } from './admission.js';
export type { Admissions, AdmittedCall } from './admission.js';
