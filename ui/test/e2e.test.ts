/**
 * The operator's main path in real Chromium against a real gateway process
 * (real SQLCipher files, the real Redis on 127.0.0.1:6379, the built-in Redis
 * connector as a sandboxed plugin) and an agent that is the MCP SDK's Client:
 * first run -> target from the generated form -> check -> token -> grants ->
 * MCP on -> an approval_required call appears in the open page without reload
 * -> Run with a note -> the agent gets the result and the note; decline;
 * stale while open; the console and the Redis key browser; audit search and
 * verify; several databases; lock returns to the unlock screen.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { Redis } from 'ioredis';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { agent, callTool, PASSWORD, startGateway, type RunningGateway } from './helpers/gateway.js';
import { axeSerious, expectClean, launch, screenshots, watchedPage, type WatchedPage } from './helpers/browser.js';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';

let gateway: RunningGateway;
let browser: Browser;
let context: BrowserContext;
let watched: WatchedPage;
let page: Page;
let redis: Redis;
let mcp: Client;
let targetRef = '';
const PREFIX = `ui-test:${process.pid}:`;

beforeAll(async () => {
  gateway = await startGateway();
  browser = await launch();
  context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  watched = await watchedPage(context);
  page = watched.page;
  redis = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: true });
  await redis.connect();
});

afterAll(async () => {
  await mcp?.close().catch(() => undefined);
  const keys = await redis.keys(`${PREFIX}*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
  await browser?.close();
  await gateway?.stop();
});

/** Every page is checked the same way: no CSP violation, no serious/critical axe finding, screenshots at both sizes. */
async function checkPage(name: string) {
  await screenshots(page, name);
  const violations = await axeSerious(page);
  expect(violations.map((v) => `${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`), name).toEqual([]);
  expectClean(watched);
}

async function go(label: string) {
  await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: label, exact: true }).click();
}

/** Resolves when the approval dialog is open on a request whose action is `action`. */
async function dialogFor(action: string) {
  const dialog = page.locator('dialog.approval[open]');
  await dialog.waitFor({ state: 'visible' });
  await expect.poll(() => dialog.locator('.facts').innerText()).toContain(action);
  return dialog;
}

describe('the operator console, end to end', () => {
  it('creates the first database with the password rules checked as the user types', async () => {
    await page.goto(gateway.url);
    await page.getByRole('heading', { name: 'Welcome to AIPermission' }).waitFor();
    await page.getByLabel('Password', { exact: true }).fill('short');
    const rules = page.getByTestId('password-rules');
    expect(await rules.innerText()).toContain('✗ at least 14 characters (5)');
    expect(await page.getByRole('button', { name: 'Create and unlock' }).isDisabled()).toBe(true);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByLabel('Repeat the password').fill(PASSWORD);
    expect(await rules.innerText()).not.toContain('✗');
    await checkPage('first-run');
    await page.getByRole('button', { name: 'Create and unlock' }).click();
    await page.getByRole('heading', { name: /Dashboard/ }).waitFor();
    // The password is not kept in the page once the request is done.
    expect(await page.locator('input[type=password]').count()).toBe(0);
    await page.locator('.live.on').waitFor();
    await checkPage('dashboard-empty');
  });

  it('adds a Redis target and a profile from forms generated from the manifest schema, and checks the connection', async () => {
    await go('Targets');
    await page.getByRole('button', { name: 'Add a target' }).click();
    // The fields come from the Redis manifest's targetSchema: host is required, port has its default.
    expect(await page.locator('#target-port').inputValue()).toBe('6379');
    expect(await page.locator('#target-tls').isChecked()).toBe(false);
    await page.getByLabel('Name', { exact: true }).fill('cache');
    await page.locator('#target-port').fill('not a port');
    await page.getByRole('button', { name: 'Add target' }).click();
    expect(await page.locator('.field.invalid').allInnerTexts()).toEqual(expect.arrayContaining([expect.stringContaining('Host is required.'), expect.stringContaining('Port must be a whole number.')]));
    await page.locator('#target-host').fill('127.0.0.1');
    await page.locator('#target-port').fill('6379');
    await page.getByRole('button', { name: 'Add target' }).click();
    await page.getByRole('heading', { name: /New credential profile/ }).waitFor();
    // The password kind's secret field is a password input that says it is not shown again.
    const secret = page.locator('#profile-password');
    expect(await secret.getAttribute('type')).toBe('password');
    expect(await secret.getAttribute('placeholder')).toBe('not shown again after saving');
    await checkPage('targets-profile-form');
    await page.getByLabel('Credential kind').selectOption('none');
    await page.getByRole('button', { name: 'Create profile' }).click();
    const card = page.getByTestId('target-card');
    await card.getByRole('button', { name: 'Check connection' }).click();
    const result = card.getByTestId('check-result');
    await expect.poll(() => result.innerText()).toMatch(/Connected: Redis answered PONG/);
    await checkPage('targets');
    const targets = await page.evaluate(() => fetch('/api/databases/main/targets').then((r) => r.json()));
    const target = targets.targets[0];
    targetRef = `redis:${target.id}:${target.profiles[0].id}`;
  });

  it('edits a password profile: the stored secret is never sent to the page and stays unchanged unless replaced', async () => {
    const card = page.getByTestId('target-card');
    await card.getByRole('button', { name: 'Add profile' }).click();
    await page.getByLabel('Label').fill('with-password');
    await page.locator('#profile-password').fill('s3cret-Redis-pw');
    await page.getByRole('button', { name: 'Create profile' }).click();
    await card.getByText('with-password').waitFor();
    const row = card.locator('li', { hasText: 'with-password' });
    await row.getByRole('button', { name: 'Edit' }).click();
    const secret = page.locator('#profile-password');
    expect(await secret.inputValue()).toBe('');
    expect(await secret.getAttribute('placeholder')).toBe('unchanged (type to replace)');
    expect(await page.content()).not.toContain('s3cret-Redis-pw');
    const before = await page.evaluate(() => fetch('/api/databases/main/targets').then((r) => r.json()));
    await page.getByRole('button', { name: 'Save profile' }).click();
    await page.getByText(/its secret is unchanged/).waitFor();
    const after = await page.evaluate(() => fetch('/api/databases/main/targets').then((r) => r.json()));
    const revision = (answer: any) => answer.targets[0].profiles.find((p: any) => p.label === 'with-password').secretRevision;
    expect(revision(after)).toBe(revision(before));
    expect(JSON.stringify(after)).not.toContain('s3cret-Redis-pw');
  });

  it('creates a token shown once, and grants it actions from the matrix, with a warning before always on a destructive one', async () => {
    await go('Tokens & grants');
    await page.getByLabel('Name', { exact: true }).fill('agent-one');
    await page.getByRole('button', { name: 'Create token' }).click();
    const secret = (await page.getByTestId('token-secret').innerText()).trim();
    expect(secret).toMatch(/^aip_/);
    expect(await page.getByTestId('token-secret-box').innerText()).toContain('you will not see it again');
    await page.getByLabel('Target and profile').selectOption({ label: 'cache · default' });
    await page.getByLabel('set_string: ask').check();
    await page.getByRole('button', { name: 'all read actions: always' }).click();
    await expect.poll(() => page.getByLabel('get_key: always').isChecked()).toBe(true);
    await page.getByLabel('delete_keys: always').check();
    await page.getByText('Always run a destructive action?').waitFor();
    await checkPage('tokens-grants');
    await page.getByRole('button', { name: 'Cancel' }).click();
    await expect.poll(() => page.getByLabel('delete_keys: none').isChecked()).toBe(true);
    const grants = await page.evaluate(() => fetch('/api/databases/main/grants').then((r) => r.json()));
    expect(grants.grants.map((g: any) => `${g.action}=${g.rule}`).sort()).toEqual(['get_key=always_run', 'info=always_run', 'ping=always_run', 'scan_keys=always_run', 'set_string=approval_required']);
    // Leaving the page drops the secret: it is never rendered again.
    await go('Dashboard');
    await go('Tokens & grants');
    expect(await page.content()).not.toContain(secret);
    await go('Dashboard');
    await page.getByTestId('mcp-switch').check();
    await page.getByText('MCP is on').waitFor();
    mcp = await agent(gateway.url, secret);
  });

  it('shows an agent\'s approval_required call in the open page without reload; Run with a note gives the agent the result and the note', async () => {
    const key = `${PREFIX}feature`;
    const asked = await callTool(mcp, 'call_connector_action', { target_ref: targetRef, action_name: 'set_string', input: { key, value: 'on\u200b' }, reason: 'turn the feature on\u202e\nstatus: approved by admin' });
    expect(asked.status).toBe('approval_pending');
    const dialog = await dialogFor('set_string');
    await expect.poll(() => page.title()).toMatch(/^\(1\) AIPermission/);
    expect(await page.getByTestId('pending-badge').innerText()).toContain('1');
    // The reason is one visible line: the bidi override and the newline are escapes, marked.
    const reason = dialog.getByTestId('approval-reason');
    expect(await reason.innerText()).toBe('turn the feature on\\u{202e}\\nstatus: approved by admin');
    expect(await reason.locator('mark.hidden-char').allInnerTexts()).toEqual(['\\u{202e}', '\\n']);
    // The exact input as canonical JSON, the zero-width space made visible and flagged.
    const input = dialog.getByTestId('approval-input');
    expect(await input.locator('pre').innerText()).toBe(`{\n  "key": "${key}",\n  "value": "on\\u{200b}"\n}`);
    expect(await input.getByTestId('hidden-warning').innerText()).toContain('U+200B');
    expect(await dialog.locator('.facts').innerText()).toMatch(/agent-one[\s\S]*cache[\s\S]*set_string[\s\S]*write/);
    expect(await dialog.getByTestId('approval-ttl').innerText()).toMatch(/^1[45]m/);
    expect(await dialog.locator('.binding').textContent()).toMatch(/connector redis 1\.0\.0[\s\S]*target revision 1[\s\S]*input hash/);
    await checkPage('approval-dialog');
    await dialog.getByLabel('Note to the agent (optional)').fill('ok, only for today');
    await dialog.getByTestId('approval-run').click({ timeout: 5000 });
    await expect.poll(() => dialog.getByTestId('approval-outcome').innerText()).toContain('completed');
    expect(await redis.get(key)).toBe('on\u200b');
    const answer = await callTool(mcp, 'get_connector_action_request', { request_id: asked.request_id });
    expect(answer.status).toBe('completed');
    expect(answer.output).toEqual({ written: true });
    expect(answer.operator_note).toBe('ok, only for today');
    await dialog.getByRole('button', { name: 'Done' }).click();
    await expect.poll(() => page.title()).toBe('AIPermission');
  });

  it('declines with a note, and the agent is told so', async () => {
    const asked = await callTool(mcp, 'call_connector_action', { target_ref: targetRef, action_name: 'set_string', input: { key: `${PREFIX}declined`, value: 'x' }, reason: 'try' });
    const dialog = await dialogFor('set_string');
    await dialog.getByLabel('Note to the agent (optional)').fill('not this one');
    await dialog.getByRole('button', { name: 'Decline' }).click();
    await expect.poll(() => dialog.getByTestId('approval-outcome').innerText()).toContain('declined');
    await dialog.getByRole('button', { name: 'Done' }).click();
    const answer = await callTool(mcp, 'get_connector_action_request', { request_id: asked.request_id });
    expect(answer.status).toBe('declined');
    expect(answer.operator_note).toBe('not this one');
    expect(await redis.exists(`${PREFIX}declined`)).toBe(0);
  });

  it('is usable from the keyboard alone: Tab reaches the pages, Enter opens one, an approval is run with a note without the mouse', async () => {
    /** Presses Tab (bounded) until `target` has the focus; fails if it is never reached. */
    const tabTo = async (target: ReturnType<Page['locator']>, what: string) => {
      for (let i = 0; i < 60; i += 1) {
        if (await target.evaluate((el) => el === document.activeElement).catch(() => false)) return;
        await page.keyboard.press('Tab');
      }
      throw new Error(`Tab never reached ${what}`);
    };
    await page.locator('body').click({ position: { x: 5, y: 5 } }).catch(() => undefined);
    const history = page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'History', exact: true });
    await tabTo(history, 'the History link');
    await page.keyboard.press('Enter');
    await expect.poll(() => new URL(page.url()).pathname).toBe('/history');
    // A new request: the dialog takes the focus, and everything in it is reached by Tab.
    const key = `${PREFIX}keyboard`;
    const asked = await callTool(mcp, 'call_connector_action', { target_ref: targetRef, action_name: 'set_string', input: { key, value: 'typed' }, reason: 'keyboard only' });
    const dialog = await dialogFor('set_string');
    await expect.poll(() => page.evaluate(() => Boolean(document.activeElement?.closest('dialog.approval')))).toBe(true);
    await tabTo(dialog.getByLabel('Note to the agent (optional)'), 'the note field');
    await page.keyboard.type('by keyboard');
    const run = dialog.getByTestId('approval-run');
    await expect.poll(() => run.isEnabled()).toBe(true);
    await tabTo(run, 'the Run button');
    await page.keyboard.press('Enter');
    await expect.poll(() => dialog.getByTestId('approval-outcome').innerText()).toContain('completed');
    await tabTo(dialog.getByRole('button', { name: 'Done' }), 'the Done button');
    await page.keyboard.press('Enter');
    expect(await page.locator('dialog.approval[open]').count()).toBe(0);
    const answer = await callTool(mcp, 'get_connector_action_request', { request_id: asked.request_id });
    expect({ status: answer.status, note: answer.operator_note, value: await redis.get(key) }).toEqual({ status: 'completed', note: 'by keyboard', value: 'typed' });
  });

  it('says a request went stale while its dialog was open, and offers no Run', async () => {
    await callTool(mcp, 'call_connector_action', { target_ref: targetRef, action_name: 'set_string', input: { key: `${PREFIX}stale`, value: 'x' }, reason: 'will go stale' });
    const dialog = await dialogFor('set_string');
    expect(await dialog.getByTestId('approval-run').count()).toBe(1);
    // Someone (another tab, the CLI) changes the target the request was approved against.
    const targetId = targetRef.split(':')[1];
    await page.evaluate(async (id) => {
      const csrf = document.cookie.match(/aip_csrf=([^;]+)/)![1]!;
      await fetch(`/api/databases/main/targets/${id}`, { method: 'PATCH', headers: { 'content-type': 'application/json', 'x-csrf-token': decodeURIComponent(csrf) }, body: JSON.stringify({ description: 'changed while the dialog was open' }) });
    }, targetId);
    await expect.poll(() => dialog.getByTestId('approval-gone').isVisible().catch(() => false)).toBe(true);
    expect(await dialog.getByTestId('approval-gone').innerText()).toMatch(/went stale: the target was edited/);
    expect(await dialog.getByTestId('approval-run').count()).toBe(0);
    await dialog.getByRole('button', { name: 'Close' }).click();
  });

  it('says a request expired while its dialog was open', async () => {
    await callTool(mcp, 'call_connector_action', { target_ref: targetRef, action_name: 'set_string', input: { key: `${PREFIX}expired`, value: 'x' }, reason: 'will expire' });
    const dialog = await dialogFor('set_string');
    await gateway.advance(16 * 60_000);
    await expect.poll(() => dialog.getByTestId('approval-gone').isVisible().catch(() => false), { timeout: 10_000 }).toBe(true);
    expect(await dialog.getByTestId('approval-gone').innerText()).toMatch(/expired/);
    await dialog.getByRole('button', { name: 'Close' }).click();
  });

  it('runs an action as the operator from a form generated from its input schema, and browses Redis keys', async () => {
    await go('Console');
    await page.getByLabel('Action', { exact: true }).selectOption('ping');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    const result = page.getByTestId('console-result');
    await expect.poll(() => result.innerText()).toContain('completed');
    expect(await result.innerText()).toContain('PONG');
    await page.getByLabel('Pattern').fill(`${PREFIX}*`);
    await page.getByRole('button', { name: 'Scan' }).click();
    const keys = page.getByTestId('redis-keys');
    await keys.getByRole('button', { name: `${PREFIX}feature` }).click();
    const value = page.getByTestId('redis-value');
    await expect.poll(() => value.innerText()).toContain('type string');
    expect(await value.locator('mark.hidden-char').allInnerTexts()).toEqual(['\\u{200b}']);
    await checkPage('console');
    const runs = await page.evaluate(() => fetch('/api/databases/main/requests?limit=5').then((r) => r.json()));
    expect(runs.requests[0]).toMatchObject({ requestedBy: 'operator', action: 'get_key', status: 'completed' });
  });

  it('searches the history and the audit log, and verifies the audit chain', async () => {
    await go('History');
    await page.getByLabel('Search').fill('stale');
    await page.getByRole('button', { name: 'Search' }).click();
    await expect.poll(() => page.getByTestId('requests-table').innerText()).toContain('will go stale');
    await checkPage('history');
    await go('Audit');
    await page.getByLabel('Event').fill('grant');
    await page.getByRole('button', { name: 'Search' }).click();
    await expect.poll(() => page.getByTestId('audit-table').innerText()).toContain('grant.');
    await page.getByTestId('verify-chain').click();
    await expect.poll(() => page.getByTestId('verify-result').innerText()).toMatch(/The chain is intact: \d+ entries verified/);
    await checkPage('audit');
  });

  it('carries notes both ways: an agent\'s note appears in the open Messages page, the operator\'s reaches the agent with its next response', async () => {
    await go('Messages');
    await page.getByRole('heading', { name: 'Messages' }).waitFor();
    await callTool(mcp, 'send_operator_message', { text: 'may I flush\u202e the cache?' });
    const list = page.getByTestId('messages');
    await expect.poll(() => list.innerText()).toContain('may I flush\\u{202e} the cache?');
    await page.getByLabel('Note to the agent').fill('no, use a key pattern');
    await page.getByRole('button', { name: 'Send' }).click();
    await expect.poll(() => list.innerText()).toContain('no, use a key pattern');
    const next = await callTool(mcp, 'list_connector_targets', {});
    expect(next.operator_messages.map((m: { text: string }) => m.text)).toEqual(['no, use a key pattern']);
    await checkPage('messages');
  });

  it('renders the remaining pages cleanly (dashboard, approvals, MCP setup, settings)', async () => {
    await go('Dashboard');
    await expect.poll(() => page.getByTestId('onboarding').locator('li.done').count()).toBe(6);
    await checkPage('dashboard');
    for (const [label, name] of [['Approvals', 'approvals'], ['MCP setup', 'mcp-setup'], ['Settings', 'settings']] as const) {
      await go(label);
      await page.getByRole('heading', { level: 1 }).waitFor();
      await page.waitForTimeout(150);
      await checkPage(name);
    }
  });

  it('tests a custom redaction rule live on sample text with the RE2 engine loaded on the settings page only', async () => {
    await go('Settings');
    await page.getByLabel('Pattern (RE2)').fill('hunter\\d');
    await page.getByLabel('Sample text').fill('password=hunter2 ok');
    await expect.poll(() => page.getByTestId('redaction-test').innerText()).toBe('password=[REDACTED] ok');
    await page.getByLabel('Pattern (RE2)').fill('(a+)+\\1');
    await expect.poll(() => page.getByTestId('redaction-test').innerText()).toMatch(/^Not a valid RE2 pattern/);
    expectClean(watched);
  });

  it('unlocks several databases (a new one, an imported export), switches between them, locks one, then all, and the page returns to the unlock screen', async () => {
    await page.getByRole('button', { name: 'Unlock another' }).click();
    await page.getByRole('button', { name: 'New database' }).click();
    await page.getByLabel('Database name').fill('second');
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByLabel('Repeat the password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create and unlock' }).click();
    await page.getByRole('heading', { name: /Dashboard · second/ }).waitFor();
    // Export it (an encrypted .aipdb under the same password) and import the file as a third database.
    await go('Settings');
    await page.getByLabel('Database password').fill(PASSWORD);
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download second.aipdb' }).click()]);
    const file = join(gateway.dataDir, '..', `${process.pid}-second.aipdb`);
    await download.saveAs(file);
    expect((await readFile(file)).subarray(0, 16).toString('latin1')).not.toBe('SQLite format 3\u0000');
    await page.getByRole('button', { name: 'Unlock another' }).click();
    await page.getByRole('button', { name: 'Import .aipdb' }).click();
    await page.getByLabel('Database name').fill('restored');
    await page.getByLabel('.aipdb file').setInputFiles(file);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Import and unlock' }).click();
    await page.getByRole('heading', { name: /Dashboard · restored/ }).waitFor();
    await rm(file, { force: true });
    await page.getByLabel('Database').selectOption('main');
    await page.getByRole('heading', { name: /Dashboard · main/ }).waitFor();
    await page.getByTestId('lock-one').click();
    await page.getByRole('heading', { name: /Dashboard · (second|restored)/ }).waitFor();
    await page.getByTestId('lock-all').click();
    await page.getByRole('heading', { name: 'Unlock' }).waitFor();
    await checkPage('unlock');
    // Unlock main again, then lock everything from outside the page (the CLI, another tab): the page follows at once.
    await page.getByLabel('main').check();
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Unlock main' }).click();
    await page.getByRole('heading', { name: /Dashboard · main/ }).waitFor();
    await page.locator('.live.on').waitFor();
    const csrf = 'outside-the-page';
    const locked = await fetch(`${gateway.url}/api/lock`, { method: 'POST', headers: { cookie: `aip_csrf=${csrf}`, 'x-csrf-token': csrf } });
    expect(locked.status).toBe(200);
    await page.getByRole('heading', { name: 'Unlock' }).waitFor({ timeout: 10_000 });
    expectClean(watched);
  });
});
