import { operatorPrincipal } from '../src/lib/principal.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHarness, fakeConnectorDefinition, type Fixture, type Harness } from './helpers/kernel.js';
import { defineStaticConnector } from '../src/connectors/index.js';
import { createKernel } from '../src/kernel.js';
import { PASSWORD, tempDir } from './helpers/temp.js';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { inputAad } from '../src/approvals/index.js';

let h: Harness;
let f: Fixture;
beforeEach(async () => {
  h = await createHarness();
  f = await h.setup('approval_required');
});
afterEach(async () => h.cleanup());

async function pending(input: Record<string, unknown> = { value: 'v' }, extra: { idempotencyKey?: string; action?: string } = {}) {
  const outcome = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: extra.action ?? 'write_thing', input, ...(extra.idempotencyKey ? { idempotencyKey: extra.idempotencyKey } : {}) });
  if (outcome.kind !== 'request') throw new Error('expected a request');
  expect(outcome.request.status).toBe('approval_pending');
  return outcome.request;
}

async function expectStaleOnRun(requestId: string, reason: RegExp) {
  const result = await h.kernel.pipeline.runApproved(operatorPrincipal(h.ws.name, 'test-session', 'operator:test'), requestId);
  expect(result.status).toBe('stale');
  expect(result.statusReason).toMatch(reason);
  expect(h.executor.calls).toHaveLength(0);
}

describe('approval snapshots: what was approved is what runs', () => {
  it('marks an approval stale when the grant changed', async () => {
    const request = await pending();
    // A second grant row for the same action makes the evaluation stricter.
    await h.ws.grants.set({ tokenId: f.tokenId, targetId: f.targetId, profileId: f.profileId, action: 'write_thing', rule: 'blocked' }, 'operator:test');
    const now = await h.ws.approvals.require(request.id);
    expect(now.status).toBe('stale');
    expect(now.statusReason).toMatch(/the grant changed \(approval_required -> blocked\)/);
  });

  it('marks an approval stale when the grant expired before Run', async () => {
    const grants = await h.ws.grants.list({ tokenId: f.tokenId });
    await h.ws.grants.set({ tokenId: f.tokenId, targetId: f.targetId, profileId: f.profileId, action: grants[0]!.action, rule: 'approval_required', expiresAt: new Date(h.clock.now() + 60_000).toISOString() }, 'operator:test');
    const request = await pending();
    h.clock.advance(120_000);
    await expectStaleOnRun(request.id, /the grant changed \(approval_required -> no grant\)/);
  });

  it('marks an approval stale when the token was revoked', async () => {
    const request = await pending();
    await h.ws.tokens.revoke(f.tokenId, 'operator:test');
    const now = await h.ws.approvals.require(request.id);
    expect(now.status).toBe('stale');
    expect(now.statusReason).toMatch(/the token is revoked/);
  });

  it('marks an approval stale when the token expired before Run', async () => {
    const token = await h.ws.tokens.create({ name: 'short-lived', expiresAt: new Date(h.clock.now() + 60_000).toISOString() }, 'operator:test');
    await h.ws.grants.set({ tokenId: token.token.id, targetId: f.targetId, profileId: f.profileId, action: '*', rule: 'approval_required' }, 'operator:test');
    const outcome = await h.kernel.pipeline.call(h.kernel.authenticateToken(token.secret), { targetRef: f.targetRef, action: 'write_thing', input: { value: 'x' } });
    if (outcome.kind !== 'request') throw new Error();
    h.clock.advance(30_000 + h.ws.settings.get().approvalTtlSeconds * 0);
    h.clock.advance(40_000);
    await expectStaleOnRun(outcome.request.id, /the token is expired/);
  });

  it('stales pending requests at once when the target is edited or deleted', async () => {
    const a = await pending({ value: 'a' });
    await h.ws.targets.updateTarget(f.targetId, { config: { host: 'elsewhere' } }, 'operator:test');
    expect((await h.ws.approvals.require(a.id)).statusReason).toMatch(/the target configuration changed/);
    const b = await pending({ value: 'b' });
    await h.ws.targets.deleteTarget(f.targetId, 'operator:test');
    const bNow = await h.ws.approvals.require(b.id);
    expect(bNow.status).toBe('stale');
    expect(bNow.statusReason).toMatch(/the target was deleted/);
  });

  it('stales pending requests at once when the profile config, secret or existence changes', async () => {
    const a = await pending({ value: 'a' });
    await h.ws.targets.updateProfile(f.profileId, { config: { username: 'root' } }, 'operator:test');
    expect((await h.ws.approvals.require(a.id)).statusReason).toMatch(/the credential profile changed/);
    const b = await pending({ value: 'b' });
    await h.ws.targets.updateProfile(f.profileId, { secret: { password: 'New-Secret-456' } }, 'operator:test');
    expect((await h.ws.approvals.require(b.id)).statusReason).toMatch(/secret changed/);
    const c = await pending({ value: 'c' });
    await h.ws.targets.deleteProfile(f.profileId, 'operator:test');
    expect((await h.ws.approvals.require(c.id)).statusReason).toMatch(/the credential profile was deleted/);
  });

  it('marks an approval stale when the connector was upgraded', async () => {
    const request = await pending();
    h.catalog.register(defineStaticConnector(fakeConnectorDefinition('1.1.0')));
    await expectStaleOnRun(request.id, /the connector was upgraded \(1\.0\.0 -> 1\.1\.0\)/);
  });

  it("re-checks a connector's pending approvals at once, in a transaction of its own, when asked (a plugin was installed or removed)", async () => {
    const request = await pending();
    expect(await h.ws.approvals.revalidateConnector('fake')).toBe(0);
    h.catalog.register(defineStaticConnector(fakeConnectorDefinition('1.1.0')));
    expect(await h.ws.approvals.revalidateConnector('another-connector')).toBe(0);
    expect((await h.ws.approvals.require(request.id)).status).toBe('approval_pending');
    expect(await h.ws.approvals.revalidateConnector('fake')).toBe(1);
    const now = await h.ws.approvals.require(request.id);
    expect(now.status).toBe('stale');
    expect(now.statusReason).toMatch(/the connector was upgraded \(1\.0\.0 -> 1\.1\.0\)/);
    expect((await h.ws.audit.search({ event: 'action.staled', limit: 1 })).entries[0]?.subject).toMatchObject({ requestId: request.id });
  });

  it("marks an approval stale when the manifest or the action's definition changed under the same version", async () => {
    const a = await pending({ value: 'a' });
    h.catalog.register(defineStaticConnector(fakeConnectorDefinition('1.0.0', { title: 'Renamed' })));
    await expectStaleOnRun(a.id, /the connector's manifest changed/);
    const b = await pending({ value: 'b' });
    const definition = fakeConnectorDefinition('1.0.0', { title: 'Renamed' });
    definition.actions = definition.actions.map((action) => (action.name === 'write_thing' ? { ...action, risk: 'destructive' as const } : action));
    h.catalog.register(defineStaticConnector(definition));
    await expectStaleOnRun(b.id, /the action's definition changed/);
  });

  it('marks an approval stale when the sealed input was tampered with', async () => {
    const request = await pending({ value: 'original' });
    const forged = h.ws.handle.sealer.seal(JSON.stringify({ value: 'rm -rf /' }), inputAad(request.id));
    await h.ws.db.run('UPDATE requests SET input_hash = ?, input_sealed = ? WHERE id = ?', ['0'.repeat(64), forged, request.id]);
    await expectStaleOnRun(request.id, /the input changed/);
  });

  it('runs an unchanged approval', async () => {
    const request = await pending();
    const done = await h.kernel.pipeline.runApproved(operatorPrincipal(h.ws.name, 'test-session', 'operator:test'), request.id);
    expect(done.status).toBe('completed');
    await expect(h.kernel.pipeline.runApproved(operatorPrincipal(h.ws.name, 'test-session', 'operator:test'), request.id)).rejects.toMatchObject({ code: 'request_state_conflict' });
  });
});

describe('approval lifecycle', () => {
  it('expires a pending request after the TTL', async () => {
    await h.ws.settings.update({ approvalTtlSeconds: 60 }, 'operator:test');
    const request = await pending();
    h.clock.advance(59_000);
    await h.kernel.expireNow();
    expect((await h.ws.approvals.require(request.id)).status).toBe('approval_pending');
    h.clock.advance(2_000);
    await h.kernel.expireNow();
    expect((await h.ws.approvals.require(request.id)).status).toBe('expired');
    await expect(h.kernel.pipeline.runApproved(operatorPrincipal(h.ws.name, 'test-session', 'operator:test'), request.id)).rejects.toMatchObject({ code: 'request_state_conflict' });
  });

  it('checks the TTL again at Run even between sweeps', async () => {
    const request = await pending();
    h.clock.advance(16 * 60_000);
    await expect(h.kernel.pipeline.runApproved(operatorPrincipal(h.ws.name, 'test-session', 'operator:test'), request.id)).rejects.toMatchObject({ message: expect.stringContaining('expired') });
  });

  it('replays the same request for the same idempotency key and refuses a different one', async () => {
    const first = await pending({ value: 'same' }, { idempotencyKey: 'deploy-42' });
    const again = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'write_thing', input: { value: 'same' }, idempotencyKey: 'deploy-42' });
    expect(again.kind === 'request' && again.replayed && again.request.id).toBe(first.id);
    const conflict = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'write_thing', input: { value: 'different' }, idempotencyKey: 'deploy-42' }).catch((e) => e);
    expect(conflict.code).toBe('idempotency_conflict');
    expect(conflict.message).toContain(first.id);
    expect((await h.ws.approvals.list()).requests).toHaveLength(1);
  });

  it('replays a completed always_run request without running it twice', async () => {
    const run = await h.setup('always_run');
    const call = () => h.kernel.pipeline.call(h.kernel.authenticateToken(run.token), { targetRef: run.targetRef, action: 'echo', input: { text: 'once' }, idempotencyKey: 'k1' });
    const a = await call();
    const b = await call();
    expect(a.kind === 'request' && b.kind === 'request' && a.request.id === b.request.id).toBe(true);
    expect(b.kind === 'request' && b.request.status).toBe('completed');
    expect(h.executor.calls).toHaveLength(1);
  });

  it('declines with a note that is stored for delivery to the agent', async () => {
    const request = await pending();
    const declined = await h.ws.approvals.decline(request.id, 'Not during business hours. token: abc123secretvalue', 'operator:test');
    expect(declined.status).toBe('declined');
    expect(declined.operatorNote).toBe('Not during business hours. token: [REDACTED]');
    const notes = await h.ws.messages.takeUndelivered(f.tokenId);
    expect(notes).toHaveLength(1);
    expect(notes[0]!.requestId).toBe(request.id);
    expect(notes[0]!.body).toBe('Not during business hours. token: [REDACTED]');
  });

  it("lets the agent cancel only its own pending request", async () => {
    const request = await pending();
    const other = await h.setup('approval_required');
    await expect(h.ws.approvals.cancel(request.id, other.tokenId, 'token:x')).rejects.toMatchObject({ code: 'not_found' });
    const canceled = await h.ws.approvals.cancel(request.id, f.tokenId, `token:${f.tokenId}`);
    expect(canceled.status).toBe('canceled');
  });

  it('finds requests by full-text search', async () => {
    await pending({ value: 'rotate the flux capacitor' });
    await pending({ value: 'something else' });
    const found = await h.ws.approvals.list({ q: 'capacitor' });
    expect(found.requests).toHaveLength(1);
    expect(found.requests[0]!.inputPreview).toEqual({ value: 'rotate the flux capacitor' });
    expect((await h.ws.approvals.list({ q: 'flux "OR" AND NOT (' })).requests).toHaveLength(0);
  });
});

describe('crash recovery', () => {
  it('marks requests that were running when the process died as outcome_unknown', async () => {
    const { dir, cleanup } = await tempDir();
    const kernel = createKernel({ dataDir: dir, log: () => undefined });
    await kernel.createDatabase('main', PASSWORD);
    const child = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/crash-child.mjs', import.meta.url)), dir, PASSWORD], { stdio: ['ignore', 'pipe', 'inherit'] });
    const requestId = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const match = /RUNNING (req_\w+)/.exec(out);
        if (match) resolve(match[1]!);
      });
      child.on('exit', (code) => reject(new Error(`child exited early with ${code}`)));
    });
    // The crash: no shutdown, no completion entry, the request row says running.
    child.kill('SIGKILL');
    await once(child, 'exit');
    const ws = await kernel.unlock('main', PASSWORD, 'operator:test');
    const request = await ws.approvals.require(requestId);
    expect(request.status).toBe('outcome_unknown');
    expect(request.statusReason).toMatch(/gateway stopped while the action was running/);
    const events = (await ws.audit.search({ subjectId: requestId })).entries.map((e) => e.event).reverse();
    expect(events).toEqual(['action.started', 'action.outcome_unknown']);
    expect((await ws.audit.verify()).ok).toBe(true);
    await kernel.close();
    await cleanup();
  });
});
