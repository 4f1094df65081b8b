import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pluginHarness, type PluginHarness } from './helpers/plugins.js';

/**
 * Issue 16 item 5: a call that never reached a live plugin (its process had
 * stopped, or its end of the pipe was closed, before the request was written)
 * did not run: it fails retryable and says so. A call that may have reached
 * it stays outcome_unknown.
 */
describe('a plugin that stops answering before a call reaches it (issue 16 item 5)', () => {
  let h: PluginHarness;
  let t: Awaited<ReturnType<PluginHarness['target']>>;
  beforeAll(async () => {
    // Without bubblewrap: under it, bwrap's own monitor process holds the pipe open until the sandbox exits, so the
    // kernel sees the hang-up only with the exit (the kill tests in faults-plugin-kill.test.ts cover that case).
    h = await pluginHarness({ fixtures: ['half-closed'], bwrap: 'off', supervisor: { restartBudget: { crashes: 100, windowMs: 60_000 } } });
    t = await h.target('half-closed');
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  it('fails a call sent to a process whose pipe is closed as retryable and "did not run", and the one it was running as outcome_unknown', async () => {
    expect((await h.call(t, 'ok')).status).toBe('completed');
    // The plugin hangs up in the middle of this call and lingers for a while before its exit.
    const running = h.call(t, 'hang_up', { lingerMs: 1500 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const refused = await h.call(t, 'ok');
    expect(refused).toMatchObject({ status: 'failed', error: { kind: 'system', retryable: true, message: expect.stringMatching(/before the call reached it, so the action did not run.*Retrying is safe/) } });
    // The call it was running had reached it: whether it took effect is unknown.
    expect(await running).toMatchObject({ status: 'outcome_unknown', statusReason: expect.stringMatching(/exited unexpectedly .* during the call/) });
    // And a retry runs, on a fresh process.
    expect((await h.call(t, 'ok')).status).toBe('completed');
    const entries = await h.ws.audit.search({ subjectId: refused.id });
    expect(entries.entries.map((e) => e.event).sort()).toEqual(['action.failed', 'action.started']);
  });
});
