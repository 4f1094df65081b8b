import sqlcipher from '@journeyapps/sqlcipher';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KernelError } from '../lib/errors.js';

/**
 * One gateway per data directory. Two gateways on the same files both
 * accepted requests, and then the first one's writes failed until a
 * lock/unlock. The lock is an SQLite exclusive transaction held open on
 * `gateway.lock` for the gateway's lifetime: an OS file lock, so it is
 * released when the process dies however it dies (kill -9 included), and a
 * second process (or a second gateway in the same process) gets SQLITE_BUSY
 * at once. `gateway.json` beside it says who holds it, for the refusal.
 */
export interface DataDirLock {
  /** Records this gateway's address for the message a second gateway prints. */
  publish(info: { url: string; port: number; version: string }): Promise<void>;
  release(): Promise<void>;
}

export const LOCK_FILE = 'gateway.lock';
export const GATEWAY_INFO_FILE = 'gateway.json';

interface RawDb {
  exec(sql: string, callback: (error: Error | null) => void): void;
  close(callback: (error: Error | null) => void): void;
}

const exec = (db: RawDb, sql: string) => new Promise<void>((resolve, reject) => db.exec(sql, (error) => (error ? reject(error) : resolve())));
const close = (db: RawDb) => new Promise<void>((resolve) => db.close(() => resolve()));

async function holderDescription(dataDir: string): Promise<string> {
  try {
    const info = JSON.parse(await readFile(join(dataDir, GATEWAY_INFO_FILE), 'utf8')) as { pid?: number; url?: string; startedAt?: string };
    return `Another gateway (pid ${info.pid ?? '?'}, ${info.url ?? 'address unknown'}${info.startedAt ? `, started ${info.startedAt}` : ''})`;
  } catch {
    return 'Another gateway (it has not published its address yet)';
  }
}

export async function acquireDataDirLock(dataDir: string): Promise<DataDirLock> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, LOCK_FILE);
  const db = await new Promise<RawDb>((resolve, reject) => {
    const opened: RawDb = new sqlcipher.Database(file, (error: Error | null) => (error ? reject(error) : resolve(opened)));
  });
  try {
    await exec(db, 'PRAGMA busy_timeout = 0; PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;');
  } catch (error) {
    await close(db);
    if ((error as { code?: string }).code === 'SQLITE_BUSY') {
      throw new KernelError(
        'data_dir_in_use',
        `${await holderDescription(dataDir)} is already using the data directory ${dataDir}. Stop it first (Ctrl-C in its terminal), or start this one with another --data-dir.`,
        { status: 409 },
      );
    }
    throw error;
  }
  let released = false;
  return {
    async publish(info) {
      const record = { pid: process.pid, url: info.url, port: info.port, version: info.version, dataDir, startedAt: new Date().toISOString() };
      await writeFile(join(dataDir, GATEWAY_INFO_FILE), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
    },
    async release() {
      if (released) return;
      released = true;
      await rm(join(dataDir, GATEWAY_INFO_FILE), { force: true }).catch(() => undefined);
      await exec(db, 'ROLLBACK').catch(() => undefined);
      await close(db);
    },
  };
}
