/**
 * Settings > Plugins and browser notifications in real Chromium against a
 * real gateway process: the sandbox level and what it means, installing the
 * `echo` fixture plugin through the consent screen (bound to the inspection
 * and its integrity), verify, log, remove with confirmation, an invalid
 * package's error, and a notification for a new approval while the tab is
 * hidden that carries no agent text.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { appendFile, cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { agent, callTool, PASSWORD, startGateway, type RunningGateway } from './helpers/gateway.js';
import { axeSerious, expectClean, launch, screenshots, watchedPage, type WatchedPage } from './helpers/browser.js';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ECHO = join(ROOT, 'kernel/test/fixtures/plugins/echo/plugin.ts');

let gateway: RunningGateway;
let browser: Browser;
let context: BrowserContext;
let watched: WatchedPage;
let page: Page;
let work: string;
let echoPackage: string;
let mcp: Client | undefined;

/**
 * The echo fixture as an installable package, built the way the kernel's test
 * setup builds it (esbuild bundle, package.json, the printed manifest), into
 * a folder of its own: no .ts files, nothing of the source tree.
 */
async function buildEcho(into: string): Promise<string> {
  // esbuild is the kernel's dependency (its test setup bundles the fixtures with it), not the UI's.
  const { buildSync } = createRequire(join(ROOT, 'kernel/package.json'))('esbuild') as { buildSync(options: Record<string, unknown>): unknown };
  const pkg = join(into, 'echo');
  await mkdir(join(pkg, 'dist'), { recursive: true });
  buildSync({
    entryPoints: [ECHO],
    outfile: join(pkg, 'dist/plugin.mjs'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    banner: { js: "import { createRequire as __r } from 'node:module'; const require = __r(import.meta.url);" },
    logLevel: 'error',
  });
  await writeFile(join(pkg, 'package.json'), JSON.stringify({ name: 'fixture-echo', version: '1.0.0', type: 'module', aipermission: { entry: 'dist/plugin.mjs', manifest: 'dist/manifest.json' } }, null, 2));
  await writeFile(join(pkg, 'dist/manifest.json'), execFileSync(process.execPath, [join(pkg, 'dist/plugin.mjs'), '--print-manifest'], { encoding: 'utf8' }));
  return pkg;
}

/** A fresh browser context for `origin`: notifications granted, every Notification recorded, the tab hideable on demand. */
async function openContext(origin: string) {
  context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.grantPermissions(['notifications'], { origin: origin });
  // Every Notification the page creates is recorded (title, body); the tab can be made hidden on demand.
  await context.addInitScript(() => {
    const w = window as unknown as { __notifications: { title: string; body: string }[]; __hide(): void; Notification: typeof Notification };
    w.__notifications = [];
    const Real = w.Notification;
    class Spy extends Real {
      constructor(title: string, options?: NotificationOptions) {
        w.__notifications.push({ title, body: options?.body ?? '' });
        super(title, options);
      }
    }
    Object.defineProperty(Spy, 'permission', { get: () => Real.permission });
    w.Notification = Spy as unknown as typeof Notification;
    w.__hide = () => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
      document.dispatchEvent(new Event('visibilitychange'));
    };
  });
  watched = await watchedPage(context);
  page = watched.page;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'aip-ui-plugins-'));
  echoPackage = await buildEcho(work);
  gateway = await startGateway();
  browser = await launch();
  await openContext(gateway.url);
});

afterAll(async () => {
  await mcp?.close().catch(() => undefined);
  await browser?.close();
  await gateway?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function createDatabase(url: string) {
  await page.goto(url);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByLabel('Repeat the password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create and unlock' }).click();
  await page.getByRole('heading', { name: /Dashboard/ }).waitFor();
  await page.locator('.live.on').waitFor();
}

async function checkPage(name: string) {
  await screenshots(page, name);
  const violations = await axeSerious(page);
  expect(violations.map((v) => `${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`), name).toEqual([]);
  expectClean(watched);
}

/** A REST call from inside the page (its session cookie and CSRF token). */
async function rest<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  return page.evaluate(
    async ({ method, path, body }) => {
      const csrf = decodeURIComponent(document.cookie.match(/aip_csrf=([^;]+)/)![1]!);
      const response = await fetch(path, { method, headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
      return response.json();
    },
    { method, path, body },
  );
}

async function openPlugins() {
  await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Settings', exact: true }).click();
  await page.getByRole('navigation', { name: 'Settings sections' }).getByRole('link', { name: 'Plugins' }).click();
  await page.getByRole('heading', { name: 'Connectors (plugins)' }).waitFor();
}

const card = (id: string) => page.locator(`[data-testid=plugin-card][data-plugin="${id}"]`);

describe('Settings > Plugins, end to end', () => {
  it('lists the built-in connector with its version, pin state and sandbox level', async () => {
    await createDatabase(gateway.url);
    await openPlugins();
    const level = page.getByTestId('sandbox-level');
    const answer = await rest('GET', '/api/databases/main/plugins');
    const expected = answer.sandbox.bwrap ? 'bubblewrap + Node permissions' : 'Node permissions only (no bubblewrap)';
    expect(await level.innerText()).toContain(expected);
    expect(await level.innerText()).toContain(answer.sandbox.network);
    // The page says plainly what a weak level means, exactly when the kernel reports one.
    expect(await page.getByTestId('sandbox-warnings').count()).toBe(answer.sandbox.canSignalGateway || !answer.sandbox.networkIsolated ? 1 : 0);
    const redis = card('redis');
    expect(await redis.innerText()).toMatch(/Redis[\s\S]*redis 1\.0\.0/);
    expect(await redis.getByTestId('pin-state').innerText()).toContain('pinned at build time');
    expect(await redis.getByTestId('plugin-sandbox').innerText()).toBe(expected);
    expect(await redis.innerText()).toContain(answer.plugins[0].integrity);
    expect(await redis.getByRole('button', { name: 'Remove' }).count()).toBe(0);
    await checkPage('plugins');
  });

  it('turns requireBwrapForThirdParty on and off from the plugins page', async () => {
    const toggle = page.getByTestId('require-bwrap');
    expect(await toggle.isChecked()).toBe(false);
    await toggle.check();
    await expect.poll(async () => (await rest('GET', '/api/databases/main/settings')).settings.requireBwrapForThirdParty).toBe(true);
    await toggle.uncheck();
    await expect.poll(async () => (await rest('GET', '/api/databases/main/settings')).settings.requireBwrapForThirdParty).toBe(false);
  });

  it('shows the kernel\'s error for a package that is not a plugin, and offers no Install', async () => {
    const notAPlugin = join(work, 'not-a-plugin');
    await mkdir(notAPlugin, { recursive: true });
    await writeFile(join(notAPlugin, 'package.json'), JSON.stringify({ name: 'not-a-plugin\u202e', version: '1.0.0' }));
    await page.getByLabel('Package (folder, .tgz or npm package)').fill(notAPlugin);
    await page.getByRole('button', { name: 'Inspect' }).click();
    const error = page.getByTestId('inspect-error');
    await error.waitFor();
    expect(await error.innerText()).toMatch(/The package was not installed\. The gateway said \(invalid_plugin\)/);
    expect(await page.getByTestId('consent').count()).toBe(0);
    await page.getByLabel('Package (folder, .tgz or npm package)').fill(join(work, 'does-not-exist'));
    await page.getByRole('button', { name: 'Inspect' }).click();
    await expect.poll(() => error.innerText()).toContain('does-not-exist');
    expectClean(watched);
  });

  it('installs the echo plugin through the consent screen: what it asks for, then Install bound to that inspection', async () => {
    await page.getByLabel('Package (folder, .tgz or npm package)').fill(echoPackage);
    await page.getByRole('button', { name: 'Inspect' }).click();
    const consent = page.getByTestId('consent');
    await consent.waitFor();
    expect(await page.getByTestId('inspect-error').count()).toBe(0);
    const text = await consent.innerText();
    expect(text).toMatch(/Name\s+Echo fixture/);
    expect(text).toMatch(/Id\s+echo-fixture/);
    expect(text).toMatch(/Version\s+1\.0\.0/);
    expect(text).toMatch(/Publisher\s+not stated/);
    const integrity = await consent.getByTestId('consent-integrity').innerText();
    expect(integrity).toMatch(/^sha256-[0-9a-f]{64}$/);
    // Every action of the echo fixture is a read; grouped by risk.
    expect(await consent.getByTestId('consent-read').locator('li').count()).toBe(10);
    expect(await consent.getByTestId('consent-write').count()).toBe(0);
    expect(await consent.getByTestId('consent-credentials').innerText()).toBe('password: username, password (secret)');
    const reach = await consent.getByTestId('consent-reach').innerText();
    expect(reach).toMatch(/Network\s+(none \(endpoint only\)|host network)/);
    expect(reach).toMatch(/Scratch\s+.*64 MiB, not kept after the process/);
    expect(reach).toMatch(/Memory\s+1\.5 GiB/);
    expect(reach).toMatch(/Processes\s+none: it cannot start child processes/);
    expect(reach).toMatch(/Inspected\s+.*killed after 5 s at most/);
    await checkPage('plugin-consent');
    await consent.getByTestId('consent-install').click();
    await page.getByText('Installed echo-fixture 1.0.0 and approved it in this database.').waitFor();
    expect(await page.getByTestId('consent').count()).toBe(0);
    const echo = card('echo-fixture');
    await echo.waitFor();
    expect(await echo.getByTestId('pin-state').innerText()).toMatch(/^✓ approved/);
    expect(await echo.innerText()).toContain(integrity);
    const answer = await rest('GET', '/api/databases/main/plugins');
    const installed = answer.plugins.find((p: { id: string }) => p.id === 'echo-fixture');
    expect(installed).toMatchObject({ kind: 'installed', approved: true, integrity });
    expect(await echo.getByTestId('plugin-sandbox').innerText()).toBe(answer.sandbox.bwrap ? 'bubblewrap + Node permissions' : 'Node permissions only (no bubblewrap)');
  });

  it('verifies the installed plugin against its approval, and shows its log', async () => {
    const echo = card('echo-fixture');
    await echo.getByRole('button', { name: 'Verify' }).click();
    const result = echo.getByTestId('plugin-result');
    await expect.poll(() => result.innerText()).toContain('Intact: its files, manifest and entry are exactly what this database approved.');
    await echo.getByRole('button', { name: 'View log' }).click();
    await expect.poll(() => result.innerText()).toContain('Log (last 200 lines, redacted)');
    await checkPage('plugins-installed');
  });

  it('says "Not approved: re-approve" in a database that did not approve it, and "Not intact" once its files change on disk', async () => {
    await rest('POST', '/api/databases', { name: 'second', password: PASSWORD });
    await page.reload();
    await page.getByLabel('Database').selectOption('second');
    await openPlugins();
    const pin = card('echo-fixture').getByTestId('pin-state');
    await expect.poll(() => pin.innerText()).toMatch(/^Not approved: re-approve\. not approved in this database/);
    await page.getByLabel('Database').selectOption('main');
    await openPlugins();
    await expect.poll(() => card('echo-fixture').getByTestId('pin-state').innerText()).toMatch(/^✓ approved/);
    // Someone changes the installed bundle on disk: verify says what differs.
    const installedDir = join(gateway.dataDir, 'plugins', 'echo-fixture');
    const files = await readdir(installedDir, { recursive: true });
    const bundle = files.find((f) => f.endsWith('plugin.mjs'));
    expect(bundle, `files under ${installedDir}: ${files.join(', ')}`).toBeDefined();
    const original = await readFile(join(installedDir, bundle!));
    await appendFile(join(installedDir, bundle!), '\n// changed after approval\n');
    const echo = card('echo-fixture');
    await echo.getByRole('button', { name: 'Verify' }).click();
    const result = echo.getByTestId('plugin-result');
    await expect.poll(() => result.innerText()).toMatch(/Not intact\.[\s\S]*differs: /);
    await writeFile(join(installedDir, bundle!), original);
    await echo.getByRole('button', { name: 'Verify' }).click();
    await expect.poll(() => result.innerText()).toContain('Intact:');
    expectClean(watched);
  });

  it('shows a package\'s own text as text: hidden characters escaped, markup inert', async () => {
    const hostile = join(work, 'hostile-echo');
    await cp(echoPackage, hostile, { recursive: true });
    const bundle = join(hostile, 'dist/plugin.mjs');
    const source = await readFile(bundle, 'utf8');
    expect(source).toContain('Answers what it is given.');
    await writeFile(bundle, source.replace('Answers what it is given.', 'Safe\\u202e<img src=x data-hostile=1> plugin'));
    await writeFile(join(hostile, 'dist/manifest.json'), execFileSync(process.execPath, [bundle, '--print-manifest'], { encoding: 'utf8' }));
    await page.getByLabel('Package (folder, .tgz or npm package)').fill(hostile);
    await page.getByRole('button', { name: 'Inspect' }).click();
    const consent = page.getByTestId('consent');
    await consent.waitFor();
    const description = consent.getByTestId('consent-description');
    expect(await description.innerText()).toBe('Safe\\u{202e}<img src=x data-hostile=1> plugin');
    expect(await description.locator('mark.hidden-char').allInnerTexts()).toEqual(['\\u{202e}']);
    expect(await page.locator('[data-hostile]').count()).toBe(0);
    await page.getByRole('button', { name: 'Cancel' }).click();
    expectClean(watched);
  });

  it('notifies of a new approval while the tab is hidden, with no agent text in the notification', async () => {
    const target = (await rest('POST', '/api/databases/main/targets', { kind: 'echo-fixture', name: 'echo-target-7f3', config: { host: '127.0.0.1' } })).target;
    const profile = (await rest('POST', `/api/databases/main/targets/${target.id}/profiles`, { label: 'echo-profile', credentialKind: 'password', config: { username: 'app' }, secret: { password: 'pw-0123456789' } })).profile;
    const token = await rest('POST', '/api/databases/main/tokens', { name: 'agent-name-q9' });
    await rest('PUT', '/api/databases/main/grants', { tokenId: token.token.id, targetId: target.id, profileId: profile.id, action: 'echo', rule: 'approval_required' });
    await rest('PUT', '/api/databases/main/mcp', { running: true });
    expect(await page.evaluate(() => Notification.permission)).toBe('granted');
    await page.evaluate(() => (window as unknown as { __hide(): void }).__hide());
    expect(await page.evaluate(() => document.visibilityState)).toBe('hidden');
    mcp = await agent(gateway.url, token.secret);
    const asked = await callTool(mcp, 'call_connector_action', { target_ref: `echo-fixture:${target.id}:${profile.id}`, action_name: 'echo', input: { text: 'AGENT-INPUT-zz1' }, reason: 'AGENT-REASON-zz2 please' });
    expect(asked.status).toBe('approval_pending');
    await expect.poll(() => page.evaluate(() => (window as unknown as { __notifications: unknown[] }).__notifications.length), { timeout: 10_000 }).toBe(1);
    const [shown] = await page.evaluate(() => (window as unknown as { __notifications: { title: string; body: string }[] }).__notifications);
    expect(shown).toEqual({ title: 'AIPermission: an agent asks for approval', body: 'Open the gateway page to review it.' });
    const all = `${shown!.title} ${shown!.body}`;
    for (const agentText of ['AGENT-INPUT-zz1', 'AGENT-REASON-zz2', 'agent-name-q9', 'echo-target-7f3', 'echo-profile', 'echo']) expect(all).not.toContain(agentText);
    // The dialog opened for it as usual; decline so nothing is left pending.
    const dialog = page.locator('dialog.approval[open]');
    await dialog.waitFor({ state: 'visible' });
    await dialog.getByRole('button', { name: 'Decline' }).click();
    await expect.poll(() => dialog.getByTestId('approval-outcome').innerText()).toContain('declined');
    await dialog.getByRole('button', { name: 'Done' }).click();
    expectClean(watched);
  });

  it('removes the installed plugin only after a confirmation', async () => {
    // The target made above uses it; remove it first, as an operator would.
    const { targets } = await rest('GET', '/api/databases/main/targets');
    for (const t of targets) await rest('DELETE', `/api/databases/main/targets/${t.id}`);
    await page.reload();
    await page.getByRole('heading', { name: 'Connectors (plugins)' }).waitFor();
    const echo = card('echo-fixture');
    await echo.getByRole('button', { name: 'Remove' }).click();
    const confirm = echo.getByRole('alertdialog');
    expect(await confirm.innerText()).toContain('Remove echo-fixture?');
    await confirm.getByRole('button', { name: 'Keep it' }).click();
    expect(await echo.getByRole('alertdialog').count()).toBe(0);
    expect((await rest('GET', '/api/databases/main/plugins')).plugins.map((p: { id: string }) => p.id)).toContain('echo-fixture');
    await echo.getByRole('button', { name: 'Remove' }).click();
    await echo.getByRole('button', { name: 'Remove echo-fixture' }).click();
    await page.getByText('Removed echo-fixture.').waitFor();
    expect(await card('echo-fixture').count()).toBe(0);
    expect((await rest('GET', '/api/databases/main/plugins')).plugins.map((p: { id: string }) => p.id)).toEqual(['redis']);
    expectClean(watched);
  });
});

describe('Settings > Plugins without bubblewrap (the weak sandbox level)', () => {
  let weak: RunningGateway;
  beforeAll(async () => {
    await context.close();
    weak = await startGateway({ bwrap: 'off' });
    await openContext(weak.url);
  });
  afterAll(async () => {
    await weak?.stop();
  });

  it('says in plain words what the level allows, and offers requireBwrapForThirdParty', async () => {
    await createDatabase(weak.url);
    await openPlugins();
    const level = page.getByTestId('sandbox-level');
    expect(await level.innerText()).toContain('Node permissions only (no bubblewrap)');
    expect(await level.innerText()).toMatch(/Can signal the gateway\s+yes/);
    const warnings = await page.getByTestId('sandbox-warnings').innerText();
    expect(warnings).toContain('No bubblewrap');
    expect(warnings).toContain('It can see and signal your processes, the gateway included');
    expect(warnings).toContain('It has the host network: it can reach whatever this machine can reach');
    expect(await card('redis').innerText()).toContain('⚠ No bubblewrap');
    await checkPage('plugins-no-bwrap');
  });

  it('warns on the consent screen, turns requireBwrapForThirdParty on from it, and a new inspection is then refused with the kernel\'s reason', async () => {
    await page.getByLabel('Package (folder, .tgz or npm package)').fill(echoPackage);
    await page.getByRole('button', { name: 'Inspect' }).click();
    const consent = page.getByTestId('consent');
    await consent.waitFor();
    const warnings = await consent.getByTestId('consent-warnings').innerText();
    expect(warnings).toContain('It can see and signal your processes');
    expect(warnings).toContain('While it was inspected it had the host network too (for at most 5 s)');
    expect(await consent.getByTestId('consent-reach').innerText()).toMatch(/Network\s+host network \(no bubblewrap\)/);
    await checkPage('plugin-consent-no-bwrap');
    await consent.getByRole('button', { name: 'Require bubblewrap for installed connectors' }).click();
    await expect.poll(async () => (await rest('GET', '/api/databases/main/settings')).settings.requireBwrapForThirdParty).toBe(true);
    expect(await page.getByTestId('require-bwrap').isChecked()).toBe(true);
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page.getByRole('button', { name: 'Inspect' }).click();
    const error = page.getByTestId('inspect-error');
    await error.waitFor();
    expect(await error.innerText()).toContain('(bwrap_required)');
    expect(await page.getByTestId('consent').count()).toBe(0);
    expectClean(watched);
  });
});
