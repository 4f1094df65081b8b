import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Hono } from 'hono';
import { createKernel, type Kernel } from '../src/kernel.js';
import { createHttpApp } from '../src/http/index.js';
import { httpDepsFromKernel } from '../src/wiring.js';
import { createStaticCatalog, defineStaticConnector } from '../src/connectors/index.js';
import { UI_CONTENT_SECURITY_POLICY } from '../src/http/routes/ui.js';
import { createFakeExecutor, fakeConnectorDefinition } from './helpers/kernel.js';
import { tempDir } from './helpers/temp.js';
import { TestClient, PORT, jsonOf } from './helpers/http.js';

let kernel: Kernel;
let dir: string;
let cleanup: () => Promise<void>;

const INDEX = '<!doctype html><title>AIPermission</title><script type="module" src="/assets/index-abc123.js"></script>';

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  kernel = createKernel({ dataDir: join(dir, 'data'), catalog: createStaticCatalog([defineStaticConnector(fakeConnectorDefinition())]), executor: createFakeExecutor(), log: () => undefined });
});
afterEach(async () => {
  await kernel.close();
  await cleanup();
});

async function uiApp(build = true): Promise<Hono<never>> {
  const uiDir = join(dir, 'ui');
  if (build) {
    await mkdir(join(uiDir, 'assets'), { recursive: true });
    await writeFile(join(uiDir, 'index.html'), INDEX);
    await writeFile(join(uiDir, 'assets', 'index-abc123.js'), 'console.log(1)');
    await writeFile(join(uiDir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    await writeFile(join(dir, 'outside.txt'), 'not the UI');
  }
  const { app } = createHttpApp({ deps: httpDepsFromKernel(kernel), getPort: () => PORT, version: 'test', uiDir });
  return app as unknown as Hono<never>;
}

describe('the web UI on the gateway origin', () => {
  it('serves index.html at / uncached, with the strict CSP and framing refused', async () => {
    const response = await new TestClient(await uiApp()).get('/');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await response.text()).toBe(INDEX);
    expect(response.headers.get('cache-control')).toBe('no-cache');
    const csp = response.headers.get('content-security-policy')!;
    expect(csp).toBe(UI_CONTENT_SECURITY_POLICY);
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).toContain("frame-ancestors 'none'");
    expect(response.headers.get('x-frame-options')).toBe('DENY');
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('caches hashed assets for a year and the rest of the build for no time', async () => {
    const client = new TestClient(await uiApp());
    const asset = await client.get('/assets/index-abc123.js');
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect((await client.get('/favicon.svg')).headers.get('cache-control')).toBe('no-cache');
  });

  it('answers an unknown page path with index.html (the UI routes it) and an unknown file with 404', async () => {
    const client = new TestClient(await uiApp());
    for (const path of ['/approvals', '/db/main/targets', '/index.html']) {
      const response = await client.get(path);
      expect(response.status, path).toBe(200);
      expect(await response.text(), path).toBe(INDEX);
    }
    const missing = await client.get('/assets/index-old999.js');
    expect(missing.status).toBe(404);
    expect((await jsonOf(missing)).error.code).toBe('not_found');
  });

  it('keeps the API and MCP answers: an unknown API path is a JSON 404, not the page', async () => {
    const client = new TestClient(await uiApp());
    const response = await client.get('/api/nope');
    expect(response.status).toBe(404);
    expect((await jsonOf(response)).error.code).toBe('not_found');
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(response.headers.get('content-security-policy')).toBe("default-src 'none'; frame-ancestors 'none'");
  });

  it('never serves a file outside the build: traversal, encoded traversal, or a symlink planted after start', async () => {
    const app = await uiApp();
    await symlink(join(dir, 'outside.txt'), join(dir, 'ui', 'assets', 'planted.txt'));
    const client = new TestClient(app);
    for (const path of ['/../outside.txt', '/assets/../../outside.txt', '/assets/%2e%2e/%2e%2e/outside.txt', '/%2e%2e/outside.txt', '/assets/planted.txt']) {
      const response = await client.get(path);
      expect(await response.text(), path).not.toContain('not the UI');
    }
  });

  it('applies the loopback, Host and Origin boundary to the UI too (DNS rebinding gets no page)', async () => {
    const app = await uiApp();
    expect((await new TestClient(app).get('/', { host: 'evil.example' })).status).toBe(403);
    expect((await new TestClient(app, { remoteAddress: '192.168.1.20' }).get('/')).status).toBe(403);
  });

  it('says how to build the UI when it is not built', async () => {
    const response = await new TestClient(await uiApp(false)).get('/');
    expect(response.status).toBe(503);
    expect(await response.text()).toMatch(/web UI is not built.*npm run build/s);
  });
});
