import { randomBytes, timingSafeEqual } from 'node:crypto';
import { sha256Hex } from '../lib/canonical.mjs';
import { isoAt, type Clock } from '../lib/clock.js';
import { errors, KernelError } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import type { SqlDb, SqlTx } from '../vault/index.js';
import type { Audit } from '../audit/index.js';

/** `aip_` + 32 random bytes, base64url (43 characters). */
export const TOKEN_PATTERN = /^aip_[A-Za-z0-9_-]{43}$/;
const TOKEN_BODY_LENGTH = 43;
export const TOKEN_FORMAT = `aip_ followed by ${TOKEN_BODY_LENGTH} letters, digits, - or _ (${TOKEN_BODY_LENGTH + 4} characters in all)`;

/**
 * What is wrong with a string that should be a token, as a sentence for the
 * person who pasted it (a lost or extra character, a quote, a space), or
 * undefined when it has the token format. It names positions and counts,
 * never the token's characters, so the message can be shown and logged.
 */
export function tokenProblem(text: string): string | undefined {
  if (TOKEN_PATTERN.test(text)) return undefined;
  if (text === '') return `it is empty; a token is ${TOKEN_FORMAT}`;
  if (!text.startsWith('aip_')) {
    const at = text.indexOf('aip_');
    return at > 0
      ? `it has ${at} extra character${at === 1 ? '' : 's'} before aip_ (a quote or a space?); a token is ${TOKEN_FORMAT}`
      : `it does not start with aip_; a token is ${TOKEN_FORMAT}`;
  }
  const body = [...text.slice(4)];
  const bad = body.findIndex((char) => !/^[A-Za-z0-9_-]$/.test(char));
  if (bad >= 0) {
    const char = body[bad]!;
    const what = /\s/.test(char) ? 'a space or line break' : /^["'`]$/.test(char) ? 'a quote' : 'a character that is not a letter, digit, - or _';
    return `it has ${what} at position ${bad + 5}; a token is ${TOKEN_FORMAT}`;
  }
  const missing = TOKEN_BODY_LENGTH - body.length;
  return missing > 0
    ? `it is ${missing} character${missing === 1 ? '' : 's'} short (${text.length} characters; a token has ${TOKEN_BODY_LENGTH + 4}): was it cut off when copied? A token is ${TOKEN_FORMAT}`
    : `it is ${-missing} character${missing === -1 ? '' : 's'} too long (${text.length} characters; a token has ${TOKEN_BODY_LENGTH + 4}): was something pasted with it? A token is ${TOKEN_FORMAT}`;
}
/** How much of a token is kept for display: enough to tell tokens apart, far too little to use. */
const DISPLAY_PREFIX_LENGTH = 12;
/** last_used_at is written at most this often per token so the hot path does not write on every call. */
const TOUCH_INTERVAL_MS = 60_000;

export type TokenState = 'active' | 'expired' | 'revoked';

export interface TokenRecord {
  id: string;
  name: string;
  /** `aip_` and the first characters, for recognising a token in lists; never usable. */
  prefix: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

interface Row {
  id: string;
  name: string;
  hash: string;
  prefix: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
}

const toRecord = (row: Row): TokenRecord => ({
  id: row.id,
  name: row.name,
  prefix: row.prefix,
  createdAt: row.created_at,
  expiresAt: row.expires_at,
  revokedAt: row.revoked_at,
  lastUsedAt: row.last_used_at,
});

export function hashToken(token: string): string {
  return sha256Hex(token);
}

export function tokenState(token: TokenRecord, nowMs: number): TokenState {
  if (token.revokedAt) return 'revoked';
  if (token.expiresAt && Date.parse(token.expiresAt) <= nowMs) return 'expired';
  return 'active';
}

export interface TokenStore {
  /** Creates a token; the secret is returned here and never again (only its SHA-256 is stored). */
  create(input: { name: string; expiresAt?: string | null }, actor: string): Promise<{ token: TokenRecord; secret: string }>;
  list(): Promise<TokenRecord[]>;
  get(id: string): TokenRecord | undefined;
  require(id: string): TokenRecord;
  revoke(id: string, actor: string): Promise<TokenRecord>;
  /** Finds the token whose hash matches, comparing in constant time. */
  findByHash(hash: string): TokenRecord | undefined;
  /** Notes a successful use (throttled). */
  touch(id: string): void;
}

export async function createTokenStore(deps: {
  db: SqlDb;
  clock: Clock;
  audit: Pick<Audit, 'record'>;
  /** Called inside the revoke transaction so the token's pending approvals go stale with it. */
  onChanged: (tx: SqlTx, tokenId: string) => Promise<void>;
}): Promise<TokenStore> {
  const { db, clock, audit } = deps;
  // Every token of the database, by hash. Tokens are few and small; keeping
  // them in memory makes authentication a map lookup instead of a query on
  // the path of every MCP call.
  const byHash = new Map<string, Row>();
  const byId = new Map<string, Row>();
  const lastTouched = new Map<string, number>();
  for (const row of await db.all<Row>('SELECT * FROM tokens')) {
    byHash.set(row.hash, row);
    byId.set(row.id, row);
  }

  const store: TokenStore = {
    async create(input, actor) {
      const name = input.name.trim();
      if (name.length === 0 || name.length > 100) throw errors.invalid('A token name must be 1-100 characters, e.g. "claude-code on laptop".');
      const nowMs = clock.now();
      if (input.expiresAt) {
        const at = Date.parse(input.expiresAt);
        if (Number.isNaN(at)) throw errors.invalid(`expiresAt "${input.expiresAt}" is not an ISO-8601 time.`);
        if (at <= nowMs) throw errors.invalid('expiresAt is in the past; a token must expire in the future.');
      }
      const secret = `aip_${randomBytes(32).toString('base64url')}`;
      const row: Row = {
        id: newId('tok'),
        name,
        hash: hashToken(secret),
        prefix: secret.slice(0, DISPLAY_PREFIX_LENGTH),
        created_at: isoAt(nowMs),
        expires_at: input.expiresAt ? isoAt(Date.parse(input.expiresAt)) : null,
        revoked_at: null,
        last_used_at: null,
      };
      await db.write(async (tx) => {
        await tx.run('INSERT INTO tokens (id, name, hash, prefix, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)', [
          row.id,
          row.name,
          row.hash,
          row.prefix,
          row.created_at,
          row.expires_at,
        ]);
        await audit.record(tx, {
          actor,
          event: 'token.created',
          subject: { tokenId: row.id },
          payload: { name: row.name, prefix: row.prefix, expiresAt: row.expires_at },
        });
        tx.afterCommit(() => {
          byHash.set(row.hash, row);
          byId.set(row.id, row);
        });
      });
      return { token: toRecord(row), secret };
    },
    async list() {
      return [...byId.values()].sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id)).map(toRecord);
    },
    get(id) {
      const row = byId.get(id);
      return row ? toRecord(row) : undefined;
    },
    require(id) {
      const token = store.get(id);
      if (!token) throw errors.notFound('Token', id);
      return token;
    },
    async revoke(id, actor) {
      const row = byId.get(id);
      if (!row) throw errors.notFound('Token', id);
      if (row.revoked_at) return toRecord(row);
      const revokedAt = isoAt(clock.now());
      await db.write(async (tx) => {
        await tx.run('UPDATE tokens SET revoked_at = ? WHERE id = ?', [revokedAt, id]);
        await audit.record(tx, { actor, event: 'token.revoked', subject: { tokenId: id }, payload: { name: row.name, prefix: row.prefix } });
        // The in-memory row changes now so the re-check below sees the token as revoked;
        // on rollback it is restored.
        row.revoked_at = revokedAt;
        try {
          await deps.onChanged(tx, id);
        } catch (error) {
          row.revoked_at = null;
          throw error;
        }
      });
      return toRecord(row);
    },
    findByHash(hash) {
      const row = byHash.get(hash);
      if (!row) return undefined;
      // The map lookup keys on a hash of the secret, never the secret; the
      // final comparison is constant-time all the same.
      const a = Buffer.from(row.hash, 'hex');
      const b = Buffer.from(hash, 'hex');
      if (a.length !== b.length || !timingSafeEqual(a, b)) return undefined;
      return toRecord(row);
    },
    touch(id) {
      const nowMs = clock.now();
      const previous = lastTouched.get(id) ?? 0;
      if (nowMs - previous < TOUCH_INTERVAL_MS) return;
      lastTouched.set(id, nowMs);
      const at = isoAt(nowMs);
      const row = byId.get(id);
      if (row) row.last_used_at = at;
      db.run('UPDATE tokens SET last_used_at = ? WHERE id = ?', [at, id]).catch(() => {
        // Best effort: last-used is informational and must never fail a call.
      });
    },
  };
  return store;
}

export function tokenRefusal(state: Exclude<TokenState, 'active'>): KernelError {
  return state === 'revoked'
    ? new KernelError('token_revoked', 'This MCP token has been revoked. Ask your operator for a new token.', { status: 401 })
    : new KernelError('token_expired', 'This MCP token has expired. Ask your operator for a new token.', { status: 401 });
}
