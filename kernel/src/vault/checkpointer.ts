import { openSqlCipher, type SqlDb } from './sqlcipher.js';

/**
 * How often the WAL is folded into the database file. Often enough that the
 * WAL stays a few MB under a steady write load (about 14,000 entries/s at
 * most), rare enough to cost nothing when idle.
 */
export const CHECKPOINT_INTERVAL_MS = 1_000;

/**
 * Folds the write-ahead log into the database file from a second connection.
 * The gateway's one connection serialises every call, and SQLite's automatic
 * checkpoint runs inside whichever commit crosses 1,000 WAL pages: that
 * commit then copies and fsyncs megabytes while every call waits (tens of ms
 * on a busy disk, measured in kernel/bench/audit.mjs). A PASSIVE checkpoint
 * on another connection never takes the gateway's lock and never blocks its
 * writer, so the main connection's automatic checkpoint is turned off while
 * this runs. It must be stopped around anything that needs the file alone
 * (rekey switches the journal mode) and restarted with the key in force.
 */
export interface Checkpointer {
  stop(): Promise<void>;
}

export async function startCheckpointer(
  main: SqlDb,
  file: string,
  key: string,
  log?: (message: string, error?: unknown) => void,
): Promise<Checkpointer> {
  let conn: SqlDb | undefined;
  try {
    conn = await openSqlCipher(file, { key });
    await conn.exec('PRAGMA wal_autocheckpoint = 0');
  } catch (error) {
    // Without the second connection the main one keeps checkpointing itself.
    await conn?.close().catch(() => undefined);
    log?.(`could not open the checkpoint connection of ${file}; the gateway's connection checkpoints its WAL itself`, error);
    return { stop: async () => undefined };
  }
  await main.exec('PRAGMA wal_autocheckpoint = 0');
  let running: Promise<void> | undefined;
  let failing = false;
  const tick = () => {
    if (running || !conn) return;
    const current = conn;
    running = current
      .get('PRAGMA wal_checkpoint(PASSIVE)')
      .then(() => {
        failing = false;
      })
      .catch((error: unknown) => {
        // A full disk or a read-only file: said once, retried every interval.
        if (!failing && !current.closed) log?.(`checkpointing the WAL of ${file} failed; it is retried every ${CHECKPOINT_INTERVAL_MS} ms`, error);
        failing = true;
      })
      .finally(() => {
        running = undefined;
      });
  };
  const timer = setInterval(tick, CHECKPOINT_INTERVAL_MS);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
      const closing = conn;
      conn = undefined;
      await closing?.close();
      // Back to SQLite's own checkpoints until a checkpointer runs again.
      if (!main.closed) await main.exec('PRAGMA wal_autocheckpoint = 1000');
    },
  };
}
