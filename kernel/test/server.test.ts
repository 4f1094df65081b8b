import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { request as httpRequest } from 'node:http';
import { startGateway, type Gateway } from '../src/main.js';
import { loopbackBindAddress } from '../src/http/index.js';
import { createStaticCatalog, defineStaticConnector } from '../src/connectors/index.js';
import { createFakeExecutor, fakeConnectorDefinition } from './helpers/kernel.js';
import { tempDir, PASSWORD } from './helpers/temp.js';
import { jsonOf } from './helpers/http.js';

let gateway: Gateway;
let dir: string;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  gateway = await startGateway({
    dataDir: dir,
    port: 0,
    catalog: createStaticCatalog([defineStaticConnector(fakeConnectorDefinition())]),
    executor: createFakeExecutor(),
    log: () => undefined,
  });
});
afterEach(async () => {
  await gateway.close();
  await cleanup();
});

function raw(path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: gateway.server.port, path, headers }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Cookie-keeping fetch against the real server. */
function browser() {
  const cookies = new Map<string, string>();
  return async (path: string, init: RequestInit = {}) => {
    const headers = new Headers(init.headers);
    if (cookies.size) headers.set('cookie', [...cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    if (init.method && init.method !== 'GET' && cookies.has('aip_csrf')) headers.set('x-csrf-token', cookies.get('aip_csrf')!);
    if (init.body) headers.set('content-type', 'application/json');
    const response = await fetch(`${gateway.url}${path}`, { ...init, headers });
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const index = pair!.indexOf('=');
      cookies.set(pair!.slice(0, index), pair!.slice(index + 1));
    }
    return response;
  };
}

describe('the listening gateway', () => {
  it('listens on loopback and answers status', async () => {
    expect(gateway.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const response = await fetch(`${gateway.url}/api/status`);
    expect(response.status).toBe(200);
    expect(await jsonOf(response)).toMatchObject({ name: 'AIPermission', locked: true, databases: [] });
  });

  it('refuses a rebinding Host over a real connection', async () => {
    const evil = await raw('/api/status', { host: 'attacker.example' });
    expect(evil.status).toBe(403);
    expect(JSON.parse(evil.body).error.code).toBe('bad_host');
    expect((await raw('/api/status', { host: `localhost:${gateway.server.port}` })).status).toBe(200);
  });

  it('refuses to bind a non-loopback address, with a clear error', async () => {
    for (const host of ['0.0.0.0', '::', '192.168.1.10', 'example.com', '10.0.0.1']) {
      expect(() => loopbackBindAddress(host)).toThrow(/local-only and binds a loopback address/);
    }
    expect(loopbackBindAddress('localhost')).toBe('127.0.0.1');
    expect(loopbackBindAddress('::1')).toBe('::1');
    expect(loopbackBindAddress('127.0.0.2')).toBe('127.0.0.2');
    await expect(startGateway({ dataDir: dir, host: '0.0.0.0', port: 0 })).rejects.toMatchObject({ code: 'non_loopback_bind' });
  });

  it('pushes new and changed requests on the event stream at once', async () => {
    const go = browser();
    await go('/api/status');
    expect((await go('/api/databases', { method: 'POST', body: JSON.stringify({ name: 'main', password: PASSWORD }) })).status).toBe(201);
    const controller = new AbortController();
    const stream = await go('/api/events', { signal: controller.signal });
    expect(stream.headers.get('content-type')).toMatch(/text\/event-stream/);
    const reader = stream.body!.getReader();
    const received: string[] = [];
    const readUntil = async (pattern: RegExp) => {
      const decoder = new TextDecoder();
      while (!pattern.test(received.join(''))) {
        const { value, done } = await reader.read();
        if (done) break;
        received.push(decoder.decode(value));
      }
    };
    await readUntil(/event: ready/);

    const ws = gateway.kernel.workspace('main');
    await ws.mcp.set(true, 'test');
    const target = await ws.targets.createTarget({ kind: 'fake', name: 't', config: {} }, 'test');
    const profile = await ws.targets.createProfile(target.id, { label: 'p', credentialKind: 'password' }, 'test');
    const token = await ws.tokens.create({ name: 'a' }, 'test');
    await ws.grants.set({ tokenId: token.token.id, targetId: target.id, profileId: profile.id, action: '*', rule: 'approval_required' }, 'test');
    const outcome = await gateway.kernel.pipeline.call(gateway.kernel.authenticateToken(token.secret), { targetRef: `fake:${target.id}:${profile.id}`, action: 'write_thing', input: { value: 'x' } });
    if (outcome.kind !== 'request') throw new Error();
    await readUntil(new RegExp(`event: request.created\\ndata: .*${outcome.request.id}.*approval_pending`));
    await ws.approvals.decline(outcome.request.id, null, 'test');
    await readUntil(new RegExp(`event: request.updated\\ndata: .*${outcome.request.id}.*declined`));
    controller.abort();
  });
});
