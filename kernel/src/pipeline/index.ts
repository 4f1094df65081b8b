/**
 * pipeline — the one path every action takes (invariants 4, 5, 6), in four
 * stages: authorize (switch, token, target, grant) -> admit (schema, request
 * row + write-ahead intent, by approvals) -> execute (invocation scope,
 * plugin call, deadline) -> settle (redact, bound, completion entry).
 */
export { createPipeline } from './pipeline.js';
export { parseTargetRef } from './authorize.js';
export type { Pipeline, CallOptions, CallOutcome } from './pipeline.js';
export type { CallInput } from './authorize.js';
export type { PipelineDatabase, PipelineDeps } from './ports.js';
export { boundOutput, truncateUtf8 } from './bound.js';
