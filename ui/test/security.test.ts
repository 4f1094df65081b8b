/**
 * The UI under attack, in real Chromium against a real gateway:
 * - a page on another origin (served by this test on another loopback port,
 *   so it is same-site with the gateway and the browser sends SameSite=Strict
 *   cookies along) tries to read and to change things with every tool a web
 *   page has: CORS fetch, no-cors fetch, a form post, EventSource, a script
 *   tag, an iframe. None reads anything; nothing changes.
 * - an agent and a target name carry <script>, an onerror image, control and
 *   bidi characters: every page shows them as inert, visible text, nothing
 *   runs, and the CSP reports no violation (nothing even tried to load).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { agent, callTool, freePort, PASSWORD, startGateway, type RunningGateway } from './helpers/gateway.js';
import { expectClean, launch, screenshots, watchedPage, type WatchedPage } from './helpers/browser.js';

let gateway: RunningGateway;
let browser: Browser;
let context: BrowserContext;
let operator: WatchedPage;
let page: Page;
let evil: Server;
let evilOrigin = '';

const HOSTILE_NAME = '<script>window.__pwned="name"</script><img src=x onerror="window.__pwned=\'img\'">\u202egnp.exe\u0007';
const HOSTILE_REASON = 'routine\u2028<script>window.__pwned="reason"</script>\u200b\u202e';

/** The attacker's page: every way a web page can reach another origin, results collected in window.results. */
function attackerPage(gatewayUrl: string): string {
  return `<!doctype html><html><head><title>evil</title></head><body>
<iframe id="frame" src="${gatewayUrl}/"></iframe>
<iframe name="sink" id="sink"></iframe>
<form id="lock" method="POST" action="${gatewayUrl}/api/lock" target="sink" enctype="text/plain"><input name='{"x":"' value='"}'></form>
<script>
const gw = ${JSON.stringify(gatewayUrl)};
const results = {};
window.results = results;
async function attempt(name, fn) { try { results[name] = await fn(); } catch (e) { results[name] = 'refused: ' + e.name; } }
(async () => {
  await attempt('corsRead', () => fetch(gw + '/api/databases/main/targets', { credentials: 'include' }).then((r) => r.text()));
  await attempt('corsStatus', () => fetch(gw + '/api/status', { credentials: 'include' }).then((r) => r.text()));
  await attempt('noCorsRead', () => fetch(gw + '/api/databases/main/tokens', { mode: 'no-cors', credentials: 'include' }).then((r) => r.type + ':' + r.status + ':' + r.headers.get('content-type')));
  await attempt('noCorsCreateToken', () => fetch(gw + '/api/databases/main/tokens', { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body: '{"name":"evil"}' }).then((r) => r.type));
  // Cookies are not isolated by port: this page reads the gateway's aip_csrf cookie, and sends it as the header.
  const stolen = decodeURIComponent((document.cookie.match(/aip_csrf=([^;]+)/) || [])[1] || '');
  results.stolenCsrf = stolen ? 'yes' : 'no';
  await attempt('corsCreateToken', () => fetch(gw + '/api/databases/main/tokens', { method: 'POST', credentials: 'include', headers: { 'content-type': 'application/json', 'x-csrf-token': stolen }, body: '{"name":"evil2"}' }).then((r) => r.status));
  await attempt('corsLock', () => fetch(gw + '/api/lock', { method: 'POST', credentials: 'include', headers: { 'x-csrf-token': stolen } }).then((r) => r.status));
  await attempt('noCorsMcpOff', () => fetch(gw + '/api/databases/main/mcp', { method: 'PUT', mode: 'no-cors', credentials: 'include', body: '{"running":false}' }).then((r) => r.type));
  await attempt('events', () => new Promise((resolve) => { const s = new EventSource(gw + '/api/events', { withCredentials: true }); s.addEventListener('ready', () => resolve('got ready')); s.onerror = () => { s.close(); resolve('refused: error'); }; }));
  await attempt('scriptTag', () => new Promise((resolve) => { const s = document.createElement('script'); s.src = gw + '/api/databases/main/targets'; s.onload = () => resolve('loaded'); s.onerror = () => resolve('refused: error'); document.body.append(s); }));
  document.getElementById('lock').submit();
  await new Promise((r) => setTimeout(r, 500));
  try { results.frameRead = document.getElementById('frame').contentDocument?.body?.innerText ?? 'no document'; } catch (e) { results.frameRead = 'refused: ' + e.name; }
  results.done = true;
})();
</script></body></html>`;
}

beforeAll(async () => {
  gateway = await startGateway();
  browser = await launch();
  context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  operator = await watchedPage(context);
  page = operator.page;
  const port = await freePort();
  evilOrigin = `http://127.0.0.1:${port}`;
  evil = createServer((_, response) => {
    response.writeHead(200, { 'content-type': 'text/html' });
    response.end(attackerPage(gateway.url));
  });
  await new Promise<void>((resolve) => evil.listen(port, '127.0.0.1', resolve));
  // The operator's session in this browser, through the UI's own origin.
  await page.goto(gateway.url);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByLabel('Repeat the password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create and unlock' }).click();
  await page.getByRole('heading', { name: /Dashboard/ }).waitFor();
});

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => evil?.close(resolve));
  await gateway?.stop();
});

/** A REST call from inside the operator's page (its cookies, its CSRF token). */
function operatorCall(method: string, path: string, body?: unknown): Promise<any> {
  return page.evaluate(
    async ({ method, path, body }) => {
      const csrf = decodeURIComponent(document.cookie.match(/aip_csrf=([^;]+)/)![1]!);
      const response = await fetch(path, { method, headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
      return response.json();
    },
    { method, path, body },
  );
}

describe('a page on another origin', () => {
  it('cannot read or change anything, though the browser holds an operator session', async () => {
    const before = await operatorCall('GET', '/api/databases/main/tokens');
    const attacker = await context.newPage();
    await attacker.goto(`${evilOrigin}/`);
    await attacker.waitForFunction(() => (window as unknown as { results?: { done?: boolean } }).results?.done === true, undefined, { timeout: 20_000 });
    const results = (await attacker.evaluate(() => (window as unknown as { results: Record<string, string> }).results)) as Record<string, string>;
    // Reads: refused by the gateway (403 bad_origin) and, having no CORS headers, unreadable anyway.
    expect(results.corsRead).toBe('refused: TypeError');
    expect(results.corsStatus).toBe('refused: TypeError');
    // no-cors: Cross-Origin-Resource-Policy same-origin turns the opaque answer into a network error.
    expect(results.noCorsRead).toMatch(/^(refused: TypeError|opaque:0:null)$/);
    expect(results.events).toBe('refused: error');
    // A JSON answer is never run as a script (nosniff, CORP same-origin).
    expect(results.scriptTag).toBe('refused: error');
    // The gateway's pages refuse to be framed (frame-ancestors 'none', X-Frame-Options DENY).
    expect(results.frameRead).not.toContain('AIPermission');
    const frame = attacker.frames().find((f) => f.url().startsWith(gateway.url) || f.url().startsWith('chrome-error'));
    if (frame) expect(await frame.evaluate(() => document.title).catch(() => 'blocked')).not.toBe('AIPermission');
    // Another port of 127.0.0.1 is the same site: the browser lets it read the CSRF cookie (cookies ignore
    // ports), so the secret of the double submit is not secret from it. What holds: sending the header makes
    // the request preflighted, the gateway grants no CORS, and it refuses the foreign Origin outright (either
    // alone stops this; kernel/test/http.test.ts checks the Origin refusal by itself).
    expect(results.stolenCsrf).toBe('yes');
    expect(results.corsCreateToken).toBe('refused: TypeError');
    expect(results.corsLock).toBe('refused: TypeError');
    // Writes changed nothing: no token, MCP and the database as they were.
    const after = await operatorCall('GET', '/api/databases/main/tokens');
    expect(after.tokens).toEqual(before.tokens);
    const status = await operatorCall('GET', '/api/status');
    expect(status.databases.find((d: any) => d.name === 'main').unlocked).toBe(true);
    expect(status.session.databases).toEqual(['main']);
    await attacker.close();
    expectClean(operator);
  });
});

describe('hostile text', () => {
  it('is shown as inert, visible text in the target list, the approval dialog and the history; nothing runs and the CSP sees no attempt', async () => {
    const { target } = await operatorCall('POST', '/api/databases/main/targets', { kind: 'redis', name: HOSTILE_NAME, description: 'desc\u202eevil', config: { host: '127.0.0.1', port: 6379 } });
    const { profile } = await operatorCall('POST', `/api/databases/main/targets/${target.id}/profiles`, { label: 'open<b>bold</b>', credentialKind: 'none' });
    const { secret, token } = await operatorCall('POST', '/api/databases/main/tokens', { name: '<img src=x onerror=alert(1)>' });
    await operatorCall('PUT', '/api/databases/main/grants', { tokenId: token.id, targetId: target.id, profileId: profile.id, action: 'set_string', rule: 'approval_required' });
    await operatorCall('PUT', '/api/databases/main/mcp', { running: true });

    await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Targets', exact: true }).click();
    const card = page.getByTestId('target-card');
    await card.waitFor();
    const heading = await card.locator('h2').innerText();
    expect(heading).toContain('<script>window.__pwned="name"</script><img src=x onerror="window.__pwned=\'img\'">\\u{202e}gnp.exe\\u{7}');
    expect(await card.locator('mark.hidden-char').allInnerTexts()).toEqual(expect.arrayContaining(['\\u{202e}', '\\u{7}']));
    expect(await card.innerText()).toContain('open<b>bold</b>');

    const mcp = await agent(gateway.url, secret);
    await callTool(mcp, 'call_connector_action', { target_ref: `redis:${target.id}:${profile.id}`, action_name: 'set_string', input: { key: 'k<script>\u0000', value: '</pre><script>window.__pwned="input"</script>\u202e' }, reason: HOSTILE_REASON });
    const dialog = page.locator('dialog.approval[open]');
    await dialog.waitFor();
    expect(await dialog.getByTestId('approval-reason').innerText()).toBe('routine\\u{2028}<script>window.__pwned="reason"</script>\\u{200b}\\u{202e}');
    expect(await dialog.getByTestId('approval-token').innerText()).toBe('<img src=x onerror=alert(1)>');
    const input = await dialog.getByTestId('approval-input').locator('pre').innerText();
    expect(input).toContain('"k<script>\\u0000"');
    expect(input).toContain('"</pre><script>window.__pwned=\\"input\\"</script>\\u{202e}"');
    expect(await dialog.getByTestId('hidden-warning').innerText()).toMatch(/2 hidden characters/);
    await screenshots(page, 'hostile-approval');
    await dialog.getByRole('button', { name: 'Later' }).click();
    await mcp.close();

    // Nothing ran: no global set, no element from the text, only the bundle's own script.
    expect(await page.evaluate(() => (window as unknown as { __pwned?: string }).__pwned)).toBeUndefined();
    expect(await page.locator('script').evaluateAll((nodes) => nodes.map((n) => (n as HTMLScriptElement).src.replace(location.origin, '')))).toEqual([expect.stringMatching(/^\/assets\/index-[\w-]+\.js$/)]);
    expect(await page.locator('main img, dialog img').count()).toBe(0);
    expect(await page.locator('b').count()).toBe(0);
    for (const link of ['History', 'Approvals', 'Dashboard']) {
      await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: link, exact: true }).click();
      await page.waitForTimeout(300);
      expect(await page.evaluate(() => (window as unknown as { __pwned?: string }).__pwned), link).toBeUndefined();
    }
    await screenshots(page, 'hostile-dashboard');
    expectClean(operator);
  });
});
