import { createInvocationScopes } from '../src/invocations/index.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { appendFile, cp, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createKernel, type Kernel } from '../src/kernel.js';
import { createPluginHost, pinBuiltins, type PluginHost } from '../src/plugin-host/index.js';
import { httpApp, jsonOf, TestClient } from './helpers/http.js';
import { collector, settledHeap } from './helpers/gc.js';
import { FIXTURES } from './helpers/plugins.js';
import { tempDir, PASSWORD, OTHER_PASSWORD } from './helpers/temp.js';

let dir: string;
let cleanup: () => Promise<void>;
let host: PluginHost;
let kernel: Kernel;
let client: TestClient;

async function setup(bwrap: 'auto' | 'off' = 'auto', builtins: string[] = ['crash-mid-call']) {
  ({ dir, cleanup } = await tempDir('aip-install-'));
  const builtinPins = await pinBuiltins(FIXTURES, builtins);
  const scopes = createInvocationScopes();
  host = await createPluginHost({ dataDir: dir, scopes, clock: { now: () => Date.now() }, log: () => undefined, kernelInfo: { name: 't', version: '0' }, bwrap, builtinRoot: FIXTURES, builtins, builtinPins });
  kernel = createKernel({ dataDir: dir, plugins: host, scopes, log: () => undefined });
  client = new TestClient(httpApp(kernel).app);
  await client.get('/api/status');
  await client.json('POST', '/api/databases', { name: 'main', password: PASSWORD }, 201);
  await client.json('PUT', '/api/databases/main/mcp', { running: true });
}
beforeEach(() => setup());
afterEach(async () => {
  await kernel.close();
  await cleanup();
});

/** A copy of the echo fixture package, optionally as another version. */
async function echoPackage(version = '1.0.0'): Promise<string> {
  const pkg = join(dir, `echo-src-${version}`);
  await cp(join(FIXTURES, 'echo'), pkg, { recursive: true, filter: (p) => !p.endsWith('.ts') });
  if (version !== '1.0.0') {
    for (const file of ['dist/plugin.mjs', 'dist/manifest.json', 'package.json']) {
      const path = join(pkg, file);
      await writeFile(path, (await readFile(path, 'utf8')).replace(/(version["']?: ?")1\.0\.0"/, `$1${version}"`));
    }
  }
  return pkg;
}

async function install(source: string) {
  const inspected = await client.json('POST', '/api/databases/main/plugins/inspect', { source });
  await client.json('POST', '/api/databases/main/plugins', { inspection: inspected.inspection, integrity: inspected.integrity }, 201);
  return inspected;
}

async function echoTarget(rule: 'always_run' | 'approval_required' = 'always_run') {
  const ws = kernel.workspace('main');
  const target = await ws.targets.createTarget({ kind: 'echo-fixture', name: `echo-${Math.random().toString(36).slice(2, 7)}`, config: { host: '127.0.0.1' } }, 'test');
  const profile = await ws.targets.createProfile(target.id, { label: 'p', secret: { password: 'Pw-For-Echo-1' } }, 'test');
  const token = await ws.tokens.create({ name: 'a' }, 'test');
  await ws.grants.set({ tokenId: token.token.id, targetId: target.id, profileId: profile.id, action: '*', rule }, 'test');
  return { token: token.secret, targetRef: `echo-fixture:${target.id}:${profile.id}` };
}

describe('installing a third-party plugin', () => {
  it('shows what the plugin asks for before anything is trusted, and binds consent to that exact package', async () => {
    const inspected = await client.json('POST', '/api/databases/main/plugins/inspect', { source: await echoPackage() });
    expect(inspected.plugin).toMatchObject({
      id: 'echo-fixture',
      version: '1.0.0',
      credentials: { password: { fields: ['username', 'password'], secret: ['password'] } },
      actions: expect.arrayContaining([{ name: 'echo', title: 'echo', risk: 'read' }]),
    });
    expect(inspected.integrity).toMatch(/^sha256-[0-9a-f]{64}$/);
    expect(inspected.sandbox.level).toMatch(/node-permission/);
    // Not trusted yet: no connector of that kind.
    expect(kernel.workspace('main').catalog.get('echo-fixture')).toBeUndefined();
    const mismatch = await client.post('/api/databases/main/plugins', { inspection: inspected.inspection, integrity: `sha256-${'0'.repeat(64)}` });
    expect(mismatch.status).toBe(409);
    await client.json('POST', '/api/databases/main/plugins', { inspection: inspected.inspection, integrity: inspected.integrity }, 201);
    const { plugins } = await client.json('GET', '/api/databases/main/plugins');
    expect(plugins.find((p: { id: string }) => p.id === 'echo-fixture')).toMatchObject({ kind: 'installed', approved: true, version: '1.0.0' });
    const t = await echoTarget();
    const outcome = await kernel.pipeline.call(kernel.authenticateToken(t.token), { targetRef: t.targetRef, action: 'echo', input: { text: 'installed' } });
    expect(outcome.kind === 'request' && outcome.request).toMatchObject({ status: 'completed', output: { text: 'installed' } });
    const audit = await client.json('GET', '/api/databases/main/audit?event=plugin');
    expect(audit.entries[0]).toMatchObject({ event: 'plugin.approved', payload: { pluginId: 'echo-fixture', version: '1.0.0', integrity: inspected.integrity } });
  });

  it('refuses to start a plugin whose files changed on disk until it is re-approved', async () => {
    await install(await echoPackage());
    const t = await echoTarget();
    await kernel.pipeline.call(kernel.authenticateToken(t.token), { targetRef: t.targetRef, action: 'echo', input: { text: 'before' } });
    await appendFile(join(dir, 'plugins', 'echo-fixture', '1.0.0', 'dist', 'plugin.mjs'), '\n// tampered\n');
    const verify = await client.json('POST', '/api/databases/main/plugins/echo-fixture/verify');
    expect(verify.intact).toBe(false);
    await client.json('POST', '/api/databases/main/plugins/echo-fixture/restart');
    const refused = await kernel.pipeline.call(kernel.authenticateToken(t.token), { targetRef: t.targetRef, action: 'echo', input: { text: 'after' } });
    expect(refused.kind === 'request' && refused.request).toMatchObject({ status: 'failed', error: { message: expect.stringMatching(/changed on disk since it was approved/) } });
    // Re-approving the original package makes it run again.
    await install(await echoPackage());
    await client.json('POST', '/api/databases/main/plugins/echo-fixture/restart');
    const ok = await kernel.pipeline.call(kernel.authenticateToken(t.token), { targetRef: t.targetRef, action: 'echo', input: { text: 'again' } });
    expect(ok.kind === 'request' && ok.request.status).toBe('completed');
  });

  it('an upgrade stales pending approvals made against the old version at once', async () => {
    await install(await echoPackage());
    const t = await echoTarget('approval_required');
    const outcome = await kernel.pipeline.call(kernel.authenticateToken(t.token), { targetRef: t.targetRef, action: 'echo', input: { text: 'x' } });
    if (outcome.kind !== 'request') throw new Error();
    await install(await echoPackage('1.1.0'));
    const { request } = await client.json('GET', `/api/databases/main/requests/${outcome.request.id}`);
    expect(request.status).toBe('stale');
    expect(request.statusReason).toMatch(/the connector was upgraded \(1\.0\.0 -> 1\.1\.0\)/);
  });

  it('re-installing the same version with other code stales pending approvals made against the old code', async () => {
    await install(await echoPackage());
    const t = await echoTarget('approval_required');
    const outcome = await kernel.pipeline.call(kernel.authenticateToken(t.token), { targetRef: t.targetRef, action: 'echo', input: { text: 'x' } });
    if (outcome.kind !== 'request') throw new Error();
    const other = await echoPackage();
    await appendFile(join(other, 'dist', 'plugin.mjs'), '\n// same version, other code\n');
    await install(other);
    const { request } = await client.json('GET', `/api/databases/main/requests/${outcome.request.id}`);
    expect(request.status).toBe('stale');
    expect(request.statusReason).toMatch(/the connector's code changed/);
  });

  it('verifies a built-in against the pin of the build that runs it', async () => {
    const report = await client.json('POST', '/api/databases/main/plugins/crash-mid-call/verify');
    expect(report).toMatchObject({ id: 'crash-mid-call', kind: 'builtin', intact: true, integrity: expect.stringMatching(/^sha256-/) });
    expect(report.approvedIntegrity).toBe(report.integrity);
  });

  it('trust is per database: another database does not run it until approved there', async () => {
    await install(await echoPackage());
    await client.json('POST', '/api/databases', { name: 'second', password: OTHER_PASSWORD }, 201);
    expect(kernel.workspace('second').catalog.get('echo-fixture')).toBeUndefined();
    expect(kernel.workspace('main').catalog.get('echo-fixture')).toBeDefined();
  });

  it('installs from a tarball, and refuses packages with links', async () => {
    const pkg = await echoPackage();
    const tgz = execFileSync('npm', ['pack', '--silent', '--ignore-scripts', '--pack-destination', dir], { cwd: pkg, encoding: 'utf8' }).trim().split('\n').pop()!;
    const inspected = await install(join(dir, tgz));
    expect(inspected.plugin.id).toBe('echo-fixture');
    const linked = await echoPackage('2.0.0');
    await symlink('/etc/hostname', join(linked, 'dist', 'sneaky'));
    const refused = await client.post('/api/databases/main/plugins/inspect', { source: linked });
    expect(refused.status).toBe(400);
    expect((await jsonOf(refused)).error.message).toMatch(/symbolic link/);
  });

  it('fetches an npm package by name without running its scripts, and refuses one that is not a connector', async () => {
    const refused = await client.post('/api/databases/main/plugins/inspect', { source: 'is-number@7.0.0' });
    expect(refused.status).toBe(400);
    expect((await jsonOf(refused)).error.message).toMatch(/has no "aipermission": \{"entry"/);
    const nonsense = await client.post('/api/databases/main/plugins/inspect', { source: 'not a package; rm -rf /' });
    expect((await jsonOf(nonsense)).error.message).toMatch(/is not a folder, a \.tgz file or an npm package name/);
  });

  it('removes an installed plugin but never a built-in one', async () => {
    await install(await echoPackage());
    await client.json('DELETE', '/api/databases/main/plugins/echo-fixture');
    expect(kernel.workspace('main').catalog.get('echo-fixture')).toBeUndefined();
    const { plugins } = await client.json('GET', '/api/databases/main/plugins');
    expect(plugins.find((p: { id: string }) => p.id === 'echo-fixture')).toBeUndefined();
    expect(plugins.find((p: { id: string }) => p.id === 'crash-mid-call')).toMatchObject({ kind: 'builtin', approved: true });
    const builtin = await client.delete('/api/databases/main/plugins/crash-mid-call');
    expect(builtin.status).toBe(409);
  });

  it('keeps the heap flat over many installs and removals of a plugin', async () => {
    const gc = collector();
    const pkg = await echoPackage();
    const cycle = async () => {
      await install(pkg);
      await client.json('DELETE', '/api/databases/main/plugins/echo-fixture');
    };
    // Warm up first: the JIT's type feedback for the code involved grows for a while, then settles.
    for (let i = 0; i < 10; i += 1) await cycle();
    const before = settledHeap(gc);
    const cycles = 40;
    for (let i = 0; i < cycles; i += 1) await cycle();
    const perCycle = (settledHeap(gc) - before) / cycles;
    // Before the fix every reload compiled every manifest again on one shared
    // ajv instance, which keeps whatever it compiled: ~126 KiB per cycle here.
    // After: ~5-15 KiB, the JIT's feedback on warm code, flattening out.
    expect(perCycle).toBeLessThan(40 * 1024);
  }, 180_000);

  it('refuses a broken manifest naming the field', async () => {
    const pkg = await echoPackage('3.0.0');
    const bundle = join(pkg, 'dist', 'plugin.mjs');
    await writeFile(bundle, (await readFile(bundle, 'utf8')).replaceAll('risk: "read"', 'risk: "spicy"'));
    const refused = await client.post('/api/databases/main/plugins/inspect', { source: pkg });
    expect(refused.status).toBe(400);
    expect((await jsonOf(refused)).error.message).toMatch(/actions\[0\]\.risk: must be one of "read", "write", "destructive"/);
  });
});

describe('the bwrap policy', () => {
  it('refuses third-party plugins without bubblewrap when the database requires it', async () => {
    await kernel.close();
    await cleanup();
    await setup('off');
    await install(await echoPackage());
    await client.json('PATCH', '/api/databases/main/settings', { requireBwrapForThirdParty: true });
    const t = await echoTarget();
    const outcome = await kernel.pipeline.call(kernel.authenticateToken(t.token), { targetRef: t.targetRef, action: 'echo', input: { text: 'x' } });
    expect(outcome.kind === 'request' && outcome.request).toMatchObject({ status: 'failed', error: { kind: 'config', message: expect.stringMatching(/only runs third-party connectors inside bubblewrap/) } });
    // A connection check starts a plugin too: refused the same way, before anything is spawned.
    const ws = kernel.workspace('main');
    const [targetId, profileId] = t.targetRef.split(':').slice(1);
    const check = await kernel.checkConnection('main', ws.catalog.get('echo-fixture')!, { id: targetId!, config: { host: '127.0.0.1' } }, profileId!);
    expect(check).toMatchObject({ ok: false, message: expect.stringMatching(/only runs third-party connectors inside bubblewrap \(requireBwrapForThirdParty\).*aip settings set requireBwrapForThirdParty=false/) });
    expect(kernel.plugins!.list().find((p) => p.id === 'echo-fixture')!.status.starts).toBe(0);
    // Inspection starts a package too: refused, and nothing is staged.
    const inspect = await client.post('/api/databases/main/plugins/inspect', { source: await echoPackage() });
    expect(inspect.status).toBe(409);
    expect((await jsonOf(inspect)).error).toMatchObject({ code: 'bwrap_required', message: expect.stringMatching(/so the package was not inspected \(inspecting starts it\)/) });
  });
});
