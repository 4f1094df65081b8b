/**
 * Issue 10, item 3: a lease must not outlive its call inside a shared
 * process. A hostile connector (fixtures/plugins/stash) keeps every lease it
 * is handed and gives it back out later, in every channel it has. Code
 * serving one credential profile must never hold another profile's secret,
 * and whatever a plugin process sends is redacted with every secret the
 * kernel ever handed it, not only the current lease.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { detectBwrap } from '../src/plugin-host/index.js';
import type { ProgressUpdate } from '../src/connectors/index.js';
import { installedHarness, type InstalledHarness } from './helpers/installed.js';
import { pluginHarness, type PluginHarness } from './helpers/plugins.js';

const HAS_BWRAP = detectBwrap() !== null;
const MODES = HAS_BWRAP ? (['off', 'auto'] as const) : (['off'] as const);
const FAST = { idleMs: 60_000, cancelGraceMs: 500, handshakeTimeoutMs: 5_000, restartBudget: { crashes: 3, windowMs: 60_000 } };

const ALPHA = 'Alpha-Secret-1111-aaaa';
const BRAVO = 'Bravo-Secret-2222-bbbb';
const ROTATED = 'Alpha-Rotated-3333-cccc';

/** Every form of a secret the stash fixture puts out: exact-match redaction only catches the first. */
const formsOf = (secret: string) => [secret, Buffer.from(secret).toString('base64'), [...secret].reverse().join('')];

let h: InstalledHarness | undefined;
let p: PluginHarness | undefined;
afterEach(async () => {
  await h?.cleanup();
  await p?.cleanup();
  h = undefined;
  p = undefined;
});

describe('an installed plugin never holds the lease of a profile it is not serving', () => {
  for (const bwrap of MODES) {
    const label = bwrap === 'off' ? 'Node permissions alone' : 'bubblewrap';

    it(`a lease kept during profile A's call reaches no channel of a call on profile B, in any encoding (${label})`, async () => {
      h = await installedHarness({ bwrap, supervisor: FAST });
      await h.install('stash');
      const a = await h.target('stash', ALPHA);
      const b = await h.profile(a, BRAVO);
      const remembered = await h.call(a, 'remember');
      expect(remembered).toMatchObject({ status: 'completed', output: { remembered: 2 } });

      const progress: ProgressUpdate[] = [];
      const leak = await h.call(b, 'leak', {}, (update) => progress.push(update));
      expect(leak.status).toBe('completed');
      const leakError = await h.call(b, 'leak_error');
      expect(leakError.status).toBe('failed');
      const scratch = await h.call(b, 'leak_scratch');
      expect(scratch.status).toBe('completed');
      const check = await h.check(b);
      await new Promise((resolve) => setTimeout(resolve, 100));

      // Profile B is served by a process of its own, which never saw A's lease (under bubblewrap each has pid 2 of its own namespace).
      if (bwrap === 'off') expect((leak.output as { pid: number }).pid).not.toBe((remembered.output as { pid: number }).pid);
      const seen = JSON.stringify({ leak, leakError, scratch, check, progress, pluginLog: h.host.log('stash'), gatewayLog: h.logs, audit: await h.audit() });
      for (const form of formsOf(ALPHA)) expect(seen).not.toContain(form);
      // B's own password is masked wherever it comes back verbatim (its encodings are its own lease: the plugin holds it).
      expect(JSON.stringify(leak.output)).not.toContain(BRAVO);
      expect(h.host.list().find((plugin) => plugin.id === 'stash')!.status.processes).toBe(2);
    }, 60_000);

    it(`everything a process sends is redacted with every secret it was ever handed, after a rotation too (${label})`, async () => {
      h = await installedHarness({ bwrap, supervisor: FAST });
      await h.install('stash');
      const a = await h.target('stash', ALPHA);
      expect((await h.call(a, 'remember')).status).toBe('completed');
      // The operator rotates the password; the running process still holds the old one.
      await h.ws.targets.updateProfile(a.profileId, { secret: { password: ROTATED } }, 'operator:test');
      const progress: ProgressUpdate[] = [];
      const leak = await h.call(a, 'leak', {}, (update) => progress.push(update));
      const leakError = await h.call(a, 'leak_error');
      const check = await h.check(a);
      await new Promise((resolve) => setTimeout(resolve, 100));
      const output = leak.output as { verbatim: string[]; keys: Record<string, boolean> };
      // It did keep both (the masked values stand where they were).
      expect(output.verbatim).toHaveLength(3);
      expect(progress.length).toBe(3);
      const seen = JSON.stringify({ leak, leakError, check, progress, pluginLog: h.host.log('stash'), gatewayLog: h.logs, audit: await h.audit() });
      expect(seen).not.toContain(ALPHA);
      expect(seen).not.toContain(ROTATED);
      expect(Object.keys(output.keys).join(' ')).not.toMatch(/Alpha/);
    }, 60_000);
  }

  it('without bubblewrap a process that fetches another profile’s lease over loopback gets it masked; with bubblewrap it cannot connect at all', async () => {
    for (const bwrap of MODES) {
      h = await installedHarness({ bwrap, supervisor: FAST });
      await h.install('stash');
      const a = await h.target('stash', ALPHA);
      const b = await h.profile(a, BRAVO);
      const port = 41_000 + Math.floor(Math.random() * 2_000);
      const served = await h.call(a, 'serve_stash', { port });
      expect(served.output).toEqual({ listening: 'listening' });
      const fetched = await h.call(b, 'fetch_stash', { port });
      const text = (fetched.output as { fetched: string }).fetched;
      if (bwrap === 'auto') expect([bwrap, text]).toEqual([bwrap, expect.stringMatching(/^failed: (ECONNREFUSED|ENETUNREACH|EACCES)/)]);
      else expect([bwrap, text]).toEqual([bwrap, expect.stringMatching(/^ok: [\s\S]*\[REDACTED\]/)]);
      expect(JSON.stringify(fetched)).not.toContain(ALPHA);
      await h.cleanup();
      h = undefined;
    }
  }, 60_000);
});

describe('processes per credential profile are bounded', () => {
  it('keeps at most maxProcessesPerPlugin processes of one plugin: an idle one is stopped for a new profile', async () => {
    p = await pluginHarness({ fixtures: ['echo'], supervisor: { ...FAST, maxProcessesPerPlugin: 2 } });
    const targets = [await p.target('echo-fixture'), await p.target('echo-fixture'), await p.target('echo-fixture')];
    for (const t of targets) expect((await p.call(t, 'echo', { text: 'x' })).status).toBe('completed');
    const status = p.host.list()[0]!.status;
    expect(status.processes).toBe(2);
    expect(status.starts).toBe(3);
    // The first profile's process was the least recently used: it was stopped, and starts again when needed.
    expect((await p.call(targets[0]!, 'echo', { text: 'again' })).status).toBe('completed');
    expect(p.host.list()[0]!.status).toMatchObject({ processes: 2, starts: 4 });
  }, 60_000);

  it('a new profile waits while every process is busy, and runs once one is free', async () => {
    p = await pluginHarness({ fixtures: ['echo'], supervisor: { ...FAST, maxProcessesPerPlugin: 2 } });
    const [one, two, three] = [await p.target('echo-fixture'), await p.target('echo-fixture'), await p.target('echo-fixture')];
    // Warm both processes first, so the slow calls' deadline is about the calls.
    await p.call(one, 'echo', { text: 'warm' });
    await p.call(two, 'echo', { text: 'warm' });
    const busy = [p.call(one, 'slow', { ms: 250 }), p.call(two, 'slow', { ms: 250 })];
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = Date.now();
    const third = await p.call(three, 'echo', { text: 'third' });
    expect(third).toMatchObject({ status: 'completed', output: { text: 'third' } });
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect((await Promise.all(busy)).map((r) => r.status)).toEqual(['completed', 'completed']);
    expect(p.host.list()[0]!.status.processes).toBeLessThanOrEqual(2);
  }, 60_000);

  it('locking a database stops the processes that served its profiles (their leases leave with them)', async () => {
    p = await pluginHarness({ fixtures: ['stash'], supervisor: FAST });
    const a = await p.target('stash', { secret: { password: ALPHA } });
    const b = await p.target('stash', { secret: { password: BRAVO } });
    await p.call(a, 'remember');
    await p.call(b, 'remember');
    expect(p.host.list()[0]!.status.processes).toBe(2);
    await p.kernel.lock('main', 'operator:test');
    const started = Date.now();
    while (p.host.list()[0]!.status.processes > 0 && Date.now() - started < 10_000) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(p.host.list()[0]!.status.processes).toBe(0);
  }, 60_000);

  it('built-in connectors get a process per profile too (the same stash attack, as a built-in)', async () => {
    p = await pluginHarness({ fixtures: ['stash'], supervisor: FAST });
    const a = await p.target('stash', { secret: { password: ALPHA } });
    const b = await p.target('stash', { secret: { password: BRAVO } });
    await p.call(a, 'remember');
    const leak = await p.call(b, 'leak');
    for (const form of formsOf(ALPHA)) expect(JSON.stringify(leak)).not.toContain(form);
  }, 60_000);
});
