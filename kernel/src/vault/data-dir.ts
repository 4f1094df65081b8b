import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { open } from 'node:fs/promises';
import { KernelError } from '../lib/errors.js';

/** `--data-dir` wins, then AIP_DATA_DIR, then ~/.aipermission. */
export function resolveDataDir(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (explicit && explicit.trim() !== '') return resolve(explicit);
  if (env.AIP_DATA_DIR && env.AIP_DATA_DIR.trim() !== '') return resolve(env.AIP_DATA_DIR);
  return join(homedir(), '.aipermission');
}

/** Database file extension; an export is the same format, so import is a verified copy. */
export const DATABASE_EXTENSION = '.aipdb';

const NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export function assertDatabaseName(name: string): void {
  if (!NAME_PATTERN.test(name)) {
    throw new KernelError(
      'invalid_database_name',
      `"${name}" is not a usable database name: use 1-63 lowercase letters, digits, "-" or "_", starting with a letter or digit.`,
      { status: 400 },
    );
  }
}

/** A database name derived from a file name, e.g. `Team Backup.aipdb` -> `team-backup`. */
export function databaseNameFromFile(file: string): string {
  const base = file.split(/[\\/]/).pop() ?? 'imported';
  const stem = base.replace(/\.(aipdb|db|sqlite3?)$/i, '');
  const cleaned = stem
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^[-_]+|[-_]+$/g, '')
    .slice(0, 63);
  return cleaned === '' ? 'imported' : cleaned;
}

const SQLITE_HEADER = Buffer.from('SQLite format 3\u0000', 'latin1');

/**
 * True when the file starts with SQLite's plaintext header. An SQLCipher file
 * starts with a random salt instead, so this is how a plaintext database is
 * told apart before any key is tried.
 */
export async function isPlaintextSqlite(file: string): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    const header = Buffer.alloc(16);
    const { bytesRead } = await handle.read(header, 0, 16, 0);
    return bytesRead === 16 && header.equals(SQLITE_HEADER);
  } finally {
    await handle.close();
  }
}

export const PLAINTEXT_REFUSED_MESSAGE =
  'This is a plaintext (unencrypted) SQLite file. AIPermission only opens SQLCipher-encrypted databases: create a new database (aip db create) or import an .aipdb export instead.';
