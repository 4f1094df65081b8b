/* global window, document, MutationObserver -- the functions passed to page.evaluate run in the page */
// The web UI's benchmark (`pnpm bench`): how fast an agent's approval_required
// call shows up as the approval dialog in real Chromium, the dashboard's first
// load, and the first-load bundle size. A real gateway process (fresh data
// directory, real SQLCipher file, the real Redis on 127.0.0.1:6379), the MCP
// SDK's Client as the agent, Debian's Chromium driven by playwright-core.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const CALLS = 50;
const LOADS = 10;
const PASSWORD = 'Bench-Password-2026x';
const ui = fileURLToPath(new URL('..', import.meta.url));
const GATEWAY = fileURLToPath(new URL('../../kernel/test/fixtures/gateway.mjs', import.meta.url));
const CHROMIUM = process.env.AIP_CHROMIUM ?? '/usr/bin/chromium';

const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
};
const freePort = () =>
  new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

/** First load: index.html's own script and stylesheet, gzipped (what the 150 KB budget counts). */
async function bundleSize() {
  const dist = join(ui, 'dist');
  const html = await readFile(join(dist, 'index.html'), 'utf8');
  const files = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1]);
  let raw = 0;
  let gzip = 0;
  for (const file of files) {
    const bytes = await readFile(join(dist, file));
    raw += bytes.length;
    gzip += gzipSync(bytes, { level: 9 }).length;
  }
  return { files, raw, gzip };
}

const dataDir = await mkdtemp(join(tmpdir(), 'aip-ui-bench-'));
const port = await freePort();
const gateway = spawn(process.execPath, [GATEWAY, dataDir, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
const url = await new Promise((resolve, reject) => {
  let buffer = '';
  gateway.stdout.on('data', (chunk) => {
    buffer += chunk;
    const match = /LISTENING (\S+)/.exec(buffer);
    if (match) resolve(match[1]);
  });
  gateway.once('exit', (code) => reject(new Error(`gateway exited ${code}`)));
});

// The operator's setup over REST, as the CLI would do it.
const cookies = new Map();
async function rest(method, path, body) {
  const headers = { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') };
  if (method !== 'GET') headers['x-csrf-token'] = cookies.get('aip_csrf') ?? '';
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${url}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  for (const line of response.headers.getSetCookie()) {
    const [pair] = line.split(';');
    const [name, ...rest] = pair.split('=');
    cookies.set(name.trim(), rest.join('='));
  }
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text);
}
await rest('GET', '/api/status');
await rest('POST', '/api/databases', { name: 'bench', password: PASSWORD, client: 'cli' });
const { target } = await rest('POST', '/api/databases/bench/targets', { kind: 'redis', name: 'local', config: { host: '127.0.0.1', port: 6379 } });
const { profile } = await rest('POST', `/api/databases/bench/targets/${target.id}/profiles`, { label: 'open', credentialKind: 'none' });
const { token, secret } = await rest('POST', '/api/databases/bench/tokens', { name: 'bench-agent' });
await rest('PUT', '/api/databases/bench/grants', { tokenId: token.id, targetId: target.id, profileId: profile.id, action: 'set_string', rule: 'approval_required' });
await rest('PUT', '/api/databases/bench/mcp', { running: true });
const targetRef = `redis:${target.id}:${profile.id}`;

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
await page.goto(url);
await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
await page.getByRole('button', { name: 'Unlock bench' }).click();
await page.locator('.live.on').waitFor();

// Dashboard first load: navigation start to the dashboard drawn with its data and the live stream open.
const loads = [];
for (let i = 0; i < LOADS; i += 1) {
  const fresh = await context.newPage();
  await fresh.goto(url);
  await fresh.locator('.live.on').waitFor();
  await fresh.getByTestId('onboarding').locator('li.done').first().waitFor();
  loads.push(await fresh.evaluate(() => performance.now()));
  await fresh.close();
}

// The approval dialog: the page records when it opened; the clock is the same machine's.
await page.evaluate(() => {
  new MutationObserver(() => {
    const dialog = document.querySelector('dialog.approval');
    if (dialog?.open && !window.__openedId) {
      window.__opened = Date.now();
      window.__openedId = true;
    }
  }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['open'], childList: true });
});
const agent = new Client({ name: 'bench-agent', version: '1.0.0' });
await agent.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${secret}` } } }));
const latencies = [];
for (let i = 0; i < CALLS; i += 1) {
  await page.evaluate(() => {
    window.__openedId = false;
    window.__opened = 0;
  });
  const started = Date.now();
  const result = await agent.callTool({ name: 'call_connector_action', arguments: { target_ref: targetRef, action_name: 'set_string', input: { key: `bench:ui:${i}`, value: 'x' }, reason: `bench ${i}` } });
  const requestId = result.structuredContent.request_id;
  await page.waitForFunction(() => window.__opened > 0, undefined, { timeout: 10_000, polling: 'raf' });
  latencies.push((await page.evaluate(() => window.__opened)) - started);
  await rest('POST', `/api/databases/bench/requests/${requestId}/decline`, { note: 'bench' });
  await page.getByRole('button', { name: 'Close' }).click();
  await page.locator('dialog.approval[open]').waitFor({ state: 'hidden' });
}
await agent.close();
await browser.close();
gateway.kill('SIGTERM');
await new Promise((resolve) => gateway.once('exit', resolve));
await rm(dataDir, { recursive: true, force: true });

const bundle = await bundleSize();
const rows = [
  ['MCP call_connector_action -> approval dialog visible', `${CALLS} calls`, `p50 ${percentile(latencies, 50)} ms`, `p95 ${percentile(latencies, 95)} ms`, `max ${Math.max(...latencies)} ms`],
  ['dashboard first load (navigation -> data drawn, stream live)', `${LOADS} loads`, `p50 ${Math.round(percentile(loads, 50))} ms`, `p95 ${Math.round(percentile(loads, 95))} ms`, ''],
  ['first-load bundle (JS + CSS)', bundle.files.join(' '), `${(bundle.gzip / 1024).toFixed(1)} KiB gzipped`, `${(bundle.raw / 1024).toFixed(1)} KiB raw`, 'budget 150 KB gzipped'],
];
console.log('\nweb UI (ui/bench/approval-latency.mjs)');
for (const row of rows) console.log(`  ${row.filter(Boolean).join(' | ')}`);
console.log(JSON.stringify({ approvalDialogMs: { p50: percentile(latencies, 50), p95: percentile(latencies, 95) }, dashboardLoadMs: { p50: Math.round(percentile(loads, 50)), p95: Math.round(percentile(loads, 95)) }, bundleGzipBytes: bundle.gzip }));
if (bundle.gzip > 150 * 1024) {
  console.error(`The first-load bundle is ${bundle.gzip} bytes gzipped, over the 150 KB budget.`);
  process.exitCode = 1;
}
