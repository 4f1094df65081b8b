import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Readable, Writable } from 'node:stream';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

/** The kernel's own test gateway (real process, real SQLCipher files, built-in Redis connector, a clock moved by "advance <ms>"). */
const GATEWAY = fileURLToPath(new URL('../../../kernel/test/fixtures/gateway.mjs', import.meta.url));
/** The same gateway with bubblewrap off (the weak sandbox level); it has no clock to advance. */
const GATEWAY_NO_BWRAP = fileURLToPath(new URL('../fixtures/gateway-no-bwrap.mjs', import.meta.url));

export const PASSWORD = 'Correct-Horse-Battery-42';

export interface RunningGateway {
  url: string;
  port: number;
  dataDir: string;
  advance(ms: number): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

function waitForLine(child: ChildProcessByStdio<Writable, Readable, null>, pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}; got: ${buffer}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString();
      const match = buffer.match(pattern);
      if (match) {
        clearTimeout(timer);
        child.stdout.off('data', onData);
        resolve(match);
      }
    };
    child.stdout.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the gateway exited (${code}) before ${pattern}`));
    });
  });
}

/** A real gateway process on a free loopback port with a fresh data directory (`bwrap: 'off'`: without bubblewrap). */
export async function startGateway(options: { bwrap?: 'off' } = {}): Promise<RunningGateway> {
  const dataDir = await mkdtemp(join(tmpdir(), 'aip-ui-'));
  const port = await freePort();
  const child = spawn(process.execPath, [options.bwrap === 'off' ? GATEWAY_NO_BWRAP : GATEWAY, dataDir, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const match = await waitForLine(child, /LISTENING (\S+)/);
  return {
    url: match[1]!,
    port,
    dataDir,
    async advance(ms) {
      const done = waitForLine(child, /ADVANCED/);
      child.stdin.write(`advance ${ms}\n`);
      await done;
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((resolve) => child.once('exit', resolve));
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** An agent: the MCP SDK's own Client over Streamable HTTP with a bearer token. */
export async function agent(url: string, token: string): Promise<Client> {
  const client = new Client({ name: 'ui-test-agent', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
  return client;
}

export async function callTool(client: Client, name: string, args: Record<string, unknown>): Promise<Record<string, any> & { isError: boolean }> {
  const result = await client.callTool({ name, arguments: args });
  return { ...(result.structuredContent as Record<string, any>), isError: result.isError === true };
}
