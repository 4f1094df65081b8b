import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { chmod, copyFile, link, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KernelError } from '../lib/errors.js';
import { confinedPath } from '../lib/confine.js';
import { isoAt, type Clock } from '../lib/clock.js';
import { newId } from '../lib/ids.js';
import { openSqlCipher, sqlLiteral, sqliteCode, type SqlDb } from './sqlcipher.js';
import { assertPasswordRules } from './password-rules.js';
import { createSealer, type Sealer } from './seal.js';
import { migrate } from './migrate.js';
import { startCheckpointer, type Checkpointer } from './checkpointer.js';
import { SCHEMA_VERSION } from './schema.js';
import { assertDatabaseName, DATABASE_EXTENSION, isPlaintextSqlite, PLAINTEXT_REFUSED_MESSAGE } from './data-dir.js';

/** What `list()` tells about one database file; nothing in it needs the password. */
export interface DatabaseInfo {
  name: string;
  file: string;
  sizeBytes: number;
  modifiedAt: string;
  /**
   * When the file came into being (its birth time where the file system
   * keeps one, which no process can set; else its change time). Picks the
   * default database: the first one, which an agent cannot pre-date.
   */
  createdAt: string;
  /** A safety copy left by an interrupted password change. */
  hasSafetyCopy: boolean;
}

/** An unlocked database: the connection plus the vault key's sealer. */
export interface OpenDatabase {
  readonly name: string;
  readonly file: string;
  readonly db: SqlDb;
  readonly sealer: Sealer;
  /** Random id fixed at creation; tells two databases apart even after a rename or import. */
  readonly databaseId: string;
  /**
   * Set when this open finished an interrupted password change: `completed`
   * (the new password was typed; the change is now in force), `abandoned`
   * (the old password was typed before the change took effect; it stays) or
   * `reverted` (the old password was typed after the rekey, before its copies
   * were removed: the old password is back). The databases module audits it.
   */
  readonly recovered?: 'completed' | 'abandoned' | 'reverted';
  /** Proves a password against the file with a fresh connection (full key derivation, so it costs as much as a guess should). */
  verifyPassword(password: string): Promise<boolean>;
  /** Rekeys the open database. A safety copy is taken first and removed after the new key is proven. */
  changePassword(currentPassword: string, newPassword: string): Promise<void>;
  /** Writes an encrypted, portable copy (same password) to outFile; never overwrites. */
  exportTo(outFile: string, password: string): Promise<void>;
  close(): Promise<void>;
}

export interface Vault {
  readonly dataDir: string;
  readonly databasesDir: string;
  list(): Promise<DatabaseInfo[]>;
  exists(name: string): Promise<boolean>;
  /** First-run setup or another workspace: creates an encrypted database; never overwrites. */
  create(name: string, password: string): Promise<void>;
  open(name: string, password: string): Promise<OpenDatabase>;
  /** Offline password proof (no gateway needed). */
  verifyPassword(name: string, password: string): Promise<boolean>;
  /** Offline password change. */
  changePassword(name: string, currentPassword: string, newPassword: string): Promise<void>;
  /** Offline export: opens the file, writes the copy, closes. Safe while the gateway has it open. */
  exportDatabase(name: string, password: string, outFile: string): Promise<void>;
  /** Imports an .aipdb as a new named database; never overwrites an existing one. */
  importDatabase(file: string, password: string, name: string): Promise<DatabaseInfo>;
  fileFor(name: string): string;
}

/** A byte copy under the old password, taken before a rekey. */
const SAFETY_SUFFIX = '.rekey-backup';
/** A complete copy under the new password, written before the rekey starts (renamed from `.partial` once complete). */
const NEW_COPY_SUFFIX = '.rekey-new';

function wrongPassword(name: string): KernelError {
  return new KernelError('wrong_password', `That password does not open database "${name}".`, { status: 401 });
}

async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Removes a SQLite file and its WAL/SHM companions. */
/** A database file and its companions (WAL, shared memory, rollback journal). */
async function removeDatabaseFiles(file: string): Promise<void> {
  await Promise.all(['', '-wal', '-shm', '-journal'].map((suffix) => rm(`${file}${suffix}`, { force: true })));
}

async function tryOpen(file: string, password: string, readOnly = false): Promise<SqlDb | undefined> {
  try {
    return await openSqlCipher(file, { key: password, readOnly });
  } catch (error) {
    if (sqliteCode(error) === 'SQLITE_NOTADB') return undefined;
    throw error;
  }
}

async function readMeta(db: SqlDb, key: string): Promise<string | undefined> {
  const row = await db.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [key]);
  return row?.value;
}

/**
 * Moves a finished temporary file to its final name without ever replacing
 * a file there: link() fails if the name exists, so creation, import and
 * export never overwrite, and a half-written file never has the final name.
 */
async function linkNoOverwrite(tmp: string, file: string, exists: () => KernelError): Promise<void> {
  // SQLite creates files 0644; a database (encrypted or not) is its owner's alone.
  await chmod(tmp, 0o600);
  try {
    await link(tmp, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw exists();
    throw error;
  }
}

const databaseExists = (name: string, verb: string) => () =>
  new KernelError('database_exists', `A database named "${name}" already exists; ${verb} never overwrites. Choose another name.`, { status: 409 });

/** Writes a complete copy of the open database under `password` into an empty file, inside the caller's exclusive hold. */
async function exportInto(q: Parameters<Parameters<SqlDb['exclusive']>[0]>[0], file: string, password: string): Promise<void> {
  await q.exec(`ATTACH DATABASE ${sqlLiteral(file)} AS aip_export KEY ${sqlLiteral(password)}`);
  try {
    await q.get(`SELECT sqlcipher_export('aip_export')`);
    const version = await q.get<{ user_version: number }>('PRAGMA main.user_version');
    await q.exec(`PRAGMA aip_export.user_version = ${Number(version?.user_version ?? 0)}`);
  } finally {
    await q.exec('DETACH DATABASE aip_export');
  }
}

async function exportWith(db: SqlDb, outFile: string, password: string): Promise<void> {
  const tmp = `${outFile}.partial-${randomBytes(4).toString('hex')}`;
  try {
    // ATTACH inherits the connection's open flags, which do not include
    // "create"; SQLite treats an existing empty file as a new database.
    await writeFile(tmp, '', { flag: 'wx', mode: 0o600 });
    await db.exclusive((q) => exportInto(q, tmp, password));
    await linkNoOverwrite(tmp, outFile, () => new KernelError('file_exists', `${outFile} already exists; exports never overwrite. Choose another file name.`, { status: 409 }));
  } finally {
    await removeDatabaseFiles(tmp);
  }
}

export function createVault(options: { dataDir: string; clock: Clock; log?: (message: string, error?: unknown) => void }): Vault {
  const { dataDir, clock } = options;
  const databasesDir = join(dataDir, 'databases');
  // Names are checked against the name pattern first; the confinement holds even if a check is missed.
  const fileFor = (name: string) => confinedPath(databasesDir, `${name}${DATABASE_EXTENSION}`);

  const ensureDirs = async () => {
    // 0700: the files are encrypted, but their names and sizes are nobody else's business.
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    await mkdir(databasesDir, { recursive: true, mode: 0o700 });
  };

  const requireExisting = async (name: string): Promise<string> => {
    assertDatabaseName(name);
    const file = fileFor(name);
    if (!(await pathExists(file))) {
      throw new KernelError('database_not_found', `There is no database named "${name}". See the list with: aip db list`, { status: 404 });
    }
    if (await isPlaintextSqlite(file)) throw new KernelError('plaintext_database', PLAINTEXT_REFUSED_MESSAGE, { status: 400 });
    return file;
  };

  /** Opens with the password, handling a safety copy left by an interrupted rekey. */
  /**
   * Opens the main file, finishing an interrupted password change first if
   * there is one: the change leaves a copy under the old password and a
   * complete copy under the new one before it rekeys, so after an
   * interruption either password opens the database, and the one typed
   * decides whether the change happened.
   */
  const openVerified = async (name: string, password: string): Promise<{ db: SqlDb; recovered?: OpenDatabase['recovered'] }> => {
    const file = await requireExisting(name);
    const oldCopy = `${file}${SAFETY_SUFFIX}`;
    const newCopy = `${file}${NEW_COPY_SUFFIX}`;
    // A new-password copy that never became complete is not a copy.
    await removeDatabaseFiles(`${newCopy}.partial`);
    const pending = (await pathExists(oldCopy)) || (await pathExists(newCopy));
    const removeCopies = async () => {
      await removeDatabaseFiles(oldCopy);
      await removeDatabaseFiles(newCopy);
    };
    const db = await tryOpen(file, password);
    if (db) {
      if (!pending) return { db };
      // The main file opened with the password typed: the change either never
      // took effect (old password) or finished (new one); the copies are redundant.
      const usesNew = (await pathExists(newCopy)) && (await opens(newCopy, password));
      await removeCopies();
      return { db, recovered: usesNew ? 'completed' : 'abandoned' };
    }
    for (const [copy, outcome] of [
      [newCopy, 'completed'],
      [oldCopy, 'reverted'],
    ] as const) {
      if (!(await pathExists(copy)) || !(await opens(copy, password))) continue;
      await removeDatabaseFiles(file);
      await rename(copy, file);
      await removeCopies();
      const restored = await tryOpen(file, password);
      if (restored) return { db: restored, recovered: outcome };
    }
    throw wrongPassword(name);
  };
  const opens = async (file: string, password: string): Promise<boolean> => {
    const probe = await tryOpen(file, password, true);
    if (!probe) return false;
    await probe.close();
    return true;
  };

  const toOpenDatabase = async (name: string, db: SqlDb, password: string, recovered?: OpenDatabase['recovered']): Promise<OpenDatabase> => {
    await migrate(db, isoAt(clock.now()));
    const keyHex = await readMeta(db, 'vault_key');
    const databaseId = await readMeta(db, 'database_id');
    if (!keyHex || !databaseId) {
      await db.close();
      throw new KernelError('not_an_aip_database', `Database "${name}" opened, but it has no vault key: it is not an AIPermission database.`, {
        status: 400,
      });
    }
    const sealer = createSealer(Buffer.from(keyHex, 'hex'));
    const file = db.file;
    let checkpointer: Checkpointer = await startCheckpointer(db, file, password, options.log);
    const verifyPassword = async (password: string): Promise<boolean> => {
      const probe = await tryOpen(file, password, true);
      if (!probe) return false;
      await probe.close();
      return true;
    };
    const rekey = async (newPassword: string) => {
      const safety = `${file}${SAFETY_SUFFIX}`;
      const newCopy = `${file}${NEW_COPY_SUFFIX}`;
      await db.exclusive(async (q) => {
        // Fold the WAL into the main file so the copies are complete.
        await q.get('PRAGMA wal_checkpoint(TRUNCATE)');
        await removeDatabaseFiles(safety);
        await removeDatabaseFiles(newCopy);
        await copyFile(file, safety, fsConstants.COPYFILE_EXCL);
        // A complete copy under the new password, so an interruption from
        // here on can be finished with the new password too: written under a
        // partial name, renamed only once complete.
        const partial = `${newCopy}.partial`;
        await removeDatabaseFiles(partial);
        await writeFile(partial, '', { flag: 'wx', mode: 0o600 });
        await exportInto(q, partial, newPassword);
        await rename(partial, newCopy);
        // Rekey rewrites every page; do it in rollback-journal mode so the
        // change is one atomic transaction on the main file.
        await q.get('PRAGMA journal_mode = DELETE');
        await q.exec(`PRAGMA rekey = ${sqlLiteral(newPassword)}`);
        await q.get('PRAGMA journal_mode = WAL');
      });
      const probe = await tryOpen(file, newPassword, true);
      if (!probe) {
        throw new KernelError(
          'rekey_unverified',
          `The password change could not be verified; the safety copy ${safety} (old password) was kept. Lock the database and unlock it again with the old password to restore it.`,
          { status: 500 },
        );
      }
      await probe.close();
      await removeDatabaseFiles(newCopy);
      await removeDatabaseFiles(safety);
    };
    return {
      name,
      file,
      db,
      sealer,
      databaseId,
      ...(recovered ? { recovered } : {}),
      verifyPassword,
      async changePassword(currentPassword, newPassword) {
        assertPasswordRules(newPassword);
        if (!(await verifyPassword(currentPassword))) throw wrongPassword(name);
        // The rekey needs the file alone (it leaves WAL mode): the checkpoint
        // connection is closed first and reopened with whichever key is then in force.
        await checkpointer.stop();
        try {
          await rekey(newPassword);
        } finally {
          if (!db.closed) {
            const key = (await verifyPassword(newPassword)) ? newPassword : currentPassword;
            checkpointer = await startCheckpointer(db, file, key, options.log);
          }
        }
      },
      exportTo: (outFile, password) => exportWith(db, outFile, password),
      async close() {
        await checkpointer.stop();
        await db.close();
      },
    };
  };

  const vault: Vault = {
    dataDir,
    databasesDir,
    fileFor,
    async list() {
      await ensureDirs();
      const entries = await readdir(databasesDir);
      const infos: DatabaseInfo[] = [];
      for (const entry of entries.sort()) {
        if (!entry.endsWith(DATABASE_EXTENSION)) continue;
        const name = entry.slice(0, -DATABASE_EXTENSION.length);
        const file = join(databasesDir, entry);
        try {
          const info = await stat(file);
          infos.push({
            name,
            file,
            sizeBytes: info.size,
            modifiedAt: info.mtime.toISOString(),
            createdAt: (info.birthtimeMs > 0 ? info.birthtime : info.ctime).toISOString(),
            hasSafetyCopy: (await pathExists(`${file}${SAFETY_SUFFIX}`)) || (await pathExists(`${file}${NEW_COPY_SUFFIX}`)),
          });
        } catch {
          // Removed between readdir and stat: not listed.
        }
      }
      return infos;
    },
    async exists(name) {
      assertDatabaseName(name);
      return pathExists(fileFor(name));
    },
    async create(name, password) {
      assertDatabaseName(name);
      assertPasswordRules(password);
      await ensureDirs();
      const file = fileFor(name);
      if (await pathExists(file)) throw databaseExists(name, 'creating')();
      const tmp = join(databasesDir, `.creating-${name}-${randomBytes(4).toString('hex')}`);
      try {
        const db = await openSqlCipher(tmp, { key: password, create: true });
        try {
          const now = isoAt(clock.now());
          await migrate(db, now);
          await db.write(async (tx) => {
            await tx.run('INSERT INTO meta (key, value) VALUES (?, ?), (?, ?), (?, ?)', [
              'vault_key',
              randomBytes(32).toString('hex'),
              'database_id',
              newId('db'),
              'created_at',
              now,
            ]);
          });
        } finally {
          await db.close();
        }
        await linkNoOverwrite(tmp, file, databaseExists(name, 'creating'));
      } finally {
        await removeDatabaseFiles(tmp);
      }
    },
    async open(name, password) {
      const { db, recovered } = await openVerified(name, password);
      return toOpenDatabase(name, db, password, recovered);
    },
    async verifyPassword(name, password) {
      const file = await requireExisting(name);
      const db = await tryOpen(file, password, true);
      if (!db) return false;
      await db.close();
      return true;
    },
    async changePassword(name, currentPassword, newPassword) {
      const opened = await vault.open(name, currentPassword);
      try {
        await opened.changePassword(currentPassword, newPassword);
      } finally {
        await opened.close();
      }
    },
    async exportDatabase(name, password, outFile) {
      const file = await requireExisting(name);
      const db = await tryOpen(file, password);
      if (!db) throw wrongPassword(name);
      try {
        await exportWith(db, outFile, password);
      } finally {
        await db.close();
      }
    },
    async importDatabase(sourceFile, password, name) {
      assertDatabaseName(name);
      await ensureDirs();
      if (!(await pathExists(sourceFile))) {
        throw new KernelError('file_not_found', `${sourceFile} does not exist.`, { status: 404 });
      }
      if (await isPlaintextSqlite(sourceFile)) throw new KernelError('plaintext_database', PLAINTEXT_REFUSED_MESSAGE, { status: 400 });
      const file = fileFor(name);
      if (await pathExists(file)) throw databaseExists(name, 'import')();
      const tmp = join(databasesDir, `.importing-${name}-${randomBytes(4).toString('hex')}`);
      try {
        await copyFile(sourceFile, tmp, fsConstants.COPYFILE_EXCL);
        const db = await tryOpen(tmp, password);
        if (!db) {
          throw new KernelError(
            'wrong_password',
            'That password does not open this file. It must be the password the database had when it was exported.',
            { status: 401 },
          );
        }
        try {
          // Bring an export from an older version up to this schema now, so
          // the first unlock is not where a surprise happens.
          await migrate(db, isoAt(clock.now()));
          if (!(await readMeta(db, 'vault_key'))) {
            throw new KernelError('not_an_aip_database', 'The file is an encrypted database but not an AIPermission export (it has no vault key).', {
              status: 400,
            });
          }
        } finally {
          await db.close();
        }
        await linkNoOverwrite(tmp, file, databaseExists(name, 'import'));
      } finally {
        await removeDatabaseFiles(tmp);
      }
      const info = (await vault.list()).find((candidate) => candidate.name === name);
      if (!info) throw new Error('imported database vanished');
      return info;
    },
  };
  return vault;
}

export { SCHEMA_VERSION };
