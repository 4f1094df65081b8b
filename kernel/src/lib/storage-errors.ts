import { KernelError } from './errors.js';

/**
 * The operating system's words for the same conditions, from a file written
 * next to the databases (a plugin install, an import, a staging copy).
 */
const ERRNO_AS_SQLITE: Record<string, string> = { ENOSPC: 'SQLITE_FULL', EDQUOT: 'SQLITE_FULL', EROFS: 'SQLITE_READONLY', EIO: 'SQLITE_IOERR' };

/** SQLite's error codes (or the errno that means the same), found on an error or anywhere in its cause chain. */
function sqliteCodes(error: unknown): string[] {
  const codes: string[] = [];
  for (let current: unknown = error, depth = 0; current && typeof current === 'object' && depth < 8; depth += 1) {
    const { code, message, cause } = current as { code?: unknown; message?: unknown; cause?: unknown };
    if (typeof code === 'string') codes.push(ERRNO_AS_SQLITE[code] ?? code);
    // Some layers keep only the text: "SQLITE_FULL: database or disk is full", "ENOSPC: no space left on device".
    if (typeof message === 'string') {
      for (const match of message.matchAll(/\bSQLITE_[A-Z_]+\b/g)) codes.push(match[0]);
      for (const match of message.matchAll(/\b(ENOSPC|EDQUOT|EROFS)\b/g)) codes.push(ERRNO_AS_SQLITE[match[0]]!);
    }
    current = cause;
  }
  return codes;
}

/**
 * What a storage failure means for the person who hit it, instead of "something
 * went wrong": the disk is full, the database file cannot be written, or the
 * disk failed. The change was not made (SQLite rolled it back); reads go on
 * working. Undefined for anything that is not a storage failure.
 */
export function storageRefusal(error: unknown): KernelError | undefined {
  const codes = sqliteCodes(error);
  if (codes.some((code) => code.startsWith('SQLITE_FULL'))) {
    return new KernelError(
      'disk_full',
      'The disk that holds the gateway\'s data directory is full, so this change was not made (nothing was half-written). Free some space there and try again; reading keeps working meanwhile.',
      { status: 507, cause: error },
    );
  }
  if (codes.some((code) => code.startsWith('SQLITE_READONLY'))) {
    return new KernelError(
      'database_read_only',
      'The database file cannot be written (read-only file or file system), so this change was not made. Check the permissions and mount of the data directory; reading keeps working meanwhile.',
      { status: 503, cause: error },
    );
  }
  if (codes.some((code) => code.startsWith('SQLITE_IOERR') || code === 'SQLITE_CANTOPEN')) {
    return new KernelError(
      'storage_error',
      'The disk failed while the database was being written, so this change was not made. Check the disk that holds the data directory (space, errors in the system log) and try again.',
      { status: 503, cause: error },
    );
  }
  return undefined;
}
