import { createHash, randomBytes } from 'node:crypto';
import type { CheckContext } from './plugin.js';
import type { Endpoint } from './protocol/messages.js';

export interface PoolOptions<T> {
  /** Opens a resource (a connection) for this context's endpoint and lease. */
  create(ctx: CheckContext): Promise<T>;
  close(resource: T): Promise<void> | void;
  /** Closed after this long unused (default 60 s). */
  idleMs?: number;
  /** At most this many distinct resources (default 32); the least recently used is closed first. */
  maxResources?: number;
}

export interface Pool<T> {
  use<R>(ctx: CheckContext, fn: (resource: T) => Promise<R>): Promise<R>;
  /** Closes the resource for this context (after an error that broke it). */
  discard(ctx: CheckContext): Promise<void>;
  closeAll(): Promise<void>;
  readonly size: number;
}

// A per-process random salt: pool keys never equal a hash anyone could
// precompute from a known password.
const SALT = randomBytes(16);

/**
 * The endpoint as a fixed list of its fields, whatever order they came in:
 * one socket path or loopback port is one place (the kernel keeps an
 * endpoint stable per target and profile, which is what lets pooled
 * connections be reused), and a different TLS name is a different
 * connection.
 */
function endpointKey(endpoint: Endpoint | null): unknown[] | null {
  if (!endpoint) return null;
  const where = endpoint.type === 'unix' ? ['unix', endpoint.path] : ['tcp', endpoint.host, endpoint.port];
  return [...where, endpoint.transport, endpoint.serverName ?? null];
}

function keyOf(ctx: CheckContext): string {
  const material = JSON.stringify([endpointKey(ctx.endpoint), ctx.target, ctx.credentials.kind, Object.entries(ctx.credentials.fields).sort(([a], [b]) => a.localeCompare(b))]);
  return createHash('sha256').update(SALT).update(material).digest('hex');
}

/**
 * Reuses connections across invocations without keeping any lease: the key
 * is a salted hash of endpoint + target + credentials, so a changed password
 * gets a new connection and the old one idles out. A connection opened
 * through an endpoint may be used after its invocation ended (the kernel
 * keeps relaying it); a *new* connection can only be opened while an
 * invocation for that target and profile runs.
 */
export function createPool<T>(options: PoolOptions<T>): Pool<T> {
  const idleMs = options.idleMs ?? 60_000;
  const max = options.maxResources ?? 32;
  const entries = new Map<string, { resource: Promise<T>; timer: NodeJS.Timeout | undefined; users: number }>();

  const closeEntry = async (key: string) => {
    const entry = entries.get(key);
    if (!entry) return;
    entries.delete(key);
    if (entry.timer) clearTimeout(entry.timer);
    try {
      await options.close(await entry.resource);
    } catch {
      // a resource that failed to open or close is gone either way
    }
  };
  const armIdle = (key: string) => {
    const entry = entries.get(key);
    if (!entry || entry.users > 0) return;
    entry.timer = setTimeout(() => void closeEntry(key), idleMs);
    entry.timer.unref();
  };

  return {
    async use(ctx, fn) {
      const key = keyOf(ctx);
      let entry = entries.get(key);
      if (!entry) {
        if (entries.size >= max) {
          const idle = [...entries].find(([, e]) => e.users === 0);
          if (idle) await closeEntry(idle[0]);
        }
        entry = { resource: options.create(ctx), timer: undefined, users: 0 };
        entries.set(key, entry);
        entry.resource.catch(() => {
          if (entries.get(key) === entry) entries.delete(key);
        });
      }
      if (entry.timer) {
        clearTimeout(entry.timer);
        entry.timer = undefined;
      }
      // Move to the end: the map's order is least recently used first.
      entries.delete(key);
      entries.set(key, entry);
      entry.users += 1;
      try {
        return await fn(await entry.resource);
      } finally {
        entry.users -= 1;
        armIdle(key);
      }
    },
    discard: (ctx) => closeEntry(keyOf(ctx)),
    async closeAll() {
      await Promise.all([...entries.keys()].map(closeEntry));
    },
    get size() {
      return entries.size;
    },
  };
}
