/**
 * The Redis connector: the reference plugin. Every read is bounded twice:
 * by item count and by bytes, both capped by the manifest, and the kernel
 * bounds the output again. Hashes, sets and sorted sets are read with
 * *SCAN / ranges, never an unbounded HGETALL or SMEMBERS.
 */
import { Redis, type RedisOptions } from 'ioredis';
import {
  ActionError,
  configError,
  createPool,
  defineAction,
  definePlugin,
  encodeBytes,
  isEntryPoint,
  serve,
  socketOptionsOf,
  tlsIdentityFor,
  transientError,
  type CheckContext,
  type ConnectionProblem,
} from '@aipermission/plugin-sdk';

/** Largest value `set_string` writes and `get_key` reads (512 KiB), as the product specifies. */
const MAX_VALUE_BYTES = 512 * 1024;
/** One year: the longest TTL an agent may set. */
const MAX_TTL_SECONDS = 31_536_000;
/** SCAN rounds per call: bounds the time a sparse keyspace can take. */
const MAX_SCAN_ROUNDS = 100;

const KEY = { type: 'string', minLength: 1, maxLength: 1024 } as const;

// ---- connections -------------------------------------------------------------

/**
 * Connection options for the endpoint the kernel opened (a unix socket in
 * the sandbox, or loopback TCP): never the target's own address, which the
 * plugin cannot reach. TLS runs end to end through the kernel's relay and
 * verifies the target's name (the endpoint's serverName, i.e. the target's
 * host, or the target's tlsServername), never the endpoint's address.
 */
function optionsFor(ctx: CheckContext): RedisOptions {
  if (!ctx.endpoint) throw configError('The target has no address: set "host" (and "port") in its configuration.');
  const target = ctx.target as { db?: number; tls?: boolean; tlsServername?: string; tlsCaPem?: string; tlsRejectUnauthorized?: boolean };
  const fields = ctx.credentials.fields as { username?: string; password?: string };
  const serverName = target.tlsServername || ctx.endpoint.serverName;
  if (target.tls && !serverName) throw configError('The target uses TLS but has no name to check the server certificate against: set "tlsServername" in its configuration.');
  return {
    ...socketOptionsOf(ctx.endpoint),
    ...(fields.username ? { username: fields.username } : {}),
    ...(fields.password ? { password: fields.password } : {}),
    db: target.db ?? 0,
    ...(target.tls
      ? {
          tls: {
            ...tlsIdentityFor(serverName!),
            ...(target.tlsCaPem ? { ca: target.tlsCaPem } : {}),
            rejectUnauthorized: target.tlsRejectUnauthorized ?? true,
          },
        }
      : {}),
    lazyConnect: true,
    connectTimeout: 5_000,
    commandTimeout: 10_000,
    // No silent reconnects: a broken connection leaves the pool and the next
    // call connects afresh with its own lease.
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
  };
}

const pool = createPool<Redis>({
  async create(ctx) {
    const client = new Redis(optionsFor(ctx));
    // ioredis reports the cause (WRONGPASS, a certificate error) as an
    // 'error' event; connect() itself only says the connection closed.
    let cause: unknown;
    client.on('error', (error: unknown) => {
      cause ??= error;
    });
    try {
      await client.connect();
    } catch (error) {
      client.disconnect();
      throw cause ?? error;
    }
    // The connection is authenticated; the password need not stay in its options.
    delete (client.options as { password?: string }).password;
    return client;
  },
  close: (client) => void client.disconnect(),
  idleMs: 60_000,
});

function problemOf(error: unknown): { problem: ConnectionProblem; message: string } {
  const err = error as { code?: string; message?: string };
  const message = String(err.message ?? error);
  if (/WRONGPASS|NOAUTH|NOPERM|invalid password|invalid username-password/i.test(message)) {
    return { problem: 'auth_failed', message: `Redis refused the credentials: ${message.replace(/^ReplyError: /, '')}` };
  }
  if (/SSL|TLS|certificate|EPROTO|wrong version number|self.signed|DEPTH_ZERO/i.test(message) || err.code?.startsWith('ERR_TLS') || err.code?.startsWith('ERR_SSL')) {
    return { problem: 'tls', message: `The TLS handshake with Redis failed: ${message}` };
  }
  if (/ETIMEDOUT|timed? ?out/i.test(message) || err.code === 'ETIMEDOUT') return { problem: 'timeout', message: `Redis did not answer in time: ${message}` };
  // EPIPE: the first command was written to a connection the other side had already closed (the kernel's
  // endpoint closes it when it cannot reach the target), which races with ioredis seeing the close.
  if (/ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|ECONNRESET|EPIPE|EAI_AGAIN|Connection is closed|connect/i.test(message)) {
    return { problem: 'network', message: `Cannot reach Redis: ${message}` };
  }
  return { problem: 'unknown', message };
}

/** Runs fn on a pooled connection; maps Redis and network errors to action errors an operator can act on. */
async function withRedis<T>(ctx: CheckContext, fn: (client: Redis) => Promise<T>): Promise<T> {
  try {
    return await pool.use(ctx, fn);
  } catch (error) {
    if (error instanceof ActionError) throw error;
    const { problem, message } = problemOf(error);
    // A connection that failed is not reused.
    await pool.discard(ctx);
    if (problem === 'network' || problem === 'timeout') throw transientError(message, error);
    if (problem === 'auth_failed' || problem === 'tls') throw configError(message, error);
    const reply = /^(?:ReplyError: )?([A-Z]+ .*)/.exec(message);
    if (reply) throw configError(`Redis answered: ${reply[1]}`, error);
    throw error;
  }
}

// ---- helpers -----------------------------------------------------------------------

/** A value as JSON-safe text: UTF-8 when it is, base64 when not, cut to a byte budget. */
function valueOut(buffer: Buffer, budget: { left: number }): { value: string; encoding: 'utf8' | 'base64'; bytes: number; truncated: boolean } {
  const take = Math.max(0, Math.min(buffer.length, budget.left));
  budget.left -= take;
  const encoded = encodeBytes(buffer.subarray(0, take));
  return { value: encoded.data, encoding: encoded.encoding, bytes: buffer.length, truncated: take < buffer.length };
}

function pttlToMs(pttl: number): number | null {
  return pttl < 0 ? null : pttl;
}

// ---- actions -------------------------------------------------------------------------

const ping = defineAction({
  name: 'ping',
  title: 'Ping',
  description: 'Checks that Redis answers, and how fast.',
  risk: 'read',
  input: { type: 'object', additionalProperties: false, properties: {} },
  output: {
    type: 'object',
    additionalProperties: false,
    required: ['reply', 'latencyMs'],
    properties: { reply: { type: 'string' }, latencyMs: { type: 'number' } },
  },
  limits: { timeoutMs: 10_000, maxOutputBytes: 1024 },
  handler: (_input, ctx) =>
    withRedis(ctx, async (client) => {
      const started = performance.now();
      const reply = await client.ping();
      return { reply, latencyMs: Math.round((performance.now() - started) * 1000) / 1000 };
    }),
});

const info = defineAction({
  name: 'info',
  title: 'Server info',
  description: 'Runs INFO (optionally one section) and returns its fields.',
  risk: 'read',
  input: {
    type: 'object',
    additionalProperties: false,
    properties: { section: { type: 'string', pattern: '^[a-z_]{1,32}$', description: 'e.g. server, memory, clients, keyspace, replication, stats' } },
  },
  output: {
    type: 'object',
    additionalProperties: false,
    required: ['sections', 'truncated'],
    properties: {
      sections: { type: 'object', description: 'section name -> field -> value' },
      truncated: { type: 'boolean' },
    },
  },
  limits: { timeoutMs: 10_000, maxOutputBytes: 128 * 1024 },
  handler: (input, ctx) =>
    withRedis(ctx, async (client) => {
      const text = input.section ? await client.info(input.section) : await client.info();
      const sections: Record<string, Record<string, string>> = {};
      let current = 'default';
      const budget = { left: ctx.limits.maxOutputBytes - 256 };
      let truncated = false;
      for (const line of text.split(/\r?\n/)) {
        if (line.startsWith('# ')) {
          current = line.slice(2).trim().toLowerCase();
          continue;
        }
        const index = line.indexOf(':');
        if (index <= 0) continue;
        const key = line.slice(0, index);
        const value = line.slice(index + 1);
        budget.left -= key.length + value.length + 8;
        if (budget.left < 0) {
          truncated = true;
          break;
        }
        (sections[current] ??= {})[key] = value;
      }
      return { sections, truncated };
    }),
});

const scanKeys = defineAction({
  name: 'scan_keys',
  title: 'Scan keys',
  description:
    'Lists keys matching a glob pattern with SCAN (never KEYS). Continue with the returned cursor until done is true. A page can hold a few more keys than limit: SCAN batches cannot be split without losing keys.',
  risk: 'read',
  input: {
    type: 'object',
    additionalProperties: false,
    properties: {
      pattern: { type: 'string', minLength: 1, maxLength: 512, default: '*' },
      cursor: { type: 'string', pattern: '^[0-9]{1,20}$', default: '0' },
      limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
      type: { enum: ['string', 'hash', 'list', 'set', 'zset', 'stream'] },
    },
  },
  output: {
    type: 'object',
    additionalProperties: false,
    required: ['keys', 'cursor', 'done'],
    properties: {
      keys: { type: 'array', items: { type: 'string' } },
      cursor: { type: 'string' },
      done: { type: 'boolean' },
    },
  },
  limits: { timeoutMs: 20_000, maxOutputBytes: 512 * 1024 },
  handler: (input, ctx) =>
    withRedis(ctx, async (client) => {
      const limit = input.limit ?? 100;
      const keys: string[] = [];
      let cursor = input.cursor ?? '0';
      for (let round = 0; round < MAX_SCAN_ROUNDS; round += 1) {
        if (ctx.signal.aborted) break;
        const args: Array<string | number> = ['MATCH', input.pattern ?? '*', 'COUNT', Math.min(1000, Math.max(limit - keys.length, 10))];
        if (input.type) args.push('TYPE', input.type);
        const [next, batch] = (await client.call('SCAN', cursor, ...args)) as [string, string[]];
        cursor = next;
        // The whole batch: the cursor has moved past all of it.
        keys.push(...batch);
        if (cursor === '0' || keys.length >= limit) break;
      }
      return { keys, cursor, done: cursor === '0' };
    }),
});

const item = { type: 'object' } as const;
const getKey = defineAction({
  name: 'get_key',
  title: 'Read a key',
  description:
    'Reads one key by its type (string, hash, list, set, zset, stream), bounded by item_limit items and max_bytes bytes; says when it cut. Binary values come back base64-encoded.',
  risk: 'read',
  input: {
    type: 'object',
    additionalProperties: false,
    required: ['key'],
    properties: {
      key: KEY,
      item_limit: { type: 'integer', minimum: 1, maximum: 1000, default: 256 },
      max_bytes: { type: 'integer', minimum: 1, maximum: MAX_VALUE_BYTES, default: 131_072 },
    },
  },
  output: {
    type: 'object',
    additionalProperties: false,
    required: ['key', 'type', 'exists', 'truncated'],
    properties: {
      key: { type: 'string' },
      type: { type: 'string' },
      exists: { type: 'boolean' },
      ttlMs: { type: ['integer', 'null'] },
      size: { type: 'integer' },
      value: { type: 'string' },
      encoding: { enum: ['utf8', 'base64'] },
      items: { type: 'array', items: item },
      truncated: { type: 'boolean' },
    },
  },
  limits: { timeoutMs: 20_000, maxOutputBytes: 768 * 1024 },
  handler: (input, ctx) =>
    withRedis(ctx, async (client) => {
      const key = input.key;
      const itemLimit = input.item_limit ?? 256;
      const budget = { left: input.max_bytes ?? 131_072 };
      // One round trip for the common case: type, TTL and a string's length and
      // bytes go pipelined together (for another type the string reads answer
      // WRONGTYPE and are ignored; that type's own reads follow). Plain
      // pipelining, not MULTI, so a user limited to +@read can run it.
      const [[, type], [, pttl], [sizeError, stringSize], [bytesError, stringBytes]] = (await client
        .pipeline()
        .type(key)
        .pttl(key)
        .strlen(key)
        // GETRANGE, not GET: a 1 GB string is never read whole.
        .getrangeBuffer(key, 0, Math.max(0, budget.left - 1))
        .exec()) as [[Error | null, string], [Error | null, number], [Error | null, number], [Error | null, Buffer]];
      if (type === 'none') return { key, type, exists: false, truncated: false };
      const ttlMs = pttlToMs(pttl);
      switch (type) {
        case 'string': {
          // The key changed type between TYPE and the reads (a race): say so rather than guess.
          const raced = sizeError ?? bytesError;
          if (raced) throw raced;
          const size = stringSize;
          const bytes = stringBytes;
          const out = valueOut(bytes, budget);
          return { key, type, exists: true, ttlMs, size, value: out.value, encoding: out.encoding, truncated: size > bytes.length || out.truncated };
        }
        case 'hash': {
          const size = await client.hlen(key);
          const items: Array<Record<string, unknown>> = [];
          let cursor = '0';
          let cut = false;
          do {
            const [next, flat] = await client.hscanBuffer(key, cursor, 'COUNT', Math.min(1000, itemLimit));
            cursor = next.toString();
            for (let i = 0; i + 1 < flat.length; i += 2) {
              if (items.length >= itemLimit || budget.left <= 0) {
                cut = true;
                break;
              }
              const field = valueOut(flat[i]!, budget);
              const value = valueOut(flat[i + 1]!, budget);
              items.push({ field: field.value, value: value.value, encoding: value.encoding, ...(value.truncated || field.truncated ? { truncated: true } : {}) });
            }
          } while (cursor !== '0' && !cut && !ctx.signal.aborted);
          return { key, type, exists: true, ttlMs, size, items, truncated: items.length < size };
        }
        case 'list': {
          const size = await client.llen(key);
          const values = await client.lrangeBuffer(key, 0, itemLimit - 1);
          const items = [];
          for (const [index, buffer] of values.entries()) {
            if (budget.left <= 0) break;
            const out = valueOut(buffer, budget);
            items.push({ index, value: out.value, encoding: out.encoding, ...(out.truncated ? { truncated: true } : {}) });
          }
          return { key, type, exists: true, ttlMs, size, items, truncated: items.length < size || items.some((i) => 'truncated' in i) };
        }
        case 'set': {
          const size = await client.scard(key);
          const items: Array<Record<string, unknown>> = [];
          let cursor = '0';
          do {
            const [next, members] = await client.sscanBuffer(key, cursor, 'COUNT', Math.min(1000, itemLimit));
            cursor = next.toString();
            for (const member of members) {
              if (items.length >= itemLimit || budget.left <= 0) break;
              const out = valueOut(member, budget);
              items.push({ member: out.value, encoding: out.encoding, ...(out.truncated ? { truncated: true } : {}) });
            }
          } while (cursor !== '0' && items.length < itemLimit && budget.left > 0 && !ctx.signal.aborted);
          return { key, type, exists: true, ttlMs, size, items, truncated: items.length < size };
        }
        case 'zset': {
          const size = await client.zcard(key);
          const flat = await client.zrangeBuffer(key, '0', String(itemLimit - 1), 'WITHSCORES');
          const items = [];
          for (let i = 0; i + 1 < flat.length; i += 2) {
            if (budget.left <= 0) break;
            const out = valueOut(flat[i]!, budget);
            items.push({ member: out.value, score: Number(flat[i + 1]!.toString()), encoding: out.encoding, ...(out.truncated ? { truncated: true } : {}) });
          }
          return { key, type, exists: true, ttlMs, size, items, truncated: items.length < size };
        }
        case 'stream': {
          const size = await client.xlen(key);
          const entries = (await client.xrange(key, '-', '+', 'COUNT', String(itemLimit))) as Array<[string, string[]]>;
          const items = [];
          for (const [id, fields] of entries) {
            const record: Record<string, string> = {};
            for (let i = 0; i + 1 < fields.length; i += 2) {
              const out = valueOut(Buffer.from(fields[i + 1]!), budget);
              record[fields[i]!] = out.value;
            }
            if (budget.left < 0) break;
            items.push({ id, fields: record });
          }
          return { key, type, exists: true, ttlMs, size, items, truncated: items.length < size };
        }
        default:
          return { key, type, exists: true, ttlMs, truncated: false };
      }
    }),
});

const setString = defineAction({
  name: 'set_string',
  title: 'Set a string',
  description: 'SET key value, with an optional TTL (0 = keep no TTL) and an optional condition (only if absent / only if present).',
  risk: 'write',
  input: {
    type: 'object',
    additionalProperties: false,
    required: ['key', 'value'],
    properties: {
      key: KEY,
      value: { type: 'string', maxLength: MAX_VALUE_BYTES },
      ttl_seconds: { type: 'integer', minimum: 0, maximum: MAX_TTL_SECONDS, default: 0 },
      condition: { enum: ['always', 'if_absent', 'if_present'], default: 'always' },
    },
  },
  output: {
    type: 'object',
    additionalProperties: false,
    required: ['written'],
    properties: { written: { type: 'boolean' } },
  },
  limits: { timeoutMs: 10_000, maxOutputBytes: 1024 },
  handler: (input, ctx) =>
    withRedis(ctx, async (client) => {
      if (Buffer.byteLength(input.value, 'utf8') > MAX_VALUE_BYTES) throw configError(`The value is larger than ${MAX_VALUE_BYTES} bytes.`);
      const args: Array<string | number> = [];
      if ((input.ttl_seconds ?? 0) > 0) args.push('EX', input.ttl_seconds!);
      if (input.condition === 'if_absent') args.push('NX');
      if (input.condition === 'if_present') args.push('XX');
      const reply = (await client.call('SET', input.key, input.value, ...args)) as string | null;
      return { written: reply === 'OK' };
    }),
});

const expireKey = defineAction({
  name: 'expire_key',
  title: 'Set or remove a TTL',
  description: 'EXPIRE key seconds (1 to one year), or seconds = -1 to PERSIST (remove the TTL).',
  risk: 'write',
  input: {
    type: 'object',
    additionalProperties: false,
    required: ['key', 'seconds'],
    properties: { key: KEY, seconds: { type: 'integer', minimum: -1, maximum: MAX_TTL_SECONDS, not: { const: 0 } } },
  },
  output: {
    type: 'object',
    additionalProperties: false,
    required: ['changed'],
    properties: { changed: { type: 'boolean' } },
  },
  limits: { timeoutMs: 10_000, maxOutputBytes: 1024 },
  handler: (input, ctx) =>
    withRedis(ctx, async (client) => {
      const changed = input.seconds === -1 ? await client.persist(input.key) : await client.expire(input.key, input.seconds);
      return { changed: changed === 1 };
    }),
});

const deleteKeys = defineAction({
  name: 'delete_keys',
  title: 'Delete keys',
  description: 'DEL up to 1,000 keys. Destructive: the values are gone.',
  risk: 'destructive',
  input: {
    type: 'object',
    additionalProperties: false,
    required: ['keys'],
    properties: { keys: { type: 'array', minItems: 1, maxItems: 1000, uniqueItems: true, items: KEY } },
  },
  output: {
    type: 'object',
    additionalProperties: false,
    required: ['deleted'],
    properties: { deleted: { type: 'integer' } },
  },
  limits: { timeoutMs: 20_000, maxOutputBytes: 1024 },
  handler: (input, ctx) => withRedis(ctx, async (client) => ({ deleted: await client.del(...input.keys) })),
});

export const plugin = definePlugin({
  id: 'redis',
  version: '1.0.0',
  title: 'Redis',
  description: 'Inspect and change a Redis server: ping, info, scan keys, read keys by type with bounds, set strings, TTLs, delete keys.',
  targetSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['host'],
    properties: {
      host: { type: 'string', minLength: 1, maxLength: 253 },
      port: { type: 'integer', minimum: 1, maximum: 65535, default: 6379 },
      db: { type: 'integer', minimum: 0, maximum: 1023, default: 0 },
      tls: { type: 'boolean', default: false },
      tlsServername: { type: 'string', maxLength: 253, description: "the name the server's certificate must carry, when it is not host" },
      tlsCaPem: { type: 'string', maxLength: 65536 },
      tlsRejectUnauthorized: { type: 'boolean', default: true },
    },
  },
  credentialSchemas: {
    password: {
      type: 'object',
      additionalProperties: false,
      required: ['password'],
      properties: {
        username: { type: 'string', maxLength: 256, description: 'ACL user (Redis 6+); leave out for the default user' },
        password: { type: 'string', minLength: 1, maxLength: 4096, 'x-secret': true },
      },
    },
    none: { type: 'object', additionalProperties: false, properties: {} },
  },
  transports: ['direct'],
  defaultPort: 6379,
  help: {
    summary: 'Redis key/value store. Read with scan_keys and get_key; writes (set_string, expire_key) and delete_keys usually need approval.',
    usage:
      'Find keys with scan_keys (a glob pattern; continue with the returned cursor until done). Read one with get_key: it picks the command by type and returns at most item_limit items and max_bytes bytes, with truncated=true when it cut. Binary values are base64 with encoding="base64".',
    warnings: ['delete_keys cannot be undone.', 'Patterns like "*" on a large keyspace take several calls; keep limit modest.'],
  },
  actions: [ping, info, scanKeys, getKey, setString, expireKey, deleteKeys],
  async checkConnection(ctx) {
    try {
      return await pool.use(ctx, async (client) => {
        const pong = await client.ping();
        const server = await client.info('server');
        const version = /redis_version:(\S+)/.exec(server)?.[1];
        return { ok: true, message: `Redis answered ${pong}${version ? ` (version ${version})` : ''}.`, details: { ...(version ? { version } : {}) } };
      });
    } catch (error) {
      await pool.discard(ctx);
      if (error instanceof ActionError && error.kind === 'config') return { ok: false, problem: 'config', message: error.userMessage };
      const { problem, message } = problemOf(error);
      return { ok: false, problem, message };
    }
  },
  onShutdown: () => pool.closeAll(),
});

// Serve only when run as the plugin process (tests import the definition).
if (isEntryPoint(import.meta.url)) serve(plugin);
