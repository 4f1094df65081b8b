import type { SqlDb } from './sqlcipher.js';
import { MIGRATIONS, SCHEMA_VERSION } from './schema.js';
import { KernelError } from '../lib/errors.js';

/** Applies every migration newer than the file's user_version, each in its own transaction. */
export async function migrate(db: SqlDb, nowIso: string): Promise<{ from: number; to: number }> {
  const row = await db.get<{ user_version: number }>('PRAGMA user_version');
  const from = row?.user_version ?? 0;
  if (from > SCHEMA_VERSION) {
    throw new KernelError(
      'schema_too_new',
      `This database was written by a newer AIPermission (schema ${from}; this version knows up to ${SCHEMA_VERSION}). Upgrade AIPermission to open it.`,
      { status: 409 },
    );
  }
  for (const migration of MIGRATIONS) {
    if (migration.version <= from) continue;
    await db.write(async (tx) => {
      await tx.exec(migration.sql);
      await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT`);
      await tx.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [migration.version, migration.name, nowIso]);
      await tx.exec(`PRAGMA user_version = ${migration.version}`);
    });
  }
  return { from, to: SCHEMA_VERSION };
}
