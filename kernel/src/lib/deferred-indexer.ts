import type { SqlDb, SqlTx } from '../vault/index.js';

/**
 * Keeps a full-text index caught up off the commit path: `schedule()` after
 * writes folds new rows in a little later, in bulk (one FTS segment per chunk
 * instead of one per tiny commit); `catchUp()` before a search makes the
 * results current. Each chunk is its own short transaction so writers queue
 * behind at most one chunk.
 */
export interface DeferredIndexer {
  schedule(): void;
  catchUp(): Promise<void>;
}

export function createDeferredIndexer(options: {
  db: SqlDb;
  /** Indexes up to `chunkRows` rows inside tx; returns how many it indexed. */
  indexChunk: (tx: SqlTx) => Promise<number>;
  chunkRows: number;
  /** Quiet time before a scheduled run; writes in between join the same run. */
  delayMs?: number;
  log?: (message: string, error?: unknown) => void;
}): DeferredIndexer {
  const { db } = options;
  let timer: NodeJS.Timeout | undefined;
  // Runs are chained: a search that arrives while a run is going gets a fresh
  // run after it (the one going may have started before the search's writes).
  let chain: Promise<void> = Promise.resolve();

  // A run stops at the first chunk that is not full: under steady writes it
  // must not chase the writers one row at a time. What arrives meanwhile goes
  // into the next run, in bulk.
  const runOnce = async () => {
    for (;;) {
      if (db.closed) return;
      const indexed = await db.write((tx) => options.indexChunk(tx));
      if (indexed < options.chunkRows) return;
    }
  };
  const catchUp = (): Promise<void> => {
    const next = chain.catch(() => undefined).then(runOnce);
    chain = next;
    return next;
  };
  return {
    schedule() {
      if (timer) return;
      timer = setTimeout(() => {
        timer = undefined;
        catchUp().catch((error: unknown) => {
          if (!db.closed) options.log?.('background full-text indexing failed', error);
        });
      }, options.delayMs ?? 300);
      timer.unref();
    },
    catchUp,
  };
}
