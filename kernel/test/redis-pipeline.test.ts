import { operatorPrincipal } from '../src/lib/principal.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendFile, cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { pinBuiltins } from '../src/plugin-host/index.js';
import { pluginHarness, type PluginHarness } from './helpers/plugins.js';
import { freePort } from './helpers/cli.js';
import { startTlsRedis } from './helpers/redis.js';
import { tempDir } from './helpers/temp.js';

const PLUGINS = fileURLToPath(new URL('../../plugins/', import.meta.url));
const direct = new Redis({ host: '127.0.0.1', port: 6379 });
const prefix = `aip:pipeline:${process.pid}:`;

let h: PluginHarness;
let builtinRoot: string;
let cleanupRoot: () => Promise<void>;

beforeAll(async () => {
  // A private copy of the built-in plugins folder, so a test can "upgrade" the Redis connector.
  ({ dir: builtinRoot, cleanup: cleanupRoot } = await tempDir('aip-builtins-'));
  await cp(join(PLUGINS, 'redis', 'dist'), join(builtinRoot, 'redis', 'dist'), { recursive: true });
  await cp(join(PLUGINS, 'redis', 'package.json'), join(builtinRoot, 'redis', 'package.json'));
  h = await pluginHarness({ builtinRoot, builtins: ['redis'] });
  await direct.call('ACL', 'SETUSER', 'aip-pipeline-user', 'on', '>Pipeline-Pass-99', '~*', '+@all');
});
afterAll(async () => {
  await h.cleanup();
  await cleanupRoot();
  const keys = await direct.keys(`${prefix}*`);
  if (keys.length) await direct.del(...keys);
  await direct.call('ACL', 'DELUSER', 'aip-pipeline-user');
  direct.disconnect();
});

async function redisTarget(rule: 'always_run' | 'approval_required' | 'blocked', password = 'Pipeline-Pass-99') {
  const ws = h.ws;
  const target = await ws.targets.createTarget({ kind: 'redis', name: `redis-${Math.random().toString(36).slice(2, 8)}`, config: { host: '127.0.0.1', port: 6379 } }, 'operator:test');
  const profile = await ws.targets.createProfile(target.id, { label: 'acl', credentialKind: 'password', config: { username: 'aip-pipeline-user' }, secret: { password } }, 'operator:test');
  const token = await ws.tokens.create({ name: 'agent' }, 'operator:test');
  await ws.grants.set({ tokenId: token.token.id, targetId: target.id, profileId: profile.id, action: '*', rule }, 'operator:test');
  return { token: token.secret, targetRef: `redis:${target.id}:${profile.id}`, targetId: target.id, profileId: profile.id };
}

describe('Redis through the whole kernel pipeline', () => {
  it('validates targets and profiles against the manifest schemas', async () => {
    await expect(h.ws.targets.createTarget({ kind: 'redis', name: 'bad', config: { hostname: 'x' } }, 'operator:test')).rejects.toMatchObject({
      code: 'invalid_target_config',
      message: expect.stringMatching(/missing field "host".*unknown field "hostname"|unknown field "hostname".*missing field "host"/),
    });
    const target = await h.ws.targets.createTarget({ kind: 'redis', name: 'schema-check', config: { host: '127.0.0.1' } }, 'operator:test');
    await expect(h.ws.targets.createProfile(target.id, { label: 'p', credentialKind: 'password', config: { password: 'in-the-wrong-place' } }, 'operator:test')).rejects.toMatchObject({
      message: expect.stringMatching(/"password" is a secret field: send it in "secret"/),
    });
    // The connector's first credential kind is the default.
    const profile = await h.ws.targets.createProfile(target.id, { label: 'default', secret: { password: 'x1' } }, 'operator:test');
    expect(profile).toMatchObject({ credentialKind: 'password', secretFields: ['password'] });
  });

  it('always_run: writes and reads through the sandboxed plugin, audited on both sides, secrets never stored', async () => {
    const t = await redisTarget('always_run');
    const set = await h.kernel.pipeline.call(h.kernel.authenticateToken(t.token), { targetRef: t.targetRef, action: 'set_string', input: { key: `${prefix}greeting`, value: 'hello from the agent' } });
    expect(set.kind === 'request' && set.request).toMatchObject({ status: 'completed', output: { written: true } });
    expect(await direct.get(`${prefix}greeting`)).toBe('hello from the agent');
    const get = await h.kernel.pipeline.call(h.kernel.authenticateToken(t.token), { targetRef: t.targetRef, action: 'get_key', input: { key: `${prefix}greeting` } });
    expect(get.kind === 'request' && get.request.output).toMatchObject({ type: 'string', value: 'hello from the agent' });
    if (get.kind !== 'request') throw new Error();
    const events = (await h.ws.audit.search({ subjectId: get.request.id })).entries.map((e) => e.event).reverse();
    expect(events).toEqual(['action.started', 'action.completed']);
    const stored = await h.ws.db.all<{ payload: string }>('SELECT payload FROM audit_log');
    expect(stored.map((r) => r.payload).join()).not.toContain('Pipeline-Pass-99');
  });

  it('approval_required: waits, then runs the approved input on Run', async () => {
    const t = await redisTarget('approval_required');
    const outcome = await h.kernel.pipeline.call(h.kernel.authenticateToken(t.token), { targetRef: t.targetRef, action: 'delete_keys', input: { keys: [`${prefix}doomed`] } });
    if (outcome.kind !== 'request') throw new Error();
    expect(outcome.request.status).toBe('approval_pending');
    await direct.set(`${prefix}doomed`, 'x');
    const done = await h.kernel.pipeline.runApproved(operatorPrincipal(h.ws.name, 'test-session', 'operator:test'), outcome.request.id);
    expect(done).toMatchObject({ status: 'completed', output: { deleted: 1 } });
    expect(await direct.exists(`${prefix}doomed`)).toBe(0);
  });

  it('blocked: refused, nothing reaches Redis', async () => {
    const t = await redisTarget('blocked');
    await direct.set(`${prefix}safe`, 'keep');
    await expect(h.kernel.pipeline.call(h.kernel.authenticateToken(t.token), { targetRef: t.targetRef, action: 'delete_keys', input: { keys: [`${prefix}safe`] } })).rejects.toMatchObject({ code: 'not_permitted' });
    expect(await direct.get(`${prefix}safe`)).toBe('keep');
  });

  it('a value larger than the bound comes back cut, and says so', async () => {
    const t = await redisTarget('always_run');
    await direct.set(`${prefix}huge`, 'v'.repeat(2 * 1024 * 1024));
    const outcome = await h.kernel.pipeline.call(h.kernel.authenticateToken(t.token), { targetRef: t.targetRef, action: 'get_key', input: { key: `${prefix}huge`, max_bytes: 512 * 1024 } });
    if (outcome.kind !== 'request') throw new Error();
    expect(outcome.request.status).toBe('completed');
    const output = outcome.request.output as { size: number; truncated: boolean; value: string };
    expect(output).toMatchObject({ size: 2 * 1024 * 1024, truncated: true });
    expect(output.value.length).toBe(512 * 1024);
  });

  it('a wrong password fails as a configuration problem an operator can fix', async () => {
    const t = await redisTarget('always_run', 'Not-The-Password-1');
    const outcome = await h.kernel.pipeline.call(h.kernel.authenticateToken(t.token), { targetRef: t.targetRef, action: 'ping', input: {} });
    expect(outcome.kind === 'request' && outcome.request).toMatchObject({ status: 'failed', error: { kind: 'config', message: expect.stringMatching(/refused the credentials/) } });
  });

  it("TLS through the kernel's endpoint checks the certificate against the target's host, not the endpoint", async () => {
    // The certificate names localhost only; the plugin connects to its endpoint (a socket or 127.0.0.1), the kernel to localhost.
    const tls = await startTlsRedis(['localhost']);
    try {
      const ping = async (host: string) => {
        const target = await h.ws.targets.createTarget({ kind: 'redis', name: `tls-${host}-${Math.random().toString(36).slice(2, 8)}`, config: { host, port: tls.port, tls: true, tlsCaPem: tls.caPem } }, 'operator:test');
        const profile = await h.ws.targets.createProfile(target.id, { label: 'open', credentialKind: 'none' }, 'operator:test');
        const token = await h.ws.tokens.create({ name: 'agent' }, 'operator:test');
        await h.ws.grants.set({ tokenId: token.token.id, targetId: target.id, profileId: profile.id, action: '*', rule: 'always_run' }, 'operator:test');
        const outcome = await h.kernel.pipeline.call(h.kernel.authenticateToken(token.secret), { targetRef: `redis:${target.id}:${profile.id}`, action: 'ping', input: {} });
        if (outcome.kind !== 'request') throw new Error(JSON.stringify(outcome));
        return outcome.request;
      };
      expect(await ping('localhost')).toMatchObject({ status: 'completed', output: { reply: 'PONG' } });
      // Same server, same relay, but a target named by an address the certificate does not carry: refused by the plugin's TLS check.
      expect(await ping('127.0.0.1')).toMatchObject({ status: 'failed', error: { kind: 'config', message: expect.stringMatching(/^The TLS handshake with Redis failed: .*127\.0\.0\.1/) } });
    } finally {
      await tls.stop();
    }
  });

  it('a target the kernel cannot reach fails as a network problem, with what the kernel saw', async () => {
    const port = await freePort();
    const target = await h.ws.targets.createTarget({ kind: 'redis', name: `down-${port}`, config: { host: '127.0.0.1', port } }, 'operator:test');
    const profile = await h.ws.targets.createProfile(target.id, { label: 'open', credentialKind: 'none' }, 'operator:test');
    const token = await h.ws.tokens.create({ name: 'agent' }, 'operator:test');
    await h.ws.grants.set({ tokenId: token.token.id, targetId: target.id, profileId: profile.id, action: '*', rule: 'always_run' }, 'operator:test');
    const outcome = await h.kernel.pipeline.call(h.kernel.authenticateToken(token.secret), { targetRef: `redis:${target.id}:${profile.id}`, action: 'ping', input: {} });
    expect(outcome.kind === 'request' && outcome.request).toMatchObject({
      status: 'failed',
      error: { kind: 'transient', retryable: true, message: expect.stringMatching(new RegExp(`^Cannot reach Redis: .*\\(The gateway could not connect to 127\\.0\\.0\\.1:${port}: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\.\\)$`)) },
    });
  });

  it('a pending approval goes stale after a plugin version change (a rebuild, then a gateway restart)', async () => {
    const t = await redisTarget('approval_required');
    const outcome = await h.kernel.pipeline.call(h.kernel.authenticateToken(t.token), { targetRef: t.targetRef, action: 'set_string', input: { key: `${prefix}v`, value: '1' } });
    if (outcome.kind !== 'request') throw new Error();
    // Upgrade the connector: same code, version 1.0.1, built (pinned) and run by a restarted gateway.
    for (const file of ['dist/plugin.mjs', 'dist/manifest.json']) {
      const path = join(builtinRoot, 'redis', file);
      await writeFile(path, (await readFile(path, 'utf8')).replace(/(version["']?: ?")1\.0\.0"/, '$11.0.1"'));
    }
    await h.restart({ builtinPins: await pinBuiltins(builtinRoot, ['redis']) });
    const result = await h.kernel.pipeline.runApproved(operatorPrincipal(h.ws.name, 'test-session', 'operator:test'), outcome.request.id);
    expect(result.status).toBe('stale');
    expect(result.statusReason).toMatch(/the connector was upgraded \(1\.0\.0 -> 1\.0\.1\)/);
    expect(await direct.exists(`${prefix}v`)).toBe(0);
    // And the new version runs.
    const again = await h.kernel.pipeline.call(h.kernel.authenticateToken(t.token), { targetRef: t.targetRef, action: 'set_string', input: { key: `${prefix}v`, value: '2' } });
    if (again.kind !== 'request') throw new Error();
    expect((await h.kernel.pipeline.runApproved(operatorPrincipal(h.ws.name, 'test-session', 'operator:test'), again.request.id)).status).toBe('completed');
  });

  it('a pending approval made under one build goes stale when the gateway restarts with another build of the same version', async () => {
    const t = await redisTarget('approval_required');
    const outcome = await h.kernel.pipeline.call(h.kernel.authenticateToken(t.token), { targetRef: t.targetRef, action: 'set_string', input: { key: `${prefix}rebuilt`, value: 'approved under the old build' } });
    if (outcome.kind !== 'request') throw new Error();
    const built = h.ws.catalog.get('redis')!;
    // Another build: same version and manifest, different code.
    await appendFile(join(builtinRoot, 'redis', 'dist', 'plugin.mjs'), '\n// another build\n');
    await h.restart({ builtinPins: await pinBuiltins(builtinRoot, ['redis']) });
    const rebuilt = h.ws.catalog.get('redis')!;
    expect([rebuilt.version, rebuilt.manifestHash]).toEqual([built.version, built.manifestHash]);
    expect(rebuilt.integrity).not.toBe(built.integrity);
    const result = await h.kernel.pipeline.runApproved(operatorPrincipal(h.ws.name, 'test-session', 'operator:test'), outcome.request.id);
    expect(result.status).toBe('stale');
    expect(result.statusReason).toMatch(/the connector's code changed/);
    expect(await direct.exists(`${prefix}rebuilt`)).toBe(0);
  });

  it('never hands the password to an edited connector: after its process dies, the next call is refused and the edit never runs', async () => {
    const t = await redisTarget('always_run');
    expect((await h.kernel.pipeline.call(h.kernel.authenticateToken(t.token), { targetRef: t.targetRef, action: 'ping', input: {} })).kind).toBe('request');
    // The agent's edit: code that would hand out every lease it sees (the Redis password); it says on its log (stderr, kept by the kernel) that it ran.
    await appendFile(
      join(builtinRoot, 'redis', 'dist', 'plugin.mjs'),
      "\nimport { writeSync as __aipSteal } from 'node:fs';\n__aipSteal(2, 'stolen: the edited code ran\\n');\n",
    );
    // Every Redis process dies (there is one per credential profile in use): the next call on t's profile spawns the edited code.
    for (const pid of h.host.list().find((p) => p.id === 'redis')!.status.pids) process.kill(pid, 'SIGKILL');
    const started = Date.now();
    while (h.host.list().find((p) => p.id === 'redis')!.status.state !== 'stopped' && Date.now() - started < 5_000) await new Promise((r) => setTimeout(r, 10));
    const refused = await h.kernel.pipeline.call(h.kernel.authenticateToken(t.token), { targetRef: t.targetRef, action: 'set_string', input: { key: `${prefix}stolen`, value: 'x' } });
    expect(refused.kind === 'request' && refused.request).toMatchObject({
      status: 'failed',
      error: { message: expect.stringMatching(/redis connector is unavailable: it failed to start: is a built-in connector whose files differ from its build-time pin \(changed: dist\/plugin\.mjs/) },
    });
    // Not on its log (scratch is no witness: it does not outlive a process).
    await new Promise((r) => setTimeout(r, 300));
    expect(h.logs.filter((line) => line.includes('stolen: the edited code ran'))).toEqual([]);
    expect(await direct.exists(`${prefix}stolen`)).toBe(0);
  });
});
