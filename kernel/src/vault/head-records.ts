import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * Rollback detection. An agent with the operator's account can replace an
 * encrypted database file with an older copy of itself (undoing a revoked
 * token, a removed grant, audit entries) without knowing its password; that
 * cannot be prevented while it shares the account (docs/security.md). It can
 * be noticed: what was last seen of each database (how often it was opened,
 * its audit head) is kept outside the file, and a file that is older than
 * that is reported at unlock. The record is only as safe as the data
 * directory; an external copy of the audit head (aip audit verify prints it)
 * is what a careful operator keeps elsewhere.
 */
export interface HeadRecord {
  databaseId: string;
  /** Opens of the database so far (also counted inside the file: meta 'open_count'). */
  openCount: number;
  auditSeq: number;
  auditHash: string;
  at: string;
}

export interface HeadRecords {
  read(databaseId: string): Promise<HeadRecord | undefined>;
  write(record: HeadRecord): Promise<void>;
}

const ID_PATTERN = /^db_[a-z0-9]{4,64}$/;

export function createHeadRecords(dataDir: string): HeadRecords {
  const dir = join(dataDir, 'heads');
  const fileFor = (databaseId: string) => {
    // The id comes from inside a database file, which an agent can forge: it never becomes a path unchecked.
    if (!ID_PATTERN.test(databaseId)) throw new Error(`"${databaseId}" is not a database id`);
    return join(dir, `${databaseId}.json`);
  };
  return {
    async read(databaseId) {
      try {
        const parsed = JSON.parse(await readFile(fileFor(databaseId), 'utf8')) as Partial<HeadRecord>;
        if (typeof parsed.openCount !== 'number' || typeof parsed.auditSeq !== 'number' || typeof parsed.auditHash !== 'string') return undefined;
        return { databaseId, openCount: parsed.openCount, auditSeq: parsed.auditSeq, auditHash: parsed.auditHash, at: String(parsed.at ?? '') };
      } catch {
        return undefined;
      }
    },
    async write(record) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const file = fileFor(record.databaseId);
      const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
      await writeFile(tmp, `${JSON.stringify(record)}\n`, { mode: 0o600 });
      await rename(tmp, file);
    },
  };
}

/** A sentence for the operator when the file is older than what was last seen here, else undefined. */
export function describeRollback(seen: HeadRecord | undefined, now: { openCount: number; auditSeq: number; auditHash: string }): string | undefined {
  if (!seen) return undefined;
  const older = now.openCount < seen.openCount || now.auditSeq < seen.auditSeq;
  const replaced = now.auditSeq === seen.auditSeq && now.auditHash !== seen.auditHash && now.openCount <= seen.openCount;
  if (!older && !replaced) return undefined;
  return (
    `This database file is older than the one last seen here (audit log at entry ${now.auditSeq}, last seen at ${seen.auditSeq}` +
    `${seen.at ? ` on ${seen.at}` : ''}; opened ${now.openCount} times, last seen ${seen.openCount}). ` +
    'Someone may have put back an older copy, which would undo revoked tokens, removed grants and audit entries. ' +
    'If you restored a backup on purpose, this is expected; otherwise check the tokens and grants, and compare the audit head with a copy you keep elsewhere.'
  );
}
