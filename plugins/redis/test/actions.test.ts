import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createHarness, type HarnessCall } from '@aipermission/plugin-sdk/testing';
import { plugin } from '../src/plugin.js';
import { freePort, REDIS, startTlsRedis, startUnixRedis } from './helpers.js';

const harness = createHarness(plugin);
const direct = new Redis({ ...REDIS, lazyConnect: false });
const prefix = `aip:test:${process.pid}:`;
// The endpoint as the kernel hands it without bubblewrap: loopback TCP (here Redis itself), named after the target's host.
const call: HarnessCall = { target: { host: REDIS.host, db: 0 }, credentials: { kind: 'none', fields: {} }, endpoint: { type: 'tcp', ...REDIS, transport: 'direct', serverName: REDIS.host } };
const invoke = (action: string, input: unknown, c: HarnessCall = call) => harness.invoke(action, input, c) as Promise<Record<string, any>>;

beforeAll(async () => {
  await direct.del(...(await direct.keys(`${prefix}*`)), `${prefix}none`);
});
afterAll(async () => {
  const keys = await direct.keys(`${prefix}*`);
  if (keys.length) await direct.del(...keys);
  await direct.call('ACL', 'DELUSER', 'aip-test-user');
  direct.disconnect();
});

describe('redis actions against a real server', () => {
  it('pings and reads server info', async () => {
    expect(await invoke('ping', {})).toMatchObject({ reply: 'PONG' });
    const info = await invoke('info', { section: 'server' });
    expect(info.sections.server.redis_version).toMatch(/^\d+\./);
    expect(info.truncated).toBe(false);
  });

  it('sets a string with a TTL and a condition, reads it back, changes and removes the TTL', async () => {
    expect(await invoke('set_string', { key: `${prefix}s`, value: 'hello', ttl_seconds: 100 })).toEqual({ written: true });
    expect(await invoke('set_string', { key: `${prefix}s`, value: 'nope', condition: 'if_absent' })).toEqual({ written: false });
    const read = await invoke('get_key', { key: `${prefix}s` });
    expect(read).toMatchObject({ type: 'string', exists: true, value: 'hello', encoding: 'utf8', size: 5, truncated: false });
    expect(read.ttlMs).toBeGreaterThan(90_000);
    expect(await invoke('expire_key', { key: `${prefix}s`, seconds: -1 })).toEqual({ changed: true });
    expect((await invoke('get_key', { key: `${prefix}s` })).ttlMs).toBeNull();
    expect(await invoke('expire_key', { key: `${prefix}s`, seconds: 60 })).toEqual({ changed: true });
    await expect(invoke('expire_key', { key: `${prefix}s`, seconds: 0 })).rejects.toThrow(/invalid input/);
  });

  it('reads a string larger than the bound with GETRANGE, and says it cut', async () => {
    await direct.set(`${prefix}big`, 'x'.repeat(1024 * 1024));
    const read = await invoke('get_key', { key: `${prefix}big`, max_bytes: 1000 });
    expect(read).toMatchObject({ size: 1024 * 1024, truncated: true });
    expect(read.value).toHaveLength(1000);
  });

  it('returns binary values as base64', async () => {
    await direct.set(`${prefix}bin`, Buffer.from([0, 255, 1, 254]));
    expect(await invoke('get_key', { key: `${prefix}bin` })).toMatchObject({ encoding: 'base64', value: Buffer.from([0, 255, 1, 254]).toString('base64') });
  });

  it('reads hashes with HSCAN up to the item limit (never HGETALL)', async () => {
    const fields: Record<string, string> = {};
    for (let i = 0; i < 50; i += 1) fields[`f${i}`] = `v${i}`;
    await direct.hset(`${prefix}h`, fields);
    const read = await invoke('get_key', { key: `${prefix}h`, item_limit: 10 });
    expect(read).toMatchObject({ type: 'hash', size: 50, truncated: true });
    expect(read.items).toHaveLength(10);
    expect(read.items[0]).toEqual({ field: expect.stringMatching(/^f\d+$/), value: expect.stringMatching(/^v\d+$/), encoding: 'utf8' });
  });

  it('reads lists, sets, sorted sets and streams within the bounds', async () => {
    await direct.rpush(`${prefix}l`, 'a', 'b', 'c');
    await direct.sadd(`${prefix}set`, 'x', 'y');
    await direct.zadd(`${prefix}z`, 1, 'one', 2, 'two', 3, 'three');
    await direct.xadd(`${prefix}st`, '*', 'k', 'v');
    expect(await invoke('get_key', { key: `${prefix}l`, item_limit: 2 })).toMatchObject({ type: 'list', size: 3, truncated: true, items: [{ index: 0, value: 'a' }, { index: 1, value: 'b' }] });
    const set = await invoke('get_key', { key: `${prefix}set` });
    expect(set.items.map((i: { member: string }) => i.member).sort()).toEqual(['x', 'y']);
    expect(await invoke('get_key', { key: `${prefix}z`, item_limit: 2 })).toMatchObject({ type: 'zset', size: 3, items: [{ member: 'one', score: 1 }, { member: 'two', score: 2 }] });
    expect(await invoke('get_key', { key: `${prefix}st` })).toMatchObject({ type: 'stream', size: 1, items: [{ fields: { k: 'v' } }] });
    expect(await invoke('get_key', { key: `${prefix}none` })).toEqual({ key: `${prefix}none`, type: 'none', exists: false, truncated: false });
  });

  it('bounds the total bytes of items', async () => {
    await direct.rpush(`${prefix}fat`, 'a'.repeat(600), 'b'.repeat(600), 'c'.repeat(600));
    const read = await invoke('get_key', { key: `${prefix}fat`, max_bytes: 1000 });
    expect(read.truncated).toBe(true);
    expect(read.items.reduce((n: number, i: { value: string }) => n + i.value.length, 0)).toBeLessThanOrEqual(1000);
  });

  it('scans keys with a cursor and a type filter', async () => {
    for (let i = 0; i < 30; i += 1) await direct.set(`${prefix}scan:${i}`, 'v');
    const seen = new Set<string>();
    let cursor = '0';
    for (let page = 0; page < 50; page += 1) {
      const result = await invoke('scan_keys', { pattern: `${prefix}scan:*`, cursor, limit: 7 });
      expect(result.keys.length).toBeLessThanOrEqual(7 + 20);
      for (const key of result.keys) seen.add(key);
      cursor = result.cursor;
      if (result.done) break;
    }
    expect(seen.size).toBe(30);
    expect((await invoke('scan_keys', { pattern: `${prefix}*`, type: 'hash', limit: 100 })).keys).toEqual([`${prefix}h`]);
  });

  it('deletes keys', async () => {
    await direct.set(`${prefix}d1`, '1');
    await direct.set(`${prefix}d2`, '2');
    expect(await invoke('delete_keys', { keys: [`${prefix}d1`, `${prefix}d2`, `${prefix}missing`] })).toEqual({ deleted: 2 });
  });

  it('uses an ACL user and password, and reports a wrong password as a configuration problem', async () => {
    await direct.call('ACL', 'SETUSER', 'aip-test-user', 'on', '>Acl-Pass-12345', '~*', '+@all');
    const withUser: HarnessCall = { ...call, credentials: { kind: 'password', fields: { username: 'aip-test-user', password: 'Acl-Pass-12345' } } };
    expect(await invoke('ping', {}, withUser)).toMatchObject({ reply: 'PONG' });
    const wrong: HarnessCall = { ...call, credentials: { kind: 'password', fields: { username: 'aip-test-user', password: 'Wrong-Pass-1' } } };
    await expect(invoke('ping', {}, wrong)).rejects.toMatchObject({ kind: 'config', userMessage: expect.stringMatching(/refused the credentials/) });
  });
});

describe('connection checks give a typed result', () => {
  let tls: Awaited<ReturnType<typeof startTlsRedis>>;
  beforeAll(async () => {
    tls = await startTlsRedis();
  });
  afterAll(async () => tls.stop());

  it('ok', async () => {
    expect(await harness.check(call)).toMatchObject({ ok: true, message: expect.stringMatching(/Redis answered PONG \(version/) });
  });

  it('auth_failed', async () => {
    await direct.call('ACL', 'SETUSER', 'aip-test-user', 'on', '>Acl-Pass-12345', '~*', '+@all');
    const result = await harness.check({ ...call, credentials: { kind: 'password', fields: { username: 'aip-test-user', password: 'not-it-at-all' } } });
    expect(result).toMatchObject({ ok: false, problem: 'auth_failed' });
  });

  it('network', async () => {
    const port = await freePort();
    expect(await harness.check({ ...call, endpoint: { type: 'tcp', host: '127.0.0.1', port, transport: 'direct' } })).toMatchObject({ ok: false, problem: 'network' });
  });

  it('tls: a real TLS Redis with its CA works; without trusting the CA it is a TLS problem', async () => {
    const endpoint = { type: 'tcp' as const, host: '127.0.0.1', port: tls.port, transport: 'direct', serverName: 'localhost' };
    const trusted = await harness.check({ ...call, endpoint, target: { host: 'localhost', tls: true, tlsCaPem: tls.caPem } });
    expect(trusted).toMatchObject({ ok: true });
    expect(await invoke('ping', {}, { ...call, endpoint, target: { host: 'localhost', tls: true, tlsCaPem: tls.caPem } })).toMatchObject({ reply: 'PONG' });
    const untrusted = await harness.check({ ...call, endpoint, target: { host: 'localhost', tls: true } });
    expect(untrusted).toMatchObject({ ok: false, problem: 'tls' });
  });

  it("tls: verifies the target's name (the endpoint's serverName), never the endpoint's address", async () => {
    // The certificate names localhost only; the endpoint is 127.0.0.1, as a kernel relay would be.
    const target = { host: 'localhost', tls: true, tlsCaPem: tls.caPem };
    const at = (serverName?: string) => ({ type: 'tcp' as const, host: '127.0.0.1', port: tls.port, transport: 'direct', ...(serverName ? { serverName } : {}) });
    expect(await harness.check({ ...call, target, endpoint: at('localhost') })).toMatchObject({ ok: true });
    const wrongName = await harness.check({ ...call, target, endpoint: at('cache.example') });
    expect(wrongName).toMatchObject({ ok: false, problem: 'tls', message: expect.stringMatching(/cache\.example/) });
    // Checking the address it connected to would check the wrong name, and fails.
    expect(await harness.check({ ...call, target, endpoint: at('127.0.0.1') })).toMatchObject({ ok: false, problem: 'tls' });
    // A target setting overrides the name.
    expect(await harness.check({ ...call, target: { ...target, tlsServername: 'localhost' }, endpoint: at('cache.example') })).toMatchObject({ ok: true });
    // No name at all: a configuration problem, said as such (never a silent check against 127.0.0.1).
    expect(await harness.check({ ...call, target, endpoint: at() })).toMatchObject({ ok: false, problem: 'config', message: expect.stringMatching(/no name to check the server certificate against: set "tlsServername"/) });
    await expect(invoke('ping', {}, { ...call, target, endpoint: at() })).rejects.toMatchObject({ kind: 'config' });
  });
});

describe('a unix socket endpoint (as under bubblewrap)', () => {
  let unix: Awaited<ReturnType<typeof startUnixRedis>>;
  beforeAll(async () => {
    unix = await startUnixRedis();
  });
  afterAll(async () => unix.stop());

  it('runs actions and checks through the socket', async () => {
    const viaSocket: HarnessCall = { ...call, endpoint: { type: 'unix', path: unix.path, transport: 'direct', serverName: '127.0.0.1' } };
    expect(await harness.check(viaSocket)).toMatchObject({ ok: true, message: expect.stringMatching(/Redis answered PONG/) });
    expect(await invoke('set_string', { key: `${prefix}unix`, value: 'through the socket' }, viaSocket)).toEqual({ written: true });
    expect(await invoke('get_key', { key: `${prefix}unix` }, viaSocket)).toMatchObject({ value: 'through the socket' });
  });

  it('reports a socket that is not there as a network problem', async () => {
    const gone: HarnessCall = { ...call, endpoint: { type: 'unix', path: `${unix.path}.missing`, transport: 'direct' } };
    expect(await harness.check(gone)).toMatchObject({ ok: false, problem: 'network' });
    await expect(invoke('ping', {}, gone)).rejects.toMatchObject({ kind: 'transient', userMessage: expect.stringMatching(/^Cannot reach Redis: /) });
  });
});
