import { performance } from 'node:perf_hooks';
import type { SqlDb, SqlTx } from '../vault/index.js';

/** What a chunked run did, for the caller's report and the benchmark. */
export interface ChunkedRun {
  chunks: number;
  rows: number;
  /** The longest time one chunk held the connection (its transaction, from the first statement to the commit). */
  longestHoldMs: number;
}

/**
 * Aim of one chunk's hold of the connection. Every MCP call and API request
 * waits behind a maintenance chunk, so a chunk costs each of them up to this
 * much latency; 10 ms is well under the 50 ms a maintenance step may ever
 * take (docs/performance.md) and still deletes thousands of rows per chunk.
 */
const TARGET_HOLD_MS = 10;
const MIN_ROWS = 16;
const MAX_ROWS = 8192;

/**
 * Runs maintenance (retention, clean-ups) in bounded chunks: each chunk is
 * its own short transaction, the event loop turns (setImmediate) between
 * chunks so the calls queued meanwhile go first, and the chunk size adapts
 * so one chunk holds the connection about TARGET_HOLD_MS at any table size.
 * `step` does up to `maxRows` of the work and answers how many rows it did;
 * 0 ends the run.
 */
export async function runInChunks(options: {
  db: SqlDb;
  step: (tx: SqlTx, maxRows: number) => Promise<number>;
  initialRows?: number;
  /** Called after each chunk with how long it held the connection (tests and the benchmark). */
  onChunk?: (holdMs: number, rows: number) => void;
}): Promise<ChunkedRun> {
  const { db } = options;
  let size = options.initialRows ?? 128;
  const run: ChunkedRun = { chunks: 0, rows: 0, longestHoldMs: 0 };
  for (;;) {
    if (db.closed) return run;
    let startedAt = 0;
    const done = await db.write((tx) => {
      startedAt = performance.now();
      return options.step(tx, size);
    });
    const heldMs = performance.now() - startedAt;
    if (done === 0) return run;
    run.chunks += 1;
    run.rows += done;
    run.longestHoldMs = Math.max(run.longestHoldMs, heldMs);
    options.onChunk?.(heldMs, done);
    if (heldMs > TARGET_HOLD_MS) size = Math.max(MIN_ROWS, Math.floor(size / 2));
    else if (heldMs < TARGET_HOLD_MS / 2 && done === size) size = Math.min(MAX_ROWS, size * 2);
    // Let the calls that queued behind this chunk run before the next one.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
