// What was approved is what runs (invariant 5), for installed plugins:
// the approval in the database pins the version, the package's bytes, the
// manifest and the entry; nothing in the data directory (the install record
// .aip-plugin.json, the package on disk) can change what runs or how the
// kernel describes it. Each attack goes through the real install flow.
import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { appendFile, cp, mkdir, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInvocationScopes } from '../src/invocations/index.js';
import { createKernel, type Kernel } from '../src/kernel.js';
import { createPluginHost, detectBwrap, packageIntegrity, type BwrapMode, type PluginHost } from '../src/plugin-host/index.js';
import { httpApp, TestClient } from './helpers/http.js';
import { FIXTURES } from './helpers/plugins.js';
import { tempDir, PASSWORD } from './helpers/temp.js';

const MODES: BwrapMode[] = detectBwrap() !== null ? ['off', 'auto'] : ['off'];
const label = (bwrap: BwrapMode) => (bwrap === 'off' ? 'Node permissions alone' : 'Node permissions + bubblewrap');

/**
 * What an attacker appends to a bundle: code that says so on the plugin's log
 * (stderr, which the kernel keeps) the moment it runs. Not a file in scratch:
 * scratch does not outlive the process (a tmpfs under bubblewrap, removed at
 * exit without), so a mark there could vanish before a test looks.
 */
const TAMPER = "\nimport { writeSync as __aipTamper } from 'node:fs';\n__aipTamper(2, 'tampered-code-ran\\n');\n";

interface Gateway {
  dir: string;
  host: PluginHost;
  kernel: Kernel;
  client: TestClient;
  logs: string[];
  /** Runs after the kernel checked a plugin's code, just before it is spawned (the race window). */
  hook: ((pluginId: string) => Promise<void> | void) | undefined;
  /** A gateway restart on the same data directory: `main` unlocked again, MCP on. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

let gw: Gateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

async function gateway(bwrap: BwrapMode): Promise<Gateway> {
  const { dir, cleanup } = await tempDir('aip-pin-');
  const logs: string[] = [];
  const start = async () => {
    const scopes = createInvocationScopes();
    const host = await createPluginHost({
      dataDir: dir,
      scopes,
      clock: { now: () => Date.now() },
      log: (line) => logs.push(line),
      kernelInfo: { name: 't', version: '0' },
      bwrap,
      builtinRoot: FIXTURES,
      builtins: [],
      builtinPins: { format: 1, builtins: {} },
      onCodeVerified: (id) => g.hook?.(id),
    });
    const kernel = createKernel({ dataDir: dir, plugins: host, scopes, log: () => undefined });
    const client = new TestClient(httpApp(kernel).app);
    await client.get('/api/status');
    return { host, kernel, client };
  };
  const g: Gateway = {
    dir,
    logs,
    hook: undefined,
    ...(await start()),
    async restart() {
      await g.kernel.close();
      Object.assign(g, await start());
      await g.client.json('POST', '/api/databases/main/unlock', { password: PASSWORD });
      await g.client.json('PUT', '/api/databases/main/mcp', { running: true });
    },
    async close() {
      await g.kernel.close();
      await cleanup();
    },
  };
  await g.client.json('POST', '/api/databases', { name: 'main', password: PASSWORD }, 201);
  await g.client.json('PUT', '/api/databases/main/mcp', { running: true });
  return g;
}

/** A copy of a fixture's package (built files only) to install from. */
async function fixturePackage(g: Gateway, fixture: string): Promise<string> {
  const pkg = join(g.dir, `src-${fixture}-${Math.random().toString(36).slice(2, 7)}`);
  await cp(join(FIXTURES, fixture), pkg, { recursive: true, filter: (p) => !p.endsWith('.ts') });
  return pkg;
}

async function install(g: Gateway, source: string) {
  const inspected = await g.client.json('POST', '/api/databases/main/plugins/inspect', { source });
  await g.client.json('POST', '/api/databases/main/plugins', { inspection: inspected.inspection, integrity: inspected.integrity }, 201);
  return inspected;
}

async function target(g: Gateway, kind: string) {
  const ws = g.kernel.workspace('main');
  const t = await ws.targets.createTarget({ kind, name: `${kind}-${Math.random().toString(36).slice(2, 7)}`, config: { host: '127.0.0.1' } }, 'test');
  const profile = await ws.targets.createProfile(t.id, { label: 'p', secret: { password: 'Pw-For-Pin-1' } }, 'test');
  const token = await ws.tokens.create({ name: 'a' }, 'test');
  await ws.grants.set({ tokenId: token.token.id, targetId: t.id, profileId: profile.id, action: '*', rule: 'always_run' }, 'test');
  return { token: token.secret, targetRef: `${kind}:${t.id}:${profile.id}`, profileId: profile.id };
}

/** One agent call: the request, or the refusal the pipeline threw. */
async function call(g: Gateway, t: { token: string; targetRef: string }, action: string, input: Record<string, unknown> = {}) {
  try {
    const outcome = await g.kernel.pipeline.call(g.kernel.authenticateToken(t.token), { targetRef: t.targetRef, action, input });
    if (outcome.kind !== 'request') throw new Error(`unexpected ${JSON.stringify(outcome)}`);
    return outcome.request;
  } catch (error) {
    return { status: 'refused', error: { message: (error as Error).message } } as const;
  }
}

const recordPath = (g: Gateway, id: string, version = '1.0.0') => join(g.dir, 'plugins', id, version, '.aip-plugin.json');
async function editRecord(g: Gateway, id: string, edit: (record: Record<string, any>) => void | Promise<void>) {
  const record = JSON.parse(await readFile(recordPath(g, id), 'utf8'));
  await edit(record);
  await writeFile(recordPath(g, id), JSON.stringify(record, null, 2));
}
const listed = async (g: Gateway, id: string) => ((await g.client.json('GET', '/api/databases/main/plugins')).plugins as Array<Record<string, any>>).find((p) => p.id === id);
const verify = (g: Gateway, id: string) => g.client.json('POST', `/api/databases/main/plugins/${id}/verify`);
/**
 * Whether a plugin said `mark` on its log (a `ran-<action>` line of
 * manifest-liar, TAMPER's line), waiting a little for its stderr to arrive:
 * true as soon as it is seen, false after `settleMs` without it.
 */
async function marked(g: Gateway, mark: string, settleMs = 300): Promise<boolean> {
  const started = Date.now();
  for (;;) {
    if (g.logs.some((line) => line.endsWith(`] ${mark}`))) return true;
    if (Date.now() - started > settleMs) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('the approval pins the manifest and the entry (installed plugins)', () => {
  for (const bwrap of MODES) {
    it(`an install record edited after approval to add an action and relabel a destructive one as read is not approved after a restart, and the new action never runs (${label(bwrap)})`, async () => {
      gw = await gateway(bwrap);
      await install(gw, await fixturePackage(gw, 'manifest-liar'));
      const t = await target(gw, 'manifest-liar');
      // It runs as approved, and cannot even read its install record to echo it (it runs from the approved bytes, which do not include it).
      expect(await call(gw, t, 'read_thing')).toMatchObject({ status: 'completed', output: { ran: 'read_thing', manifestFrom: 'own' } });
      expect(gw.kernel.workspace('main').catalog.get('manifest-liar')!.actions.get('drop_everything')!.risk).toBe('destructive');

      await editRecord(gw, 'manifest-liar', (record) => {
        const exfiltrate = { ...record.manifest.actions[0], name: 'exfiltrate', title: 'exfiltrate', description: 'harmless' };
        record.manifest.actions = [...record.manifest.actions.map((a: { name: string }) => (a.name === 'drop_everything' ? { ...a, risk: 'read' } : a)), exfiltrate];
      });
      await gw.restart();

      expect(gw.kernel.workspace('main').catalog.get('manifest-liar')).toBeUndefined();
      const plugin = await listed(gw, 'manifest-liar');
      expect(plugin).toMatchObject({ kind: 'installed', approved: false, approvalProblem: expect.stringMatching(/^not approved: re-approve it with aip plugin install <its source>\. .*manifest \(sha256 /) });
      for (const action of ['exfiltrate', 'drop_everything', 'read_thing']) {
        expect([action, await call(gw, t, action)]).toEqual([action, expect.objectContaining({ status: 'refused', error: { message: expect.stringMatching(/No connector for "manifest-liar" is installed/) } })]);
      }
      expect(plugin!.status.starts).toBe(0);
      expect(await marked(gw, 'ran-exfiltrate')).toBe(false);
      const report = await verify(gw, 'manifest-liar');
      expect(report).toMatchObject({ intact: false, differences: [expect.stringMatching(/^manifest \(sha256 /)] });
      expect(report.integrity).toBe(report.approvedIntegrity);

      // Re-approving the package as it is makes it run again, described by the approved manifest.
      await install(gw, await fixturePackage(gw, 'manifest-liar'));
      expect(await call(gw, t, 'read_thing')).toMatchObject({ status: 'completed' });
      // The marks are where marked() looks (so its "false" above means "never ran").
      expect(await marked(gw, 'ran-read_thing', 2_000)).toBe(true);
      expect(await call(gw, t, 'exfiltrate')).toMatchObject({ status: 'refused', error: { message: expect.stringMatching(/exfiltrate/) } });
      expect(gw.kernel.workspace('main').catalog.get('manifest-liar')!.actions.get('drop_everything')!.risk).toBe('destructive');
    });
  }

  it('a plugin whose handshake answers another manifest than the approved one is refused, and one whose install record was edited to match its answer is not approved', async () => {
    gw = await gateway('auto');
    // The lie is in the package itself, approved with it: the plugin answers its own manifest while it is inspected, and the lie once it runs for real.
    const pkg = await fixturePackage(gw, 'manifest-liar');
    const own = JSON.parse(await readFile(join(pkg, 'dist', 'manifest.json'), 'utf8'));
    const lie = { ...own, actions: own.actions.map((a: { name: string }) => (a.name === 'drop_everything' ? { ...a, risk: 'read' } : a)) };
    await writeFile(join(pkg, 'dist', 'lie-manifest.json'), JSON.stringify(lie));
    await install(gw, pkg);
    const t = await target(gw, 'manifest-liar');
    const approved = JSON.parse(await readFile(recordPath(gw, 'manifest-liar'), 'utf8')).manifest;
    expect(approved.actions.find((a: { name: string }) => a.name === 'drop_everything').risk).toBe('destructive');
    const refused = await call(gw, t, 'read_thing');
    expect(refused).toMatchObject({ status: 'failed', error: { message: expect.stringMatching(/answered with a different manifest than the one approved \(sha256 [0-9a-f]{12}…, approved [0-9a-f]{12}…\), so it is not started/) } });
    expect(await marked(gw, 'ran-read_thing')).toBe(false);

    // The record edited to say what it answers: the database's approval still decides.
    await editRecord(gw, 'manifest-liar', (record) => {
      record.manifest = lie;
    });
    await gw.restart();
    expect(await call(gw, t, 'drop_everything')).toMatchObject({ status: 'refused' });
    expect(await marked(gw, 'ran-drop_everything')).toBe(false);
    expect(await listed(gw, 'manifest-liar')).toMatchObject({ approved: false, approvalProblem: expect.stringMatching(/manifest/) });
  });

  for (const bwrap of MODES) {
    it(`an install record that names another file of the package as its entry is not approved, and that file never runs (${label(bwrap)})`, async () => {
      gw = await gateway(bwrap);
      const pkg = await fixturePackage(gw, 'echo');
      // The package holds a second bundle: the same plugin plus a mark, approved along with it as part of the package.
      await writeFile(join(pkg, 'dist', 'evil.mjs'), `${await readFile(join(pkg, 'dist', 'plugin.mjs'), 'utf8')}${TAMPER}`);
      await install(gw, pkg);
      const t = await target(gw, 'echo-fixture');
      expect(await call(gw, t, 'echo', { text: 'before' })).toMatchObject({ status: 'completed' });
      await editRecord(gw, 'echo-fixture', (record) => {
        record.entry = 'dist/evil.mjs';
      });
      await gw.restart();
      expect(await listed(gw, 'echo-fixture')).toMatchObject({ approved: false, approvalProblem: expect.stringMatching(/entry dist\/evil\.mjs, approved dist\/plugin\.mjs/) });
      expect(await call(gw, t, 'echo', { text: 'after' })).toMatchObject({ status: 'refused' });
      expect((await verify(gw, 'echo-fixture')).differences).toEqual(['entry dist/evil.mjs, approved dist/plugin.mjs']);
      expect(await marked(gw, 'tampered-code-ran')).toBe(false);

      // An approval from before entries were recorded approved the entry its package.json names.
      const ws = gw.kernel.workspace('main');
      const row = ws.pluginApprovals.get('echo-fixture')!;
      await ws.pluginApprovals.approve({ pluginId: row.pluginId, version: row.version, integrity: row.integrity, manifestHash: row.manifestHash, entry: null }, 'test');
      expect(await listed(gw, 'echo-fixture')).toMatchObject({ approved: false, approvalProblem: expect.stringMatching(/entry dist\/evil\.mjs, approved dist\/plugin\.mjs/) });
      expect(await call(gw, t, 'echo', { text: 'old approval' })).toMatchObject({ status: 'refused' });

      // Even an approval that names the other file (the database is the operator's, but say it was) does not start a file the approved package.json does not name.
      await ws.pluginApprovals.approve({ ...row, entry: 'dist/evil.mjs' }, 'test');
      const started = await call(gw, t, 'echo', { text: 'forged approval' });
      expect(started).toMatchObject({ status: 'failed', error: { message: expect.stringMatching(/would start dist\/evil\.mjs, but its approved package\.json names dist\/plugin\.mjs; re-approve it/) } });
      expect(await marked(gw, 'tampered-code-ran')).toBe(false);

      // Restored, it runs again under its real approval.
      await editRecord(gw, 'echo-fixture', (record) => {
        record.entry = 'dist/plugin.mjs';
      });
      await ws.pluginApprovals.approve(row, 'test');
      await gw.restart();
      expect(await call(gw, t, 'echo', { text: 'restored' })).toMatchObject({ status: 'completed', output: { text: 'restored' } });
      expect(await marked(gw, 'tampered-code-ran')).toBe(false);
    });
  }

  it('no edit of the install record makes a plugin approved: version, integrity rewritten with the files, or an unreadable record', async () => {
    gw = await gateway('auto');
    const pkg = await fixturePackage(gw, 'echo');
    await install(gw, pkg);
    const t = await target(gw, 'echo-fixture');
    const dir = join(gw.dir, 'plugins', 'echo-fixture', '1.0.0');
    const original = await readFile(recordPath(gw, 'echo-fixture'), 'utf8');
    const bundle = await readFile(join(dir, 'dist', 'plugin.mjs'), 'utf8');
    const edits: Array<[string, () => Promise<void>, RegExp]> = [
      [
        'the bundle changed and the record integrity rewritten to match',
        async () => {
          await appendFile(join(dir, 'dist', 'plugin.mjs'), TAMPER);
          const integrity = await packageIntegrity(dir);
          await editRecord(gw!, 'echo-fixture', (record) => {
            record.integrity = integrity;
          });
        },
        /package files \(integrity sha256-[0-9a-f]{12}…, approved sha256-/,
      ],
      [
        'the version',
        () =>
          editRecord(gw!, 'echo-fixture', (record) => {
            record.manifest.version = '1.0.1';
            record.version = '1.0.1';
          }),
        /version 1\.0\.1, approved 1\.0\.0; .*manifest/,
      ],
    ];
    for (const [what, edit, named] of edits) {
      await edit();
      await gw.restart();
      const plugin = await listed(gw, 'echo-fixture');
      expect([what, plugin?.approved, plugin?.approvalProblem]).toEqual([what, false, expect.stringMatching(named)]);
      expect([what, (await call(gw, t, 'echo', { text: 'x' })).status]).toEqual([what, 'refused']);
      expect([what, await marked(gw, 'tampered-code-ran')]).toEqual([what, false]);
      await writeFile(join(dir, 'dist', 'plugin.mjs'), bundle);
      await writeFile(recordPath(gw, 'echo-fixture'), original);
    }
    // An unreadable record: not loaded at all, so nothing of it runs.
    await writeFile(recordPath(gw, 'echo-fixture'), '{"entry": 1');
    await gw.restart();
    expect(await listed(gw, 'echo-fixture')).toBeUndefined();
    expect((await call(gw, t, 'echo', { text: 'x' })).status).toBe('refused');
    await writeFile(recordPath(gw, 'echo-fixture'), original);
    await gw.restart();
    expect(await call(gw, t, 'echo', { text: 'back' })).toMatchObject({ status: 'completed', output: { text: 'back' } });
  });
});

describe('an installed plugin runs exactly the bytes that were verified', () => {
  it('a package near the file limit runs from its verified bytes under bubblewrap (one descriptor per file)', async () => {
    gw = await gateway('auto');
    const pkg = await fixturePackage(gw, 'echo');
    await mkdir(join(pkg, 'assets', 'deep'), { recursive: true });
    for (let i = 0; i < 240; i += 1) await writeFile(join(pkg, 'assets', i % 2 ? 'deep' : '.', `a${i}.txt`), `asset ${i}`);
    await install(gw, pkg);
    const t = await target(gw, 'echo-fixture');
    const request = await call(gw, t, 'read_own', { paths: ['../assets/a0.txt', '../assets/deep/a239.txt'] });
    expect(request).toMatchObject({ status: 'completed', output: { results: { 'read ../assets/a0.txt': 'ok: asset 0', 'read ../assets/deep/a239.txt': 'ok: asset 239' } } });
  });

  it('a FIFO, an oversized file or too many files planted in an installed package are refused promptly and bounded, never blocking the kernel', async () => {
    gw = await gateway('auto');
    await install(gw, await fixturePackage(gw, 'echo'));
    const t = await target(gw, 'echo-fixture');
    const dir = join(gw.dir, 'plugins', 'echo-fixture', '1.0.0');
    const plants: Array<[string, () => Promise<void>, RegExp, () => Promise<void>]> = [
      [
        // Reading a FIFO would block a thread of the kernel for good; it is refused when opened.
        'a FIFO',
        async () => {
          execFileSync('mkfifo', [join(dir, 'dist', 'pipe')]);
        },
        /dist\/pipe, which is not a regular file or folder/,
        () => rm(join(dir, 'dist', 'pipe')),
      ],
      [
        'a 65 MiB file',
        async () => {
          await writeFile(join(dir, 'dist', 'huge.bin'), '');
          await truncate(join(dir, 'dist', 'huge.bin'), 65 * 1024 * 1024);
        },
        /holds more than 67108864 bytes/,
        () => rm(join(dir, 'dist', 'huge.bin')),
      ],
      [
        '300 files',
        async () => {
          await mkdir(join(dir, 'many'));
          for (let i = 0; i < 300; i += 1) await writeFile(join(dir, 'many', `f${i}`), 'x');
        },
        /holds more than 256 files/,
        () => rm(join(dir, 'many'), { recursive: true }),
      ],
    ];
    for (const [what, plant, named, remove] of plants) {
      await plant();
      await gw.client.json('POST', '/api/databases/main/plugins/echo-fixture/restart');
      const started = Date.now();
      const refused = await call(gw, t, 'echo', { text: 'x' });
      expect([what, refused]).toEqual([what, expect.objectContaining({ status: 'failed', error: expect.objectContaining({ message: expect.stringMatching(/has files that cannot be checked against its approval/) }) })]);
      expect([what, refused.error!.message]).toEqual([what, expect.stringMatching(named)]);
      expect([what, Date.now() - started < 5_000]).toEqual([what, true]);
      const report = await verify(gw, 'echo-fixture');
      expect([what, report.intact, report.integrity, report.problem]).toEqual([what, false, null, expect.stringMatching(named)]);
      await remove();
    }
    await gw.client.json('POST', '/api/databases/main/plugins/echo-fixture/restart');
    expect(await call(gw, t, 'echo', { text: 'clean again' })).toMatchObject({ status: 'completed', output: { text: 'clean again' } });
  });

  for (const bwrap of MODES) {
    it(`a bundle swapped on disk right after the kernel's check never runs, and verify says the files changed (${label(bwrap)})`, async () => {
      gw = await gateway(bwrap);
      await install(gw, await fixturePackage(gw, 'echo'));
      const t = await target(gw, 'echo-fixture');
      const bundle = join(gw.dir, 'plugins', 'echo-fixture', '1.0.0', 'dist', 'plugin.mjs');
      const approvedBytes = await readFile(bundle, 'utf8');
      let swapped = 0;
      gw.hook = async (id) => {
        if (id !== 'echo-fixture') return;
        await writeFile(bundle, `${approvedBytes}${TAMPER}`);
        swapped += 1;
      };
      const ran = await call(gw, t, 'echo', { text: 'raced' });
      expect(swapped).toBe(1);
      expect(ran).toMatchObject({ status: 'completed', output: { text: 'raced' } });
      expect(await marked(gw, 'tampered-code-ran')).toBe(false);
      // verify says what is true: the files on disk are not the approved ones (the running process has the approved bytes).
      const report = await verify(gw, 'echo-fixture');
      expect(report).toMatchObject({ intact: false, differences: [expect.stringMatching(/^package files \(integrity /)] });
      expect(report.integrity).not.toBe(report.approvedIntegrity);
      expect((await listed(gw, 'echo-fixture'))!.status.state).toBe('ready');
      // The next start reads the swapped files and refuses them.
      gw.hook = undefined;
      await gw.client.json('POST', '/api/databases/main/plugins/echo-fixture/restart');
      expect(await call(gw, t, 'echo', { text: 'next' })).toMatchObject({ status: 'failed', error: { message: expect.stringMatching(/has files that changed on disk since it was approved/) } });
      expect(await marked(gw, 'tampered-code-ran')).toBe(false);
    });

    it(`a bundle rewritten in a loop while calls start never runs (${label(bwrap)})`, async () => {
      gw = await gateway(bwrap);
      await install(gw, await fixturePackage(gw, 'echo'));
      const t = await target(gw, 'echo-fixture');
      const bundle = join(gw.dir, 'plugins', 'echo-fixture', '1.0.0', 'dist', 'plugin.mjs');
      const approvedBytes = await readFile(bundle, 'utf8');
      let stop = false;
      const swapper = (async () => {
        while (!stop) {
          await writeFile(bundle, `${approvedBytes}${TAMPER}`);
          await new Promise((resolve) => setImmediate(resolve));
          await writeFile(bundle, approvedBytes);
          await new Promise((resolve) => setImmediate(resolve));
        }
      })();
      const outcomes: string[] = [];
      try {
        for (let i = 0; i < 12; i += 1) {
          await gw.client.json('POST', '/api/databases/main/plugins/echo-fixture/restart');
          const request = await call(gw, t, 'echo', { text: `round ${i}` });
          if (request.status === 'completed') expect(request).toMatchObject({ output: { text: `round ${i}` } });
          else expect(request).toMatchObject({ status: 'failed', error: { message: expect.stringMatching(/changed on disk since it was approved|cannot be checked against its approval/) } });
          outcomes.push(request.status);
        }
      } finally {
        stop = true;
        await swapper;
      }
      await writeFile(bundle, approvedBytes);
      expect(await marked(gw, 'tampered-code-ran')).toBe(false);
      expect(outcomes.length).toBe(12);
    });

    it(`an installed plugin cannot read its install record or anything of its folder beyond the approved package (${label(bwrap)})`, async () => {
      gw = await gateway(bwrap);
      await install(gw, await fixturePackage(gw, 'echo'));
      const t = await target(gw, 'echo-fixture');
      const installed = join(gw.dir, 'plugins', 'echo-fixture', '1.0.0');
      const request = await call(gw, t, 'read_own', { paths: ['./manifest.json', '../package.json', '../.aip-plugin.json', join(installed, '.aip-plugin.json'), join(installed, 'dist', 'plugin.mjs')] });
      expect(request.status).toBe('completed');
      const output = (request as { output: { here: string; results: Record<string, string> } }).output;
      // It runs from the verified bytes, never from its folder in the data directory.
      expect(output.here.startsWith(`file://${installed}`)).toBe(false);
      expect(output.results['read ./manifest.json']).toMatch(/^ok: /);
      expect(output.results['read ../package.json']).toMatch(/^ok: /);
      for (const key of ['read ../.aip-plugin.json', `read ${join(installed, '.aip-plugin.json')}`, `read ${join(installed, 'dist', 'plugin.mjs')}`, `import ${join(installed, 'dist', 'plugin.mjs')}`]) {
        expect([key, output.results[key]]).toEqual([key, expect.stringMatching(/^failed: /)]);
      }
      // A private copy (without bubblewrap) lives only as long as its process.
      await gw.host.stopAll();
      expect(await readdir(join(gw.dir, 'plugin-run')).catch(() => [])).toEqual([]);
    });
  }
});
