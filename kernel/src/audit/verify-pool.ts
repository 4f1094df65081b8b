import { Piscina } from 'piscina';
import verifyPageInline from './verify-worker.mjs';

export interface AuditRow {
  seq: number;
  ts: string;
  actor: string;
  event: string;
  subject: string;
  payload: string;
  prev_hash: string;
  hash: string;
}

export interface PageResult {
  badSeq: number | null;
  reason: string | null;
}

/** Hashes pages of audit rows, on worker threads when the log is large. */
export interface AuditVerifyPool {
  verifyPage(rows: AuditRow[], useWorkers: boolean): Promise<PageResult>;
  destroy(): Promise<void>;
}

/**
 * One piscina pool per kernel, created on first use. Two worker threads at
 * most: verification is a background job and must leave the cores to the
 * gateway's own request handling.
 */
export function createAuditVerifyPool(options: { maxThreads?: number } = {}): AuditVerifyPool {
  let pool: Piscina | undefined;
  const getPool = () => {
    pool ??= new Piscina({
      filename: new URL('./verify-worker.mjs', import.meta.url).href,
      minThreads: 0,
      maxThreads: options.maxThreads ?? 2,
      // Workers exit 2 s after the last page: verification is occasional, and
      // a worker thread holds tens of MB the gateway should get back soon after.
      idleTimeout: 2_000,
    });
    return pool;
  };
  return {
    async verifyPage(rows, useWorkers) {
      if (!useWorkers) return verifyPageInline({ rows });
      return (await getPool().run({ rows })) as PageResult;
    },
    async destroy() {
      if (pool) {
        const current = pool;
        pool = undefined;
        await current.destroy();
      }
    },
  };
}
