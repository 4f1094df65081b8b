/**
 * pipeline — the one path every action takes (invariants 4, 5, 6): auth ->
 * switch -> grant -> input validation -> snapshot + request -> write-ahead
 * audit intent -> execute -> bound/redact -> audit completion.
 */
export { createPipeline, parseTargetRef } from './pipeline.js';
export type { Pipeline, CallInput, CallOptions, CallOutcome, AuthenticatedToken } from './pipeline.js';
export { boundOutput, truncateUtf8 } from './bound.js';
