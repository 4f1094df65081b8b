import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../lib/clock.js';
import { newId } from '../lib/ids.js';

/**
 * An operator session: created by proving a database password (typed in the
 * UI or at a TTY by the CLI), carried by an HttpOnly SameSite=Strict cookie.
 * It covers exactly the databases whose passwords it proved (invariant 8).
 */
export interface Session {
  /** The cookie value: the bearer secret. Never logged. */
  readonly secret: string;
  /** Public id, safe for audit entries (`operator:ui:ses_...`). */
  readonly id: string;
  readonly csrf: string;
  readonly client: 'ui' | 'cli';
  readonly databases: Set<string>;
  readonly createdAt: number;
  lastSeenAt: number;
  /**
   * Session starts not on the audit record yet (`<database>:<session id>`),
   * because the disk was full when they were proven; shared with the
   * sessions this one rotates into. Until it is empty the session may read
   * but not change anything (boundary.ts), so no change is ever recorded
   * before the start of the session that made it.
   */
  readonly unrecorded: Set<string>;
}

export interface SessionStore {
  /** A fresh session (new secret) covering `databases` plus the databases of `previous`, which ends. */
  issue(database: string, client: 'ui' | 'cli', previous?: Session): Session;
  get(secret: string | undefined): Session | undefined;
  destroy(session: Session): void;
  /** Removes a database from every session (it was locked, or its password changed) except `keep`. */
  dropDatabase(database: string, keep?: Session): void;
  readonly size: number;
}

/** Twelve idle hours: a working day with a long lunch; after that the password is asked again. */
export const SESSION_IDLE_MS = 12 * 3_600_000;
/** A session never outlives a week, however active. */
export const SESSION_MAX_MS = 7 * 86_400_000;

export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export function createSessionStore(clock: Clock): SessionStore {
  const sessions = new Map<string, Session>();
  const expired = (session: Session, now: number) => now - session.lastSeenAt > SESSION_IDLE_MS || now - session.createdAt > SESSION_MAX_MS;
  return {
    issue(database, client, previous) {
      const now = clock.now();
      const databases = new Set(previous && !expired(previous, now) ? previous.databases : []);
      databases.add(database);
      if (previous) sessions.delete(previous.secret);
      // Rotate on every proof: a session secret never gains power it did not have when it was issued.
      const session: Session = {
        secret: randomBytes(32).toString('base64url'),
        id: newId('ses'),
        csrf: randomBytes(32).toString('base64url'),
        client,
        databases,
        createdAt: now,
        lastSeenAt: now,
        unrecorded: previous?.unrecorded ?? new Set(),
      };
      sessions.set(session.secret, session);
      return session;
    },
    get(secret) {
      if (!secret) return undefined;
      const session = sessions.get(secret);
      if (!session) return undefined;
      const now = clock.now();
      if (expired(session, now) || session.databases.size === 0) {
        sessions.delete(secret);
        return undefined;
      }
      session.lastSeenAt = now;
      return session;
    },
    destroy(session) {
      sessions.delete(session.secret);
    },
    dropDatabase(database, keep) {
      for (const session of sessions.values()) {
        if (session !== keep) session.databases.delete(database);
      }
    },
    get size() {
      return sessions.size;
    },
  };
}
