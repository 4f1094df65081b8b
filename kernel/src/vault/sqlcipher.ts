import sqlcipher from '@journeyapps/sqlcipher';
import { Mutex } from '../lib/mutex.js';

type Params = readonly unknown[] | Record<string, unknown>;

export interface RunResult {
  changes: number;
  lastId: number;
}

/** Statement access shared by a connection and an open transaction. */
export interface SqlQueries {
  run(sql: string, params?: Params): Promise<RunResult>;
  get<T = Record<string, unknown>>(sql: string, params?: Params): Promise<T | undefined>;
  all<T = Record<string, unknown>>(sql: string, params?: Params): Promise<T[]>;
  exec(sql: string): Promise<void>;
}

/** Inside `write()`: statements join the transaction; hooks run only if it commits. */
export interface SqlTx extends SqlQueries {
  afterCommit(hook: () => void): void;
}

/**
 * One SQLCipher connection with a promise API.
 *
 * Every statement goes through a FIFO lock so that a transaction opened by one
 * async flow never silently swallows a statement issued by another flow while
 * it waits (node-sqlite3 has one connection state, and `BEGIN` is connection
 * wide). `write()` holds the lock for the whole transaction.
 */
export interface SqlDb extends SqlQueries {
  readonly file: string;
  write<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T>;
  /** Runs fn with the connection lock held and no transaction (maintenance: rekey, checkpoint). */
  exclusive<T>(fn: (q: SqlQueries) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  readonly closed: boolean;
}

/** SQLite error codes callers care about. */
export function sqliteCode(error: unknown): string | undefined {
  if (error && typeof error === 'object' && 'code' in error && typeof (error as { code: unknown }).code === 'string') {
    return (error as { code: string }).code;
  }
  return undefined;
}

/** Quotes a string as an SQL literal (for PRAGMA key, which takes no bound parameters). */
export function sqlLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

function openRaw(file: string, mode: number): Promise<sqlcipher.Database> {
  return new Promise((resolve, reject) => {
    const db: sqlcipher.Database = new sqlcipher.Database(file, mode, (error) => {
      if (error) reject(error);
      else resolve(db);
    });
  });
}

function bindable(params: Params | undefined): unknown {
  if (params === undefined) return [];
  return params;
}

function makeQueries(raw: sqlcipher.Database): SqlQueries {
  return {
    run(sql, params) {
      return new Promise((resolve, reject) => {
        raw.run(sql, bindable(params), function (this: sqlcipher.RunResult, error: Error | null) {
          if (error) reject(error);
          else resolve({ changes: this.changes, lastId: this.lastID });
        });
      });
    },
    get<T>(sql: string, params?: Params) {
      return new Promise<T | undefined>((resolve, reject) => {
        raw.get(sql, bindable(params), (error: Error | null, row: T | undefined) => {
          if (error) reject(error);
          else resolve(row);
        });
      });
    },
    all<T>(sql: string, params?: Params) {
      return new Promise<T[]>((resolve, reject) => {
        raw.all(sql, bindable(params), (error: Error | null, rows: T[]) => {
          if (error) reject(error);
          else resolve(rows);
        });
      });
    },
    exec(sql) {
      return new Promise((resolve, reject) => {
        raw.exec(sql, (error: Error | null) => {
          if (error) reject(error);
          else resolve();
        });
      });
    },
  };
}

export interface OpenOptions {
  /** The password; applied with PRAGMA key before anything else touches the file. */
  key: string;
  /** Create the file if it does not exist (first-run setup, import target). */
  create?: boolean;
  readOnly?: boolean;
}

/**
 * Opens an SQLCipher database and proves the key by reading the schema. A
 * wrong key surfaces here as SQLITE_NOTADB, never later.
 */
export async function openSqlCipher(file: string, options: OpenOptions): Promise<SqlDb> {
  const mode = options.readOnly
    ? sqlcipher.OPEN_READONLY
    : sqlcipher.OPEN_READWRITE | (options.create ? sqlcipher.OPEN_CREATE : 0);
  const raw = await openRaw(file, mode);
  const q = makeQueries(raw);
  try {
    // A wrong key is an expected outcome we report ourselves; keep SQLCipher's
    // own logger from printing it to the gateway's stderr.
    await q.exec(`PRAGMA cipher_log_level = NONE; PRAGMA key = ${sqlLiteral(options.key)};`);
    await q.get('SELECT count(*) AS n FROM sqlite_master');
    // Five seconds is far longer than any of our own transactions; it only
    // matters when an offline CLI command (export, verify) reads the file
    // while the gateway writes to it.
    raw.configure('busyTimeout', 5000);
    await q.exec('PRAGMA foreign_keys = ON;');
    if (!options.readOnly) {
      // WAL with synchronous=NORMAL: a commit survives a process crash (the
      // write-ahead audit's promise) without an fsync per commit; only an OS
      // crash or power loss can drop the last commits.
      await q.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;');
    }
  } catch (error) {
    await new Promise<void>((resolve) => raw.close(() => resolve()));
    throw error;
  }
  return wrap(file, raw);
}

function wrap(file: string, raw: sqlcipher.Database): SqlDb {
  const lock = new Mutex();
  const q = makeQueries(raw);
  let closed = false;
  const guard = () => {
    if (closed) throw new Error(`database ${file} is closed`);
  };
  const locked = <T>(fn: () => Promise<T>) =>
    lock.run(async () => {
      guard();
      return fn();
    });

  return {
    file,
    get closed() {
      return closed;
    },
    run: (sql, params) => locked(() => q.run(sql, params)),
    get: <T>(sql: string, params?: Params) => locked(() => q.get<T>(sql, params)),
    all: <T>(sql: string, params?: Params) => locked(() => q.all<T>(sql, params)),
    exec: (sql) => locked(() => q.exec(sql)),
    exclusive: (fn) => locked(() => fn(q)),
    write<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T> {
      return locked(async () => {
        const hooks: Array<() => void> = [];
        const tx: SqlTx = { ...q, afterCommit: (hook) => hooks.push(hook) };
        await q.exec('BEGIN IMMEDIATE');
        let result: T;
        try {
          result = await fn(tx);
          await q.exec('COMMIT');
        } catch (error) {
          await q.exec('ROLLBACK').catch(() => undefined);
          throw error;
        }
        for (const hook of hooks) hook();
        return result;
      });
    },
    close() {
      return lock.run(async () => {
        if (closed) return;
        closed = true;
        await new Promise<void>((resolve, reject) => raw.close((error) => (error ? reject(error) : resolve())));
      });
    },
  };
}
