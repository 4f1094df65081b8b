import { KernelError } from '../lib/errors.js';
import { quoteForMessage } from '../lib/quote.js';
import { compileValidator } from '../lib/schema.js';
import { assertDatabaseName } from '../vault/index.js';
import type { HttpContext } from './context.js';
import type { DatabaseGuard } from './deps.js';
import type { Session } from './sessions.js';

/** Compiles a body schema; every body schema rejects unknown fields. */
export function bodySchema<T>(properties: Record<string, object>, required: string[] = []) {
  return compileValidator<T>({ type: 'object', additionalProperties: false, properties, required }, 'request body');
}

/** Reads and validates a JSON body. An empty body counts as `{}`. */
export async function readBody<T>(c: HttpContext, validate: (value: unknown) => T): Promise<T> {
  // Read from the raw request, not hono's cached body: bodies carry passwords,
  // and the bytes this function owns are wiped once decoded (invariant 8;
  // the process is also not dumpable, see lib/harden.ts).
  const bytes = new Uint8Array(await c.req.raw.arrayBuffer());
  const text = new TextDecoder().decode(bytes);
  bytes.fill(0);
  let value: unknown = {};
  if (text.trim() !== '') {
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new KernelError('invalid_json', `The body is not valid JSON (${(error as Error).message}). Send a JSON object.`, { status: 400 });
    }
  }
  return validate(value);
}

export function actorOf(session: Session): string {
  return `operator:${session.client}:${session.id}`;
}

/** The operator session, or 401 (423 first when nothing is unlocked at all). */
export function requireSession(c: HttpContext, databases: Pick<DatabaseGuard, 'anyUnlocked'>): Session {
  const session = c.get('session');
  if (!session) {
    if (!databases.anyUnlocked()) {
      throw new KernelError('locked', 'No database is unlocked. Unlock one first (aip unlock).', { status: 423 });
    }
    throw new KernelError('not_authenticated', 'Prove the database password first (POST /api/databases/<name>/unlock or aip unlock).', { status: 401 });
  }
  return session;
}

/**
 * The `:db` of a route, refused with a clear 400 unless it is a database
 * name: it becomes the name of a file under the data directory.
 */
export function databaseNameOf(c: HttpContext): string {
  const name = c.req.param('db') ?? '';
  try {
    assertDatabaseName(name);
  } catch {
    throw new KernelError(
      'invalid_database_name',
      `${quoteForMessage(name)} is not a database name: names are 1-63 lowercase letters, digits, "-" or "_", starting with a letter or digit. See: aip status`,
      { status: 400 },
    );
  }
  return name;
}

/**
 * The database a `/api/databases/:db/...` route acts on: 400 for a value
 * that is not a database name, 404 if there is no such database, 423 while
 * it is locked, 401 unless this session proved its password.
 */
export async function databaseFor(c: HttpContext, databases: Pick<DatabaseGuard, 'isUnlocked' | 'exists'>): Promise<{ name: string; session: Session; actor: string }> {
  const name = databaseNameOf(c);
  if (!databases.isUnlocked(name)) {
    const exists = await databases.exists(name).catch(() => false);
    if (!exists) throw new KernelError('database_not_found', `There is no database named "${name}".`, { status: 404 });
    throw new KernelError('database_locked', `Database "${name}" is locked. Unlock it first (aip unlock --db ${name}).`, { status: 423 });
  }
  const session = c.get('session');
  if (!session || !session.databases.has(name)) {
    throw new KernelError('not_authenticated', `Prove the password of database "${name}" first (POST /api/databases/${name}/unlock or aip unlock).`, {
      status: 401,
    });
  }
  return { name, session, actor: actorOf(session) };
}

/** The audit actor of a stop (lock, switch off) asked for without a session: some local process, unproven. */
export const NO_SESSION_ACTOR = 'local:no-session';

/**
 * For the routes that only ever stop things (lock, MCP switch off): the
 * unlocked database with or without a session. 404/423 as for databaseFor.
 */
export async function unlockedDatabase(
  c: HttpContext,
  databases: Pick<DatabaseGuard, 'isUnlocked' | 'exists'>,
): Promise<{ name: string; session: Session | undefined; actor: string }> {
  const name = databaseNameOf(c);
  if (!databases.isUnlocked(name)) {
    const exists = await databases.exists(name).catch(() => false);
    if (!exists) throw new KernelError('database_not_found', `There is no database named "${name}".`, { status: 404 });
    throw new KernelError('database_locked', `Database "${name}" is locked already.`, { status: 423 });
  }
  const session = c.get('session');
  const proven = session && session.databases.has(name) ? session : undefined;
  return { name, session: proven, actor: proven ? actorOf(proven) : NO_SESSION_ACTOR };
}

/** The refusal of any plugin operation in a gateway built without a plugin host. */
export function noPluginHost(): KernelError {
  return new KernelError('plugins_unavailable', 'This gateway runs without a plugin host.', { status: 409 });
}

/** The default database: the first one created (its file's birth time, which no process can set), then by name. */
export function defaultDatabase(databases: ReadonlyArray<{ name: string; createdAt: string }>): string | null {
  const sorted = [...databases].sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.name.localeCompare(b.name));
  return sorted[0]?.name ?? null;
}

/** Parses an optional integer query parameter within bounds, with a clear error. */
export function intQuery(c: HttpContext, name: string, min: number, max: number): number | undefined {
  const raw = c.req.query(name);
  if (raw === undefined || raw === '') return undefined;
  if (!/^-?\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new KernelError('invalid_query', `Query parameter "${name}" must be an integer from ${min} to ${max}.`, { status: 400 });
  }
  return Number(raw);
}

/** Rejects query parameters a route does not know, like unknown body fields. */
export function checkQuery(c: HttpContext, allowed: readonly string[]): void {
  for (const key of Object.keys(c.req.queries())) {
    if (!allowed.includes(key)) {
      throw new KernelError('invalid_query', `Unknown query parameter "${key}". This route takes: ${allowed.length ? allowed.join(', ') : 'none'}.`, { status: 400 });
    }
  }
}

/** An ISO-8601 time; the store parses it and says so if it cannot. */
export const ISO_TIME = { type: ['string', 'null'], maxLength: 40 } as const;

/**
 * An optional time query parameter (`since`, `until`), normalised to the
 * ISO-8601 UTC form the stores compare against. A date alone means its
 * midnight UTC.
 */
export function timeQuery(c: HttpContext, name: string): string | undefined {
  const raw = c.req.query(name);
  if (raw === undefined || raw === '') return undefined;
  const ms = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(raw) ? Date.parse(raw) : Number.NaN;
  if (Number.isNaN(ms)) {
    throw new KernelError('invalid_query', `Query parameter "${name}" must be an ISO-8601 time such as 2026-05-01 or 2026-05-01T12:00:00Z; got "${raw.slice(0, 40)}".`, {
      status: 400,
    });
  }
  return new Date(ms).toISOString();
}

/**
 * Page cursors: `nextCursor` of one page is passed back as `cursor` to get
 * the next (older) one. Opaque to clients; today it carries the seq the next
 * page starts below, tagged with the listing it belongs to.
 */
export function encodeCursor(listing: 'audit' | 'requests', beforeSeq: number | null): string | null {
  return beforeSeq === null ? null : Buffer.from(`${listing}:${beforeSeq}`, 'utf8').toString('base64url');
}

/** The `before` seq of a page, from `cursor` or the older `before` parameter (both accepted; not both at once). */
export function pageQuery(c: HttpContext, listing: 'audit' | 'requests'): number | undefined {
  const before = intQuery(c, 'before', 1, Number.MAX_SAFE_INTEGER);
  const raw = c.req.query('cursor');
  if (raw === undefined || raw === '') return before;
  if (before !== undefined) throw new KernelError('invalid_query', 'Give either "cursor" or "before", not both.', { status: 400 });
  const match = /^([a-z]+):(\d{1,16})$/.exec(/^[A-Za-z0-9_-]{1,64}$/.test(raw) ? Buffer.from(raw, 'base64url').toString('utf8') : '');
  if (!match || match[1] !== listing || !(Number(match[2]) >= 1)) {
    throw new KernelError('invalid_query', `"cursor" is not a cursor of this ${listing} listing; pass the nextCursor of the previous page unchanged (or leave it out for the newest page).`, {
      status: 400,
    });
  }
  return Number(match[2]);
}
