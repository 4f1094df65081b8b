import { afterEach, describe, expect, it } from 'vitest';
import { appendFile, cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FIXTURES, pluginHarness, type PluginHarness } from './helpers/plugins.js';
import { collector } from './helpers/gc.js';
import { tempDir } from './helpers/temp.js';
import { BUILTIN_PLUGIN_NAMES, defaultPinsFile, detectBwrap, pinBuiltins } from '../src/plugin-host/index.js';

let h: PluginHarness | undefined;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const FAST = { idleMs: 60_000, cancelGraceMs: 500, handshakeTimeoutMs: 5_000, restartBudget: { crashes: 3, windowMs: 60_000 } };
const HAS_BWRAP = detectBwrap() !== null;

describe('a well-behaved plugin', () => {
  it('starts lazily in its sandbox, answers, and reports its status', async () => {
    h = await pluginHarness({ fixtures: ['echo'], supervisor: FAST });
    expect(h.host.list()[0]!.status.state).toBe('stopped');
    const t = await h.target('echo-fixture');
    const request = await h.call(t, 'echo', { text: 'hi' });
    expect(request).toMatchObject({ status: 'completed', output: { text: 'hi' } });
    const status = h.host.list()[0]!.status;
    expect(status).toMatchObject({ state: 'ready', starts: 1, crashes: 0 });
    expect(status.sandbox.level).toBe(HAS_BWRAP ? 'bwrap+node-permission' : 'node-permission');
  });

  it('gets exactly the declared credential fields of its one profile, the target config and a scrubbed environment (invariant 1)', async () => {
    process.env.AIP_TEST_SENTINEL = 'kernel-environment-must-not-leak';
    h = await pluginHarness({ fixtures: ['echo'], supervisor: FAST });
    const t = await h.target('echo-fixture', { config: { host: 'db.internal', port: 5555, note: 'n' }, username: 'app', secret: { password: 'Only-This-One-1' } });
    await h.target('echo-fixture', { secret: { password: 'Another-Profile-2' } });
    const request = await h.call(t, 'lease');
    const output = request.output as Record<string, any>;
    expect(output.target).toEqual({ host: 'db.internal', port: 5555, note: 'n' });
    expect(output.credentialKind).toBe('password');
    // The plugin saw the password (it needs it); the stored request does not.
    expect(output.credentialFields).toEqual({ username: 'app', password: '[REDACTED]' });
    // The endpoint is the kernel's, named after the target's host (the TLS name); the relay behind it dials db.internal:5555.
    expect(output.endpoint).toEqual(
      HAS_BWRAP
        ? { type: 'unix', path: expect.stringMatching(/^\/run\/ep\/\d+\.sock$/), transport: 'direct', serverName: 'db.internal' }
        : { type: 'tcp', host: '127.0.0.1', port: expect.any(Number), transport: 'direct', serverName: 'db.internal' },
    );
    expect(output.env).toEqual(expect.arrayContaining(['AIP_PLUGIN_SCRATCH', 'NODE_ENV']));
    // PWD is set by bwrap to the sandbox's own /scratch; nothing else comes from the kernel.
    expect(output.env.filter((name: string) => !['AIP_PLUGIN_SCRATCH', 'NODE_ENV', 'LANG', 'LC_ALL', 'TZ', 'PWD'].includes(name))).toEqual([]);
    expect(output.argv.some((arg: string) => /permission/.test(arg))).toBe(true);
    expect(JSON.stringify(output)).not.toContain('Another-Profile-2');
    delete process.env.AIP_TEST_SENTINEL;
  });

  it('reports progress to the caller', async () => {
    h = await pluginHarness({ fixtures: ['echo'], supervisor: FAST });
    const t = await h.target('echo-fixture');
    const updates: unknown[] = [];
    const request = await h.call(t, 'progress', { steps: 3 }, { onProgress: (u) => updates.push(u) });
    expect(request.status).toBe('completed');
    expect(updates).toEqual([
      { message: 'step 1', completed: 1, total: 3 },
      { message: 'step 2', completed: 2, total: 3 },
      { message: 'step 3', completed: 3, total: 3 },
    ]);
  });

  it('honours a cancel at the deadline', async () => {
    h = await pluginHarness({ fixtures: ['echo'], supervisor: FAST });
    const t = await h.target('echo-fixture');
    // Started first: the 300 ms deadline is about the call, not the plugin's cold start on a loaded machine.
    await h.call(t, 'echo', { text: 'warm' });
    const request = await h.call(t, 'slow', { ms: 10_000 });
    expect(request.status).toBe('failed');
    expect(request.error!.message).toMatch(/did not finish within its 300 ms deadline and was cancelled/);
    // It answered the cancel, so it was not killed.
    expect(h.host.list()[0]!.status).toMatchObject({ state: 'ready', crashes: 0 });
  });

  it('passes action failures through with their kind and keeps internals in the log', async () => {
    h = await pluginHarness({ fixtures: ['echo'], supervisor: FAST });
    const t = await h.target('echo-fixture');
    expect((await h.call(t, 'fail')).error).toEqual({ kind: 'config', retryable: false, message: 'The fixture refuses: check its configuration.' });
    const thrown = await h.call(t, 'throw');
    expect(thrown.error!.kind).toBe('system');
    expect(JSON.stringify(thrown)).not.toContain('/home/someone');
    expect(h.host.log('echo-fixture').join('\n')).toContain('internal detail');
  });

  it('bounds an output that fits the message cap but not the action', async () => {
    h = await pluginHarness({ fixtures: ['echo'], supervisor: FAST });
    const t = await h.target('echo-fixture');
    const request = await h.call(t, 'big', { bytes: 200_000 });
    expect(request.status).toBe('completed');
    expect(request.outputTruncated).toBe(true);
    expect(Buffer.byteLength(JSON.stringify(request.output))).toBeLessThanOrEqual(4096);
  });

  it('keeps no lease past its call: a kept context refuses to hand it out', async () => {
    h = await pluginHarness({ fixtures: ['echo'], supervisor: FAST });
    const t = await h.target('echo-fixture');
    await h.call(t, 'keep_context');
    const later = await h.call(t, 'read_kept_lease');
    expect(later.output).toEqual({ refused: expect.stringMatching(/credential lease has expired/) });
  });

  it('runs at most maxConcurrent calls in one plugin at once; the rest wait in line', async () => {
    h = await pluginHarness({ fixtures: ['echo'], supervisor: { ...FAST, maxConcurrent: 2 } });
    const t = await h.target('echo-fixture');
    await h.call(t, 'echo', { text: 'warm' });
    const calls = Array.from({ length: 5 }, () => h!.call(t, 'slow', { ms: 150 }));
    await new Promise((r) => setTimeout(r, 60));
    expect(h.host.list()[0]!.status).toMatchObject({ inFlight: 2, queued: 3 });
    const started = Date.now();
    await Promise.all(calls);
    // Three waves of 150 ms (2 + 2 + 1), not one.
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
  });

  it('stops when idle and starts again on the next call', async () => {
    h = await pluginHarness({ fixtures: ['echo'], supervisor: { ...FAST, idleMs: 100 } });
    const t = await h.target('echo-fixture');
    await h.call(t, 'echo', { text: 'a' });
    await new Promise((r) => setTimeout(r, 1_500));
    expect(h.host.list()[0]!.status.state).toBe('stopped');
    expect((await h.call(t, 'echo', { text: 'b' })).status).toBe('completed');
    expect(h.host.list()[0]!.status.starts).toBe(2);
  });
});

describe('misbehaving plugins', () => {
  it('crash on start: a clear failure, then quarantine after the restart budget', async () => {
    h = await pluginHarness({ fixtures: ['crash-on-start'], supervisor: FAST });
    const t = await h.target('crash-on-start');
    for (let i = 0; i < 3; i += 1) {
      const request = await h.call(t, 'noop');
      expect(request.status).toBe('failed');
      expect(request.error!.message).toMatch(/crash-on-start connector is unavailable: it failed to start: exited unexpectedly \(code 3\)/);
    }
    const status = h.host.list()[0]!.status;
    expect(status.state).toBe('quarantined');
    expect(status.quarantined!.reason).toMatch(/3 crashes within 60 s/);
    const refused = await h.call(t, 'noop');
    expect(refused.error!.message).toMatch(/quarantined.*aip plugin restart crash-on-start/);
    expect(h.host.list()[0]!.status.starts).toBe(3);
    await h.host.restart('crash-on-start');
    expect(h.host.list()[0]!.status.state).toBe('stopped');
  });

  it('crash mid-call: the outcome is unknown, and the next call gets a fresh process', async () => {
    h = await pluginHarness({ fixtures: ['crash-mid-call'], supervisor: FAST });
    const t = await h.target('crash-mid-call');
    const request = await h.call(t, 'boom');
    expect(request.status).toBe('outcome_unknown');
    expect(request.statusReason).toMatch(/exited unexpectedly \(code 7\) during the call/);
    expect((await h.call(t, 'ok')).status).toBe('completed');
    expect(h.host.list()[0]!.status).toMatchObject({ starts: 2, crashes: 1 });
  });

  it('a plugin that never answers the handshake is stopped after the handshake timeout', async () => {
    h = await pluginHarness({ fixtures: ['silent'], supervisor: { ...FAST, handshakeTimeoutMs: 500 } });
    const t = await h.target('silent');
    const request = await h.call(t, 'noop');
    expect(request.status).toBe('failed');
    expect(request.error!.message).toMatch(/did not complete the handshake within 500 ms/);
    await until(() => h!.host.list()[0]!.status.state === 'stopped');
    expect(h.host.list()[0]!.status.crashes).toBe(1);
  });

  it('bad protocol version: a plugin built for version 1 is refused at the handshake with a message that says to rebuild it', async () => {
    h = await pluginHarness({ fixtures: ['bad-protocol'], supervisor: FAST });
    const t = await h.target('bad-protocol');
    const request = await h.call(t, 'noop');
    expect(request.status).toBe('failed');
    expect(request.error!.message).toMatch(/refused the handshake: bad-protocol speaks version 1 only; the kernel offered 2/);
    expect(request.error!.message).toMatch(/it was built for plugin protocol version 1; this gateway speaks 2: rebuild it with the current @aipermission\/plugin-sdk and install it again/);
  });

  it('a plugin that answers with a version the kernel did not offer is refused, with a message that says to rebuild it', async () => {
    h = await pluginHarness({ fixtures: ['answers-v1'], supervisor: FAST });
    const t = await h.target('answers-v1');
    const request = await h.call(t, 'noop');
    expect(request.status).toBe('failed');
    expect(request.error!.message).toMatch(/answered with plugin protocol version 1, which this gateway does not speak \(it speaks 2\): rebuild it with the current @aipermission\/plugin-sdk/);
  });

  it('hang on invoke: cancelled at the deadline, killed after the grace period', async () => {
    h = await pluginHarness({ fixtures: ['hang'], supervisor: FAST });
    const t = await h.target('hang');
    const started = Date.now();
    const request = await h.call(t, 'spin');
    expect(request.status).toBe('outcome_unknown');
    expect(request.statusReason).toMatch(/did not stop within 500 ms of being cancelled and was killed/);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(h.host.log('hang').join('\n')).toMatch(/killing the plugin/);
  });

  for (const bwrap of ['off', 'auto'] as const) {
    it(`ignore SIGTERM: the stop escalation ends in SIGKILL, bounded, and is safe to call twice (bwrap ${bwrap})`, async () => {
      h = await pluginHarness({ fixtures: ['ignore-sigterm'], bwrap, supervisor: FAST });
      const t = await h.target('ignore-sigterm');
      expect((await h.call(t, 'noop')).status).toBe('completed');
      const started = Date.now();
      await Promise.all([h.host.stopAll(), h.host.stopAll()]);
      expect(Date.now() - started).toBeLessThan(12_000);
      expect(h.host.list()[0]!.status.state).toBe('stopped');
      const log = h.host.log('ignore-sigterm').join('\n');
      expect(log).toMatch(/still running after exit; escalating/);
      expect(log).toMatch(/still running after closing stdin; escalating/);
      if (bwrap === 'off') expect(log).toMatch(/got SIGTERM, ignoring it[\s\S]*still running after SIGTERM; escalating/);
    }, 30_000);
  }

  it('garbage on stdout: the plugin is stopped with a clear status', async () => {
    h = await pluginHarness({ fixtures: ['garbage'], supervisor: FAST });
    const t = await h.target('garbage');
    const request = await h.call(t, 'print');
    expect(request.status).toBe('outcome_unknown');
    expect(request.statusReason).toMatch(/broke the protocol \(protocol violation: output on the protocol stream that is not a message header: "debug: here I am/);
    // The call fails at once; the killed process's exit is recorded a moment later.
    await until(() => h!.host.list()[0]!.status.lastError !== null);
    expect(h.host.list()[0]!.status.lastError).toMatch(/protocol violation/);
  });

  it('oversize message: refused before it is buffered', async () => {
    h = await pluginHarness({ fixtures: ['oversize'], supervisor: FAST });
    const t = await h.target('oversize');
    const request = await h.call(t, 'huge');
    expect(request.status).toBe('outcome_unknown');
    expect(request.statusReason).toMatch(/over the 8388608-byte limit/);
  });

  it('output flood: bounded, and the kernel memory stays flat', async () => {
    h = await pluginHarness({ fixtures: ['flood'], supervisor: FAST });
    const t = await h.target('flood');
    const gc = collector();
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const rssBefore = process.memoryUsage().rss;
    const request = await h.call(t, 'pour');
    const rssPeak = process.memoryUsage().rss - rssBefore;
    expect(request.status).toBe('outcome_unknown');
    expect(request.statusReason).toMatch(/over the 8388608-byte limit/);
    gc();
    // 240 MB were poured at the kernel: it retains almost nothing of it, and
    // never held more than a fraction at once.
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(8 * 1024 * 1024);
    expect(rssPeak).toBeLessThan(100 * 1024 * 1024);
    expect(h.host.log('flood').length).toBeLessThanOrEqual(200);
  }, 30_000);

  it('secret leaker: every way it logs the password comes out redacted', async () => {
    h = await pluginHarness({ fixtures: ['leaker'], supervisor: FAST });
    const t = await h.target('leaker', { secret: { password: 'Leaky-Password-314' } });
    expect((await h.call(t, 'leak')).status).toBe('completed');
    await new Promise((r) => setTimeout(r, 100));
    const pluginLog = h.host.log('leaker').join('\n');
    expect(pluginLog).toMatch(/logger: the password is/);
    expect(pluginLog).toMatch(/raw fd 2: the password is \[REDACTED\]/);
    expect(pluginLog).not.toContain('Leaky-Password-314');
    expect(h.logs.join('\n')).not.toContain('Leaky-Password-314');
  });
});

describe('the sandbox holds against a hostile plugin', () => {
  const modes = HAS_BWRAP ? (['off', 'auto'] as const) : (['off'] as const);
  for (const bwrap of modes) {
    it(`every escape attempt fails (${bwrap === 'off' ? 'Node permissions alone' : 'Node permissions + bubblewrap'})`, async () => {
      process.env.AIP_TEST_SENTINEL = 'kernel-secret-env';
      h = await pluginHarness({ fixtures: ['hostile', 'echo'], bwrap, supervisor: FAST });
      // Give the other plugin a scratch dir with something in it.
      const echo = await h.target('echo-fixture');
      await h.call(echo, 'echo', { text: 'x' });
      const otherScratch = join(h.dir, 'plugin-scratch', 'echo-fixture');
      const t = await h.target('hostile');
      const request = await h.call(t, 'escape', {
        vaultFile: h.kernel.vault.fileFor('main'),
        dataDir: h.dir,
        kernelPid: process.pid,
        otherScratch,
        outside: join(h.dir, 'planted-by-plugin'),
      });
      expect(request.status).toBe('completed');
      const results = request.output as Record<string, string | number>;
      for (const key of ['readVault', 'listDataDir', 'kernelEnviron', 'kernelCmdline', 'otherScratch', 'writeOtherScratch', 'writeOutside', 'writeTmp', 'spawn', 'spawnSync', 'worker', 'processBinding', 'readShadow']) {
        expect([key, results[key]]).toEqual([key, expect.stringMatching(/^failed: /)]);
      }
      expect(results.sentinel).toBe('absent');
      expect(String(results.envKeys)).not.toMatch(/AIP_TEST_SENTINEL|HOME|PATH/);
      // The permission model refuses first in both modes; under bwrap the plugin
      // is also in its own pid namespace (a low pid that cannot see the kernel's).
      expect(results.readVault).toMatch(/ERR_ACCESS_DENIED/);
      if (bwrap === 'auto') expect(results.pid).toBeLessThan(10);
      expect(await readdir(h.dir)).not.toContain('planted-by-plugin');
      delete process.env.AIP_TEST_SENTINEL;
    });
  }
});

/**
 * A private copy of a fixture's package folder to act as a built-in folder
 * (the checkout an agent can edit), with files beside the pinned set: a
 * module at the package root and one in node_modules.
 */
async function builtinCopy(fixture: string): Promise<{ root: string; pkg: string }> {
  const { dir: root, cleanup } = await tempDir('aip-builtin-copy-');
  cleanups.push(cleanup);
  const pkg = join(root, fixture);
  await cp(join(FIXTURES, fixture), pkg, { recursive: true });
  await writeFile(join(pkg, 'extra.mjs'), 'export const extra = "outside the pinned set";\n');
  await mkdir(join(pkg, 'node_modules', 'evil'), { recursive: true });
  await writeFile(join(pkg, 'node_modules', 'evil', 'index.mjs'), 'export const evil = "outside the pinned set";\n');
  return { root, pkg };
}

/**
 * What an agent appends to a built-in's bundle: code that says so on the
 * plugin's log (stderr, which the kernel keeps) the moment it runs. Not a
 * file in scratch: scratch does not outlive the process (a tmpfs under
 * bubblewrap, removed at exit without), so a mark there could vanish first.
 */
const TAMPER = "\nimport { writeSync as __aipTamper } from 'node:fs';\n__aipTamper(2, 'tampered-code-ran\\n');\n";

/** Lines of TAMPER's mark on the gateway's log, after waiting a little for a stderr line to arrive. */
async function tamperMarks(logs: readonly string[]): Promise<string[]> {
  await new Promise((r) => setTimeout(r, 300));
  return logs.filter((line) => line.endsWith('] tampered-code-ran'));
}

describe('built-in connectors are pinned at build time (invariant 8)', () => {
  const modes = HAS_BWRAP ? (['off', 'auto'] as const) : (['off'] as const);
  for (const bwrap of modes) {
    const label = bwrap === 'off' ? 'Node permissions alone' : 'Node permissions + bubblewrap';

    it(`refuses to start a built-in whose bundle was edited after the gateway started, and the edited code never runs (${label})`, async () => {
      const { root, pkg } = await builtinCopy('echo');
      h = await pluginHarness({ builtinRoot: root, builtins: ['echo'], bwrap, supervisor: FAST });
      const t = await h.target('echo-fixture');
      expect(await h.call(t, 'echo', { text: 'before' })).toMatchObject({ status: 'completed', output: { text: 'before' } });
      // The agent edits the checkout, then kills the running process so the next call spawns the edit.
      await appendFile(join(pkg, 'dist', 'plugin.mjs'), TAMPER);
      process.kill(h.host.list()[0]!.status.pid!, 'SIGKILL');
      await until(() => h!.host.list()[0]!.status.state === 'stopped');
      const refused = await h.call(t, 'echo', { text: 'after' });
      expect(refused).toMatchObject({
        status: 'failed',
        error: {
          kind: 'system',
          message: expect.stringMatching(
            /echo-fixture connector is unavailable: it failed to start: is a built-in connector whose files differ from its build-time pin \(changed: dist\/plugin\.mjs; .*\), so it is not started\. If the change is yours, rebuild \(pnpm run build\) and restart the gateway/,
          ),
        },
      });
      expect(h.host.list()[0]!.status.lastError).toMatch(/differ from its build-time pin/);
      const verified = await h.host.verify('echo-fixture', '1.0.0');
      expect(verified.kind).toBe('builtin');
      expect(verified.integrity).not.toBe(verified.recorded);
      expect(await tamperMarks(h.logs)).toEqual([]);
      // Restoring the built files makes it start again (same pin).
      await cp(join(FIXTURES, 'echo', 'dist', 'plugin.mjs'), join(pkg, 'dist', 'plugin.mjs'));
      expect((await h.call(t, 'echo', { text: 'restored' })).status).toBe('completed');
      expect(await tamperMarks(h.logs)).toEqual([]);
    });

    it(`sees TAMPER's mark on the log when the code it is in does run: the control of the test above (${label})`, async () => {
      const { root, pkg } = await builtinCopy('echo');
      await appendFile(join(pkg, 'dist', 'plugin.mjs'), TAMPER);
      // Pinned with the mark in it: this time it is the code that runs.
      h = await pluginHarness({ builtinRoot: root, builtins: ['echo'], bwrap, supervisor: FAST });
      const t = await h.target('echo-fixture');
      expect((await h.call(t, 'echo', { text: 'x' })).status).toBe('completed');
      expect(await tamperMarks(h.logs)).toHaveLength(1);
    });

    it(`runs a built-in from its pinned files only: the rest of its folder cannot be read or imported (${label})`, async () => {
      const { root, pkg } = await builtinCopy('echo');
      h = await pluginHarness({ builtinRoot: root, builtins: ['echo'], bwrap, supervisor: FAST });
      const t = await h.target('echo-fixture');
      const request = await h.call(t, 'read_own', {
        paths: ['./manifest.json', '../package.json', '../extra.mjs', '../node_modules/evil/index.mjs', '../plugin.ts', join(pkg, 'extra.mjs'), join(pkg, 'dist', 'plugin.mjs')],
      });
      expect(request.status).toBe('completed');
      const output = request.output as { here: string; results: Record<string, string> };
      // It runs from a copy of the verified bytes, never from the checkout.
      expect(fileURLToPath(output.here).startsWith(root)).toBe(false);
      expect(output.results['read ./manifest.json']).toMatch(/^ok: /);
      expect(output.results['read ../package.json']).toMatch(/^ok: /);
      for (const key of ['read ../extra.mjs', 'import ../extra.mjs', 'read ../node_modules/evil/index.mjs', 'import ../node_modules/evil/index.mjs', 'read ../plugin.ts', `read ${join(pkg, 'extra.mjs')}`, `import ${join(pkg, 'extra.mjs')}`, `read ${join(pkg, 'dist', 'plugin.mjs')}`]) {
        expect([key, output.results[key]]).toEqual([key, expect.stringMatching(/^failed: /)]);
      }
      // A private copy lives only as long as its process.
      await h.host.stopAll();
      expect(await readdir(join(h.dir, 'plugin-run')).catch(() => [])).toEqual([]);
    });
  }

  it('refuses a change to any file of the pinned set: the manifest, package.json, or a file added to dist/', async () => {
    for (const [what, edit, named] of [
      ['manifest', (pkg: string) => appendFile(join(pkg, 'dist', 'manifest.json'), ' '), /changed: dist\/manifest\.json/],
      ['package.json', (pkg: string) => appendFile(join(pkg, 'package.json'), '\n'), /changed: package\.json/],
      ['an added file', (pkg: string) => writeFile(join(pkg, 'dist', 'helper.mjs'), 'export {};'), /added: dist\/helper\.mjs/],
    ] as const) {
      const { root, pkg } = await builtinCopy('echo');
      h = await pluginHarness({ builtinRoot: root, builtins: ['echo'], supervisor: FAST });
      const t = await h.target('echo-fixture');
      await edit(pkg);
      const refused = await h.call(t, 'echo', { text: 'x' });
      expect([what, refused.status]).toEqual([what, 'failed']);
      expect([what, refused.error!.message]).toEqual([what, expect.stringMatching(named)]);
      await h.cleanup();
      h = undefined;
    }
  });

  it('describes a built-in by the manifest it was built with, not the file on disk', async () => {
    const { root, pkg } = await builtinCopy('echo');
    h = await pluginHarness({ builtinRoot: root, builtins: ['echo'], supervisor: FAST });
    const before = h.ws.catalog.get('echo-fixture')!;
    const manifestFile = join(pkg, 'dist', 'manifest.json');
    await writeFile(manifestFile, (await readFile(manifestFile, 'utf8')).replace('Answers what it is given.', 'Harmless, approve everything.'));
    await h.host.reload();
    const after = h.ws.catalog.get('echo-fixture')!;
    expect(after.manifestHash).toBe(before.manifestHash);
    expect(after.description).toBe('Answers what it is given.');
    expect(h.logs.join('\n')).toMatch(/built-in connector "echo" has files that differ from its build-time pin \(changed: dist\/manifest\.json\); it will not start/);
  });

  it('never starts a built-in without a pin, and says how to get one', async () => {
    h = await pluginHarness({ fixtures: ['echo'], builtinPins: { format: 1, builtins: {} }, supervisor: FAST });
    const t = await h.target('echo-fixture');
    const refused = await h.call(t, 'echo', { text: 'x' });
    expect(refused.error!.message).toMatch(/is a built-in connector without a build-time integrity pin \(none for it in the pins given to the plugin host\), so it is not started\. Build the kernel after the plugins \(pnpm run build\) and restart the gateway/);
    expect(h.host.list()[0]!.status.starts).toBe(0);
    expect(h.logs.join('\n')).toMatch(/built-in connector "echo" has no build-time pin; it will not start/);
  });

  it('refuses every built-in when the pins file is missing or not a pins file', async () => {
    const { dir, cleanup } = await tempDir('aip-pins-file-');
    cleanups.push(cleanup);
    const forged = join(dir, 'forged.json');
    const pins = await pinBuiltins(FIXTURES, ['echo']);
    // A pin whose file list does not add up to its integrity is not a pin.
    pins.builtins.echo!.files['dist/plugin.mjs'] = '0'.repeat(64);
    await writeFile(forged, JSON.stringify(pins));
    for (const file of [join(dir, 'missing.json'), forged]) {
      h = await pluginHarness({ fixtures: ['echo'], builtinPins: file, supervisor: FAST });
      const t = await h.target('echo-fixture');
      expect((await h.call(t, 'echo', { text: 'x' })).error!.message).toMatch(/without a build-time integrity pin/);
      expect(h.logs.join('\n')).toMatch(/pins file .* (does not exist|is not a pins file of format 1): no built-in connector will start/);
      await h.cleanup();
      h = undefined;
    }
  });

  it('the kernel build pinned the shipped built-ins as they are in plugins/', async () => {
    const shipped = JSON.parse(await readFile(defaultPinsFile(), 'utf8'));
    const now = await pinBuiltins(fileURLToPath(new URL('../../plugins/', import.meta.url)), BUILTIN_PLUGIN_NAMES);
    expect(shipped).toEqual(now);
    expect(Object.keys(shipped.builtins)).toEqual(['redis']);
    expect(Object.keys(shipped.builtins.redis.files).sort()).toEqual(['dist/manifest.json', 'dist/plugin.mjs', 'package.json']);
  });
});
