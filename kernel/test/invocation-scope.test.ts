import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInvocationScopes } from '../src/invocations/index.js';
import { createCredentials } from '../src/credentials/index.js';
import type { ProgressUpdate } from '../src/connectors/index.js';
import { pluginHarness, type PluginHarness } from './helpers/plugins.js';

/** A credential opened from a fake sealed row ("sealed" here is the clear JSON; the real opener is the vault's). */
function credential(profileId = 'prf_0000000000000000') {
  return createCredentials({
    sealedProfile: () => ({ kind: 'password', config: JSON.stringify({ username: 'app' }), secret: new TextEncoder().encode(JSON.stringify({ password: 'S3cret-Value-123' })) }),
    unseal: (sealed) => new TextDecoder().decode(sealed),
  }).open(profileId);
}

describe('the invocation scope', () => {
  it('hands out the declared fields of its one profile while live, and nothing once disposed', async () => {
    const scopes = createInvocationScopes();
    const closed: string[] = [];
    const scope = scopes.open({ invocationId: 'req_a', connectorId: 'redis', database: 'main', targetId: 'tgt_a', profileId: 'prf_a', credential: credential() });
    scope.own({ close: () => void closed.push('endpoint') });
    expect(scope.lease(['password'])).toEqual({ kind: 'password', fields: { password: 'S3cret-Value-123' } });
    expect(scope.lease()).toEqual({ kind: 'password', fields: { username: 'app', password: 'S3cret-Value-123' } });
    expect(scopes.resolve('req_a', 'redis')).toBe(scope);
    // Another connector naming it, or a name that is not an id, gets nothing.
    expect(scopes.resolve('req_a', 'postgres')).toBeUndefined();
    expect(scopes.resolve({ toString: () => 'req_a' }, 'redis')).toBeUndefined();
    await scope.dispose();
    expect(closed).toEqual(['endpoint']);
    expect(scope.live).toBe(false);
    expect(scopes.resolve('req_a', 'redis')).toBeUndefined();
    expect(() => scope.lease()).toThrow(/has ended/);
    expect(scope.secretValues()).toEqual([]);
    // Something tied to it after the end is closed at once, never kept.
    scope.own({ close: () => void closed.push('late') });
    await new Promise((resolve) => setImmediate(resolve));
    expect(closed).toEqual(['endpoint', 'late']);
    expect(scopes.size).toBe(0);
  });

  it('refuses a second scope under an id in use', () => {
    const scopes = createInvocationScopes();
    scopes.open({ invocationId: 'req_b', connectorId: 'redis', database: 'main', targetId: 'tgt_a', profileId: 'prf_a', credential: credential() });
    expect(() => scopes.open({ invocationId: 'req_b', connectorId: 'redis', database: 'main', targetId: 'tgt_a', profileId: 'prf_a', credential: credential() })).toThrow(/already/);
  });
});

describe('plugin messages that name an invocation (real plugin processes)', () => {
  let h: PluginHarness;
  beforeAll(async () => {
    h = await pluginHarness({ fixtures: ['scope-prober', 'scope-prober-b'] });
  }, 60_000);
  afterAll(async () => {
    await h?.cleanup();
  });

  it('are answered only for the plugin’s own running invocation: a finished one, another connector’s and an unknown one get nothing', async () => {
    const a = await h.target('scope-prober');
    const b = await h.target('scope-prober-b');
    // 1. A finished invocation of this very connector.
    const finished = await h.call(a, 'probe', {});
    expect(finished.status).toBe('completed');
    expect(h.kernel.scopes.size).toBe(0);

    // 2. A running invocation of another connector, with its own progress listener.
    const progressOfB: ProgressUpdate[] = [];
    const outcome = await h.kernel.pipeline.call(h.kernel.authenticateToken(b.token), { targetRef: b.targetRef, action: 'hold', input: {} }, { waitMs: 2_000, onProgress: (u) => progressOfB.push(u) });
    if (outcome.kind !== 'request') throw new Error('expected a request');
    const held = outcome.request;
    for (let i = 0; i < 100 && progressOfB.length === 0; i += 1) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(held.status).toBe('running');
    expect(progressOfB.map((p) => p.message)).toEqual(['scope-prober-b holding']);

    // 3. The probe names them all, and an id that never existed.
    const progressOfProbe: ProgressUpdate[] = [];
    const never = 'req_0000000000000000';
    const probe = await h.call(a, 'probe', { ids: [finished.id, held.id, never] }, { onProgress: (u) => progressOfProbe.push(u) });
    expect(probe.status).toBe('completed');
    const results = probe.output as Record<string, { sign: { code?: number; message?: string; answered?: unknown }; hostKey: { code?: number; message?: string; answered?: unknown } }>;
    // Its own live invocation is recognised: the answer is only that the capability is absent (no SSH key here).
    expect(results.own!.sign).toMatchObject({ code: -32601, message: expect.stringContaining('capability absent') });
    expect(results.own!.hostKey).toMatchObject({ code: -32601 });
    for (const named of [finished.id, held.id, never]) {
      for (const method of ['sign', 'hostKey'] as const) {
        expect(results[named]![method], `${method} naming ${named}`).toMatchObject({ code: -32602, message: expect.stringContaining('No running invocation of this connector') });
        expect(results[named]![method].answered).toBeUndefined();
      }
    }
    // Forged progress reached nobody: not the other connector's running call, not this one's listener.
    expect(progressOfB.map((p) => p.message)).toEqual(['scope-prober-b holding']);
    expect(progressOfProbe.map((p) => p.message)).toEqual([`forged by scope-prober for own`]);

    await h.call(b, 'release', {});
    for (let i = 0; i < 200 && (await h.ws.approvals.require(held.id)).status === 'running'; i += 1) await new Promise((resolve) => setTimeout(resolve, 20));
    expect((await h.ws.approvals.require(held.id)).status).toBe('completed');
    expect(h.kernel.scopes.size).toBe(0);
  }, 60_000);

  it('are not answered for a running invocation of the same connector on another credential profile (another process)', async () => {
    const mine = await h.target('scope-prober');
    const other = await h.target('scope-prober');
    const progressOfOther: ProgressUpdate[] = [];
    const outcome = await h.kernel.pipeline.call(h.kernel.authenticateToken(other.token), { targetRef: other.targetRef, action: 'hold', input: {} }, { waitMs: 2_000, onProgress: (u) => progressOfOther.push(u) });
    if (outcome.kind !== 'request') throw new Error('expected a request');
    const held = outcome.request;
    for (let i = 0; i < 100 && progressOfOther.length === 0; i += 1) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(held.status).toBe('running');
    // Same connector, live invocation: only its profile decides that this process gets nothing for it.
    const probe = await h.call(mine, 'probe', { ids: [held.id] });
    const results = probe.output as Record<string, { sign: { code?: number; message?: string }; hostKey: { code?: number } }>;
    expect(results.own!.sign).toMatchObject({ code: -32601 });
    expect(results[held.id]!.sign).toMatchObject({ code: -32602, message: expect.stringContaining('No running invocation of this connector') });
    expect(results[held.id]!.hostKey).toMatchObject({ code: -32602 });
    expect(progressOfOther.map((p) => p.message)).toEqual(['scope-prober holding']);
    await h.call(other, 'release', {});
    for (let i = 0; i < 200 && (await h.ws.approvals.require(held.id)).status === 'running'; i += 1) await new Promise((resolve) => setTimeout(resolve, 20));
    expect((await h.ws.approvals.require(held.id)).status).toBe('completed');
  }, 60_000);
});
