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

/**
 * Renders a value as an SQLite literal, for the batched writer that sends a
 * whole group commit as one `exec` (one thread-pool round trip instead of one
 * per statement). SQLite string literals have exactly one escape, the doubled
 * quote, so this is complete; text containing NUL (which would end the C
 * string) and bytes go in as hex.
 */
export function sqlValue(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError('sqlValue: non-finite number');
    return Number.isInteger(value) ? value.toString() : value.toExponential(17);
  }
  if (typeof value === 'boolean') return value ? '1' : '0';
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'string') {
    return value.includes('\u0000') ? `CAST(X'${Buffer.from(value, 'utf8').toString('hex')}' AS TEXT)` : sqlLiteral(value);
  }
  if (value instanceof Uint8Array) return `X'${Buffer.from(value).toString('hex')}'`;
  throw new TypeError(`sqlValue: cannot render ${typeof value}`);
}

/** Substitutes positional `?` parameters with literals (statements written by the kernel only; no `?` inside literals). */
export function inlineParams(sql: string, params: readonly unknown[]): string {
  let index = 0;
  const out = sql.replace(/\?/g, () => {
    if (index >= params.length) throw new TypeError(`inlineParams: too few parameters for ${sql}`);
    return sqlValue(params[index++]);
  });
  if (index !== params.length) throw new TypeError(`inlineParams: ${params.length} parameters for ${index} placeholders in ${sql}`);
  return out;
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

/**
 * Prepared statements, one per SQL text, reused for the life of the
 * connection: preparing costs about twice what running does, and the kernel
 * runs the same few dozen statements over and over. Only ever used under the
 * connection lock, so a statement is never bound by two callers at once.
 */
/** Far more than the distinct statements the kernel issues; a bound only for the few with variable IN lists. */
const MAX_CACHED_STATEMENTS = 256;

class StatementCache {
  private readonly statements = new Map<string, sqlcipher.Statement>();
  constructor(private readonly raw: sqlcipher.Database) {}

  get(sql: string): Promise<sqlcipher.Statement> {
    const cached = this.statements.get(sql);
    if (cached) {
      // Refresh its place in the eviction order.
      this.statements.delete(sql);
      this.statements.set(sql, cached);
      return Promise.resolve(cached);
    }
    return new Promise((resolve, reject) => {
      const statement: sqlcipher.Statement = this.raw.prepare(sql, (error: Error | null) => {
        if (error) return reject(error);
        this.statements.set(sql, statement);
        if (this.statements.size > MAX_CACHED_STATEMENTS) {
          const [oldestSql, oldest] = this.statements.entries().next().value as [string, sqlcipher.Statement];
          this.statements.delete(oldestSql);
          oldest.finalize();
        }
        resolve(statement);
      });
    });
  }

  async finalizeAll(): Promise<void> {
    const all = [...this.statements.values()];
    this.statements.clear();
    await Promise.all(all.map((statement) => new Promise<void>((resolve) => statement.finalize(() => resolve()))));
  }
}

function makeQueries(raw: sqlcipher.Database, cache: StatementCache): SqlQueries {
  return {
    async run(sql, params) {
      const statement = await cache.get(sql);
      return new Promise((resolve, reject) => {
        statement.run(bindable(params), function (this: sqlcipher.RunResult, error: Error | null) {
          if (error) reject(error);
          else resolve({ changes: this.changes, lastId: this.lastID });
        });
      });
    },
    async get<T>(sql: string, params?: Params) {
      // Through all(): a statement stepped only once would stay open and pin a
      // WAL read snapshot until its next use.
      const rows = await this.all<T>(sql, params);
      return rows[0];
    },
    async all<T>(sql: string, params?: Params) {
      const statement = await cache.get(sql);
      return new Promise<T[]>((resolve, reject) => {
        statement.all(bindable(params), (error: Error | null, rows: T[]) => {
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
  // The key and pragmas run unprepared: nothing may be prepared before the key is set.
  const q = makeUnpreparedQueries(raw);
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

function makeUnpreparedQueries(raw: sqlcipher.Database): Pick<SqlQueries, 'exec' | 'get'> {
  return {
    exec: (sql) => new Promise((resolve, reject) => raw.exec(sql, (error: Error | null) => (error ? reject(error) : resolve()))),
    get: <T>(sql: string) =>
      new Promise<T | undefined>((resolve, reject) => raw.all(sql, [], (error: Error | null, rows: T[]) => (error ? reject(error) : resolve(rows[0])))),
  };
}

function wrap(file: string, raw: sqlcipher.Database): SqlDb {
  const lock = new Mutex();
  const cache = new StatementCache(raw);
  const q = makeQueries(raw, cache);
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
        await cache.finalizeAll();
        await new Promise<void>((resolve, reject) => raw.close((error) => (error ? reject(error) : resolve())));
      });
    },
  };
}
