import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer, type Server } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { ResponseError } from 'vscode-jsonrpc/node';
import { startPlugin, type PluginUnderTest } from '../src/testing/index.js';
import { connectEndpoint, createPool, socketOptionsOf, tlsIdentityFor } from '../src/index.js';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import {
  InitializeRequest,
  InvokeRequest,
  PROJECT_ERROR_CODE_RANGE,
  PROTOCOL_VERSION,
  PROTOCOL_VERSIONS,
  V1WireErrorCodes,
  WireErrorCodes,
  isEndpoint,
  type Endpoint,
  type InvokeParams,
} from '../src/protocol/index.js';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/dist/${name}.mjs`, import.meta.url));
const tcp: Endpoint = { type: 'tcp', host: '127.0.0.1', port: 40001, transport: 'direct', serverName: 'cache.internal' };
const unix: Endpoint = { type: 'unix', path: '/run/ep/1.sock', transport: 'direct', serverName: 'cache.internal' };

describe('protocol version 2', () => {
  it('is the only version spoken', () => {
    expect(PROTOCOL_VERSIONS).toEqual([2]);
    expect(PROTOCOL_VERSION).toBe(2);
  });

  it("keeps the project's error codes in their own block, outside the ranges JSON-RPC and vscode-jsonrpc reserve", () => {
    for (const code of [WireErrorCodes.ProtocolVersionUnsupported, WireErrorCodes.UnknownAction, WireErrorCodes.ActionFailed]) {
      expect(code).toBeLessThanOrEqual(PROJECT_ERROR_CODE_RANGE.first);
      expect(code).toBeGreaterThanOrEqual(PROJECT_ERROR_CODE_RANGE.last);
      // JSON-RPC reserves -32768..-32000 (vscode-jsonrpc uses -32099..-32000 of it).
      expect(code < -32768 || code > -32000).toBe(true);
    }
    expect(new Set(Object.values(WireErrorCodes)).size).toBe(Object.values(WireErrorCodes).length);
    // Version 1's codes were inside vscode-jsonrpc's block; that is why they moved.
    for (const code of Object.values(V1WireErrorCodes)) expect(code >= -32099 && code <= -32000).toBe(true);
  });
});

describe('the endpoint union', () => {
  it('accepts loopback TCP and unix socket endpoints, and refuses the version-1 shape and junk', () => {
    expect(isEndpoint(tcp)).toBe(true);
    expect(isEndpoint(unix)).toBe(true);
    expect(isEndpoint({ type: 'unix', path: '/run/ep/1.sock', transport: 'direct' })).toBe(true);
    for (const bad of [
      { host: '10.0.0.5', port: 6379, transport: 'direct' },
      { type: 'tcp', host: '127.0.0.1', port: 0, transport: 'direct' },
      { type: 'tcp', host: '127.0.0.1', port: 65536, transport: 'direct' },
      { type: 'tcp', host: '', port: 1, transport: 'direct' },
      { type: 'unix', path: '', transport: 'direct' },
      { type: 'unix', path: '/x', transport: 'direct', serverName: 7 },
      { type: 'pipe', path: '/x', transport: 'direct' },
      { type: 'unix', path: '/x' },
      null,
      'tcp://127.0.0.1:1',
    ]) {
      expect([bad, isEndpoint(bad)]).toEqual([bad, false]);
    }
  });

  it('gives socket options for either shape', () => {
    expect(socketOptionsOf(tcp)).toEqual({ host: '127.0.0.1', port: 40001 });
    expect(socketOptionsOf(unix)).toEqual({ path: '/run/ep/1.sock' });
  });

  it('pools by where the endpoint leads, whatever the order of its fields', async () => {
    let made = 0;
    const pool = createPool<number>({ create: async () => ++made, close: () => undefined, idleMs: 1_000 });
    const ctx = (endpoint: unknown) => ({ endpoint, target: {}, credentials: { kind: 'none', fields: {} } }) as never;
    expect(await pool.use(ctx(unix), async (n) => n)).toBe(1);
    expect(await pool.use(ctx({ serverName: 'cache.internal', transport: 'direct', path: '/run/ep/1.sock', type: 'unix' }), async (n) => n)).toBe(1);
    expect(await pool.use(ctx({ ...unix, path: '/run/ep/2.sock' }), async (n) => n)).toBe(2);
    expect(await pool.use(ctx({ ...unix, serverName: 'other.internal' }), async (n) => n)).toBe(3);
    expect(await pool.use(ctx(tcp), async (n) => n)).toBe(4);
    expect(await pool.use(ctx({ ...tcp, port: 40002 }), async (n) => n)).toBe(5);
    await pool.closeAll();
  });
});

describe('serve() over the wire', () => {
  let plugin: PluginUnderTest;
  const params = (endpoint: unknown): InvokeParams =>
    ({ invocationId: 'inv-1', action: 'where', input: {}, target: {}, credentials: { kind: 'none', fields: {} }, endpoint, limits: { timeoutMs: 5_000, maxOutputBytes: 65_536 } }) as InvokeParams;
  beforeAll(async () => {
    plugin = startPlugin({ entry: fixture('endpoint') });
    await plugin.connection.sendRequest(InitializeRequest, { protocolVersions: [2], kernel: { name: 'test', version: '0' }, capabilities: {} });
  });
  afterAll(() => {
    plugin.process.kill('SIGKILL');
    plugin.connection.dispose();
  });

  it('hands the handler either endpoint shape intact, frozen', async () => {
    for (const endpoint of [tcp, unix, null]) {
      expect(await plugin.connection.sendRequest(InvokeRequest, params(endpoint))).toEqual({ output: { endpoint, frozen: true } });
    }
  });

  it('refuses a version-1 endpoint with InvalidParams instead of guessing', async () => {
    const refused = await plugin.connection.sendRequest(InvokeRequest, params({ host: '10.0.0.5', port: 6379, transport: 'direct' })).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(ResponseError);
    expect(refused).toMatchObject({ code: WireErrorCodes.InvalidParams, message: expect.stringMatching(/not a protocol-2 endpoint/) });
  });

  for (const [offered, says] of [
    [[1], /speaks plugin protocol version 2; the kernel offered 1\. The gateway is older than this plugin: upgrade AIPermission\./],
    [[3, 4], /the kernel offered 3, 4\. The plugin is older than the gateway: rebuild it with the current @aipermission\/plugin-sdk\./],
    [[], /the kernel offered none\. Upgrade whichever is older\./],
  ] as const) {
    it(`refuses a kernel offering [${offered.join(', ')}] with ProtocolVersionUnsupported and says what to do`, async () => {
      const probe = startPlugin({ entry: fixture('endpoint') });
      try {
        const refused = await probe.connection.sendRequest(InitializeRequest, { protocolVersions: [...offered], kernel: { name: 'test', version: '0' }, capabilities: {} }).catch((error: unknown) => error);
        expect(refused).toMatchObject({ code: WireErrorCodes.ProtocolVersionUnsupported, message: expect.stringMatching(says) });
      } finally {
        probe.process.kill('SIGKILL');
        probe.connection.dispose();
      }
    });
  }
});

describe('TLS through an endpoint verifies the target name, not the endpoint address', () => {
  let dir: string;
  let server: Server;
  let port: number;
  let ca: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'aip-sdk-tls-'));
    const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=aip-sdk-test-ca', '-keyout', 'ca.key', '-out', 'ca.crt']);
    // The certificate names the target only: neither 127.0.0.1 nor localhost.
    await writeFile(join(dir, 'san.cnf'), 'subjectAltName=DNS:cache.internal\n');
    run(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=cache.internal', '-keyout', 'server.key', '-out', 'server.csr']);
    run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'san.cnf', '-out', 'server.crt']);
    ca = await readFile(join(dir, 'ca.crt'), 'utf8');
    server = createTlsServer({ key: await readFile(join(dir, 'server.key')), cert: await readFile(join(dir, 'server.crt')) }, (socket) => socket.end('hello over tls\n'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    server.close();
    await rm(dir, { recursive: true, force: true });
  });

  const handshake = (options: Record<string, unknown>) =>
    new Promise<string>((resolve, reject) => {
      const socket = tlsConnect({ ...socketOptionsOf({ type: 'tcp', host: '127.0.0.1', port, transport: 'direct' }), ca, ...options });
      socket.setEncoding('utf8');
      let text = '';
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });

  it('succeeds with the target name, and sends it as SNI', async () => {
    let sni: string | undefined;
    server.once('secureConnection', (socket: { servername?: string | false }) => (sni = socket.servername || undefined));
    expect(await handshake(tlsIdentityFor('cache.internal'))).toBe('hello over tls\n');
    expect(sni).toBe('cache.internal');
  });

  it("fails for another name, and Node's default (the endpoint's address) fails too", async () => {
    await expect(handshake(tlsIdentityFor('other.internal'))).rejects.toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    await expect(handshake({})).rejects.toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });

  it('connectEndpoint speaks TLS to the name in the endpoint, and an HTTPS client can use it as its socket factory', async () => {
    const endpoint: Endpoint = { type: 'tcp', host: '127.0.0.1', port, transport: 'direct', serverName: 'cache.internal' };
    const text = await new Promise<string>((resolve, reject) => {
      const socket = connectEndpoint(endpoint, { tls: { ca } });
      let got = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (got += chunk));
      socket.on('end', () => resolve(got));
      socket.on('error', reject);
    });
    expect(text).toBe('hello over tls\n');
    const refused = await new Promise<unknown>((resolve) => {
      const socket = connectEndpoint({ ...endpoint, serverName: 'other.internal' }, { tls: { ca } });
      socket.on('error', resolve);
      socket.on('secureConnect', () => resolve('connected'));
    });
    expect(refused).toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    expect(() => connectEndpoint({ type: 'tcp', host: '127.0.0.1', port, transport: 'direct' }, { tls: {} })).toThrow(/no server name to verify/);
    // The factory form: an HTTPS client that sends its requests through the endpoint.
    const web = createHttpsServer({ key: await readFile(join(dir, 'server.key')), cert: await readFile(join(dir, 'server.crt')) }, (req, res) => res.end(`hello ${req.headers.host}`));
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    const webEndpoint: Endpoint = { ...endpoint, port: (web.address() as { port: number }).port };
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = httpsRequest({ host: 'cache.internal', defaultPort: 443, path: '/', createConnection: () => connectEndpoint(webEndpoint, { tls: { ca } }) } as never, (res) => {
          let got = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (got += chunk));
          res.on('end', () => resolve(got));
        });
        req.on('error', reject);
        req.end();
      });
      expect(body).toBe('hello cache.internal');
    } finally {
      web.close();
    }
  });

  it('checks an IP address name without sending it as SNI', () => {
    const identity = tlsIdentityFor('10.0.0.5');
    expect(identity.servername).toBeUndefined();
    expect(identity.checkServerIdentity('127.0.0.1', { subject: { CN: 'x' }, subjectaltname: 'IP Address:10.0.0.5' } as never)).toBeUndefined();
    expect(identity.checkServerIdentity('10.0.0.5', { subject: { CN: 'x' }, subjectaltname: 'IP Address:10.0.0.6' } as never)).toBeInstanceOf(Error);
  });
});
