import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readFile, writeFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import sqlcipher from '@journeyapps/sqlcipher';
import { createVault, passwordProblems, type Vault, databaseNameFromFile, resolveDataDir, SCHEMA_VERSION } from '../src/vault/index.js';
import { systemClock } from '../src/lib/clock.js';
import { tempDir, PASSWORD, OTHER_PASSWORD } from './helpers/temp.js';

let dir: string;
let cleanup: () => Promise<void>;
let vault: Vault;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  vault = createVault({ dataDir: dir, clock: systemClock });
});
afterEach(async () => cleanup());

describe('password rules', () => {
  it('accepts a password of 14+ characters with upper, lower and a digit', () => {
    expect(passwordProblems('Abcdefghijklm1')).toEqual([]);
  });
  it('names every missing part of a weak password', () => {
    expect(passwordProblems('short')).toEqual([
      'at least 14 characters (it has 5)',
      'an uppercase letter',
      'a digit',
    ]);
    expect(passwordProblems('ALLUPPERCASE123')).toEqual(['a lowercase letter']);
    expect(passwordProblems('nouppercase12345')).toEqual(['an uppercase letter']);
    expect(passwordProblems('NoDigitsAtAllHere')).toEqual(['a digit']);
  });
  it('refuses to create a database with a weak password and says why', async () => {
    await expect(vault.create('main', 'weakpassword')).rejects.toMatchObject({ code: 'weak_password', message: expect.stringContaining('an uppercase letter') });
    expect(await vault.list()).toEqual([]);
  });
});

describe('data directory', () => {
  it('prefers --data-dir, then AIP_DATA_DIR, then ~/.aipermission', () => {
    expect(resolveDataDir('/x/y', { AIP_DATA_DIR: '/env' })).toBe('/x/y');
    expect(resolveDataDir(undefined, { AIP_DATA_DIR: '/env' })).toBe('/env');
    expect(resolveDataDir(undefined, {})).toMatch(/\.aipermission$/);
  });
});

describe('vault', () => {
  it('creates an encrypted file that is not readable as plain SQLite', async () => {
    await vault.create('main', PASSWORD);
    const bytes = await readFile(vault.fileFor('main'));
    expect(bytes.subarray(0, 15).toString('latin1')).not.toBe('SQLite format 3');
    expect(bytes.includes(Buffer.from('vault_key'))).toBe(false);
  });

  it('refuses a wrong password with a clear error', async () => {
    await vault.create('main', PASSWORD);
    await expect(vault.open('main', OTHER_PASSWORD)).rejects.toMatchObject({ code: 'wrong_password', status: 401 });
    expect(await vault.verifyPassword('main', OTHER_PASSWORD)).toBe(false);
    expect(await vault.verifyPassword('main', PASSWORD)).toBe(true);
  });

  it('never overwrites an existing database on create', async () => {
    await vault.create('main', PASSWORD);
    await expect(vault.create('main', OTHER_PASSWORD)).rejects.toMatchObject({ code: 'database_exists' });
    expect(await vault.verifyPassword('main', PASSWORD)).toBe(true);
  });

  it('rejects unusable database names', async () => {
    await expect(vault.create('../evil', PASSWORD)).rejects.toMatchObject({ code: 'invalid_database_name' });
    await expect(vault.create('Upper', PASSWORD)).rejects.toMatchObject({ code: 'invalid_database_name' });
  });

  it('keeps several databases unlocked at once', async () => {
    await vault.create('alpha', PASSWORD);
    await vault.create('beta', OTHER_PASSWORD);
    const a = await vault.open('alpha', PASSWORD);
    const b = await vault.open('beta', OTHER_PASSWORD);
    expect(a.databaseId).not.toBe(b.databaseId);
    await a.db.run("INSERT INTO settings (key, value, updated_at) VALUES ('x', '1', 'now')");
    expect(await b.db.get("SELECT value FROM settings WHERE key = 'x'")).toBeUndefined();
    await a.close();
    await b.close();
    expect((await vault.list()).map((d) => d.name)).toEqual(['alpha', 'beta']);
  });

  it('seals secrets so a blob only opens in the row it was sealed for', async () => {
    await vault.create('main', PASSWORD);
    const db = await vault.open('main', PASSWORD);
    const blob = db.sealer.seal('{"password":"hunter2"}', 'profile:p1:secret');
    expect(blob.includes(Buffer.from('hunter2'))).toBe(false);
    expect(db.sealer.open(blob, 'profile:p1:secret')).toBe('{"password":"hunter2"}');
    expect(() => db.sealer.open(blob, 'profile:p2:secret')).toThrow(/integrity/);
    await db.close();
  });

  it('changes the password (rekey) and keeps everything, removing the safety copy', async () => {
    await vault.create('main', PASSWORD);
    const db = await vault.open('main', PASSWORD);
    const sealed = db.sealer.seal('secret-value', 'aad');
    await db.db.run('INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)', ['k', 'v', 'now']);
    await db.db.run("INSERT INTO meta (key, value) VALUES ('blob', ?)", [sealed.toString('base64')]);
    await expect(db.changePassword('Wrong-Password-123', OTHER_PASSWORD)).rejects.toMatchObject({ code: 'wrong_password' });
    await expect(db.changePassword(PASSWORD, 'weak')).rejects.toMatchObject({ code: 'weak_password' });
    await db.changePassword(PASSWORD, OTHER_PASSWORD);
    // The open connection keeps working after the rekey.
    await db.db.run('INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)', ['k2', 'v2', 'now']);
    await db.close();
    expect((await readdir(vault.databasesDir)).filter((f) => f.includes('rekey-backup'))).toEqual([]);

    await expect(vault.open('main', PASSWORD)).rejects.toMatchObject({ code: 'wrong_password' });
    const again = await vault.open('main', OTHER_PASSWORD);
    expect(await again.db.all('SELECT key, value FROM settings ORDER BY key')).toEqual([
      { key: 'k', value: 'v' },
      { key: 'k2', value: 'v2' },
    ]);
    const row = await again.db.get<{ value: string }>("SELECT value FROM meta WHERE key = 'blob'");
    expect(again.sealer.open(Buffer.from(row!.value, 'base64'), 'aad')).toBe('secret-value');
    await again.close();
  });

  it('restores from the safety copy when a password change was interrupted', async () => {
    await vault.create('main', PASSWORD);
    const file = vault.fileFor('main');
    // Simulate a crash after the safety copy was taken and the main file was damaged mid-rekey.
    await writeFile(`${file}.rekey-backup`, await readFile(file));
    await writeFile(file, Buffer.alloc(8192, 7));
    expect((await vault.list())[0]!.hasSafetyCopy).toBe(true);
    const db = await vault.open('main', PASSWORD);
    await db.close();
    expect((await vault.list())[0]!.hasSafetyCopy).toBe(false);
  });

  it('exports a portable .aipdb and imports it as a new database', async () => {
    await vault.create('main', PASSWORD);
    const db = await vault.open('main', PASSWORD);
    const sealed = db.sealer.seal('portable secret', 'aad');
    await db.db.run("INSERT INTO meta (key, value) VALUES ('blob', ?)", [sealed.toString('base64')]);
    await db.db.run("INSERT INTO audit_fts (rowid, event, actor, subject, payload) VALUES (1, 'test.searched', 'operator', '{}', 'pineapple')");
    const out = join(dir, 'backup.aipdb');
    await db.exportTo(out, PASSWORD);
    await expect(db.exportTo(out, PASSWORD)).rejects.toMatchObject({ code: 'file_exists' });
    await db.close();

    const info = await vault.importDatabase(out, PASSWORD, 'copy');
    expect(info.name).toBe('copy');
    const copy = await vault.open('copy', PASSWORD);
    const row = await copy.db.get<{ value: string }>("SELECT value FROM meta WHERE key = 'blob'");
    expect(copy.sealer.open(Buffer.from(row!.value, 'base64'), 'aad')).toBe('portable secret');
    // Full-text index came along.
    expect(await copy.db.all("SELECT rowid FROM audit_fts WHERE audit_fts MATCH 'pineapple'")).toEqual([{ rowid: 1 }]);
    expect(await copy.db.get('PRAGMA user_version')).toEqual({ user_version: SCHEMA_VERSION });
    await copy.close();
  });

  it('exports offline while another connection has the database open', async () => {
    await vault.create('main', PASSWORD);
    const db = await vault.open('main', PASSWORD);
    await db.db.run('INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)', ['live', '1', 'now']);
    const out = join(dir, 'live.aipdb');
    await vault.exportDatabase('main', PASSWORD, out);
    await db.close();
    await vault.importDatabase(out, PASSWORD, 'live-copy');
    const copy = await vault.open('live-copy', PASSWORD);
    expect(await copy.db.get("SELECT value FROM settings WHERE key = 'live'")).toEqual({ value: '1' });
    await copy.close();
  });

  it('never overwrites on import and asks for the export password', async () => {
    await vault.create('main', PASSWORD);
    const out = join(dir, 'x.aipdb');
    await vault.exportDatabase('main', PASSWORD, out);
    await expect(vault.importDatabase(out, PASSWORD, 'main')).rejects.toMatchObject({ code: 'database_exists' });
    await expect(vault.importDatabase(out, OTHER_PASSWORD, 'other')).rejects.toMatchObject({ code: 'wrong_password' });
    expect((await vault.list()).map((d) => d.name)).toEqual(['main']);
    expect(databaseNameFromFile('/tmp/Team Backup.aipdb')).toBe('team-backup');
  });

  it('refuses a plaintext SQLite file with a clear message', async () => {
    const plain = join(dir, 'plain.db');
    await new Promise<void>((resolve, reject) => {
      const db = new sqlcipher.Database(plain, (error) => {
        if (error) return reject(error);
        db.run('CREATE TABLE t (x)', (e) => (e ? reject(e) : db.close((c) => (c ? reject(c) : resolve()))));
      });
    });
    await expect(vault.importDatabase(plain, PASSWORD, 'plain')).rejects.toMatchObject({
      code: 'plaintext_database',
      message: expect.stringContaining('plaintext (unencrypted) SQLite'),
    });
    // Even when dropped straight into the databases folder.
    await vault.list();
    await writeFile(vault.fileFor('dropped'), await readFile(plain));
    await expect(vault.open('dropped', PASSWORD)).rejects.toMatchObject({ code: 'plaintext_database' });
  });

  it('records applied migrations', async () => {
    await vault.create('main', PASSWORD);
    const db = await vault.open('main', PASSWORD);
    expect(await db.db.all('SELECT version, name FROM schema_migrations ORDER BY version')).toEqual([
      { version: 1, name: 'kernel core' },
      { version: 2, name: 'plugin approvals' },
      { version: 3, name: 'operator-run requests' },
      { version: 4, name: 'plugin approvals pin the entry' },
      { version: 5, name: 'indexes for filters and maintenance at scale' },
      { version: 6, name: 'ssh keys and pinned host keys' },
    ]);
    await db.close();
  });
});

describe('WAL checkpoints', () => {
  /** Writes about 4 MB in one commit: past SQLite's 1,000-page automatic checkpoint. */
  const writeBig = (db: Awaited<ReturnType<Vault['open']>>) =>
    db.db.write((tx) => tx.exec('CREATE TABLE IF NOT EXISTS bulk (x BLOB); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000) INSERT INTO bulk SELECT randomblob(1000) FROM n;'));
  const sizeOf = async (file: string) => (await stat(file)).size;

  it('folds the WAL in from a second connection, never inside a commit of the gateway, also after a password change', async () => {
    await vault.create('main', PASSWORD);
    const db = await vault.open('main', PASSWORD);
    try {
      expect(await db.db.get('PRAGMA wal_autocheckpoint')).toEqual({ wal_autocheckpoint: 0 });
      for (const round of [1, 2]) {
        const before = await sizeOf(db.file);
        await writeBig(db);
        // The commit left its pages in the WAL: no call waited for a checkpoint inside it.
        expect(await sizeOf(db.file)).toBeLessThan(before + 1024 * 1024);
        await new Promise((resolve) => setTimeout(resolve, 2500));
        // The checkpoint connection copied them into the file meanwhile.
        expect(await sizeOf(db.file)).toBeGreaterThan(before + 3 * 1024 * 1024);
        if (round === 1) await db.changePassword(PASSWORD, OTHER_PASSWORD);
      }
    } finally {
      await db.close();
    }
    expect(await vault.verifyPassword('main', OTHER_PASSWORD)).toBe(true);
  });
});
