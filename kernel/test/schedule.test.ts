import { afterEach, describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/kernel.js';
import { createStaticCatalog, defineStaticConnector } from '../src/connectors/index.js';
import { createManualClock } from '../src/lib/clock.js';
import { createFakeExecutor, fakeConnectorDefinition } from './helpers/kernel.js';
import { tempDir, PASSWORD } from './helpers/temp.js';

let kernel: Kernel | undefined;
let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await kernel?.close();
  await cleanup?.();
});

async function until(check: () => Promise<boolean>, timeoutMs = 5000) {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('scheduled maintenance', () => {
  it('expires pending approvals on its own, without anyone asking', async () => {
    const t = await tempDir();
    cleanup = t.cleanup;
    const clock = createManualClock(Date.now());
    kernel = createKernel({
      dataDir: t.dir,
      clock,
      catalog: createStaticCatalog([defineStaticConnector(fakeConnectorDefinition())]),
      executor: createFakeExecutor(),
      expiryIntervalMs: 25,
      log: () => undefined,
    });
    await kernel.createDatabase('main', PASSWORD);
    const ws = await kernel.unlock('main', PASSWORD, 'operator:test');
    await ws.mcp.set(true, 'operator:test');
    const target = await ws.targets.createTarget({ kind: 'fake', name: 't', config: {} }, 'test');
    const profile = await ws.targets.createProfile(target.id, { label: 'p', credentialKind: 'password' }, 'test');
    const token = await ws.tokens.create({ name: 'a' }, 'test');
    await ws.grants.set({ tokenId: token.token.id, targetId: target.id, profileId: profile.id, action: '*', rule: 'approval_required' }, 'test');
    const outcome = await kernel.pipeline.call(kernel.authenticateToken(token.secret), { targetRef: `fake:${target.id}:${profile.id}`, action: 'write_thing', input: { value: 'x' } });
    if (outcome.kind !== 'request') throw new Error();
    clock.advance(16 * 60_000);
    await until(async () => (await ws.approvals.require(outcome.request.id)).status === 'expired');
  });

  it('runs retention on its own schedule and leaves the chain verifiable', async () => {
    const t = await tempDir();
    cleanup = t.cleanup;
    const clock = createManualClock(Date.now());
    kernel = createKernel({ dataDir: t.dir, clock, retentionIntervalMs: 25, log: () => undefined });
    await kernel.createDatabase('main', PASSWORD);
    const ws = await kernel.unlock('main', PASSWORD, 'operator:test');
    await ws.settings.update({ auditRetentionDays: 1 }, 'operator:test');
    clock.advance(3 * 86_400_000);
    await ws.audit.append({ actor: 'system', event: 'test.recent' });
    await until(async () => (await ws.audit.search({ event: 'audit.pruned' })).entries.length > 0);
    const report = await ws.audit.verify();
    expect(report).toMatchObject({ ok: true, checkpoint: expect.anything() });
  });
});
