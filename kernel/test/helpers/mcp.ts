import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Readable, Writable } from 'node:stream';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { GatewayClient } from '../../src/cli/client.js';
import { AIP, freePort, waitForLine } from './cli.js';
import { PASSWORD } from './temp.js';

export type TransportKind = 'http' | 'stdio';

export interface RunningGateway {
  url: string;
  process: ChildProcessByStdio<Writable, Readable, null>;
  advance(ms: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startGatewayProcess(dataDir: string): Promise<RunningGateway> {
  const port = await freePort();
  const child = spawn(process.execPath, [fileURLToPath(new URL('../fixtures/gateway.mjs', import.meta.url)), dataDir, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const match = await waitForLine(child, /LISTENING (\S+)/);
  return {
    url: match[1]!,
    process: child,
    async advance(ms) {
      const done = waitForLine(child, /ADVANCED/);
      child.stdin.write(`advance ${ms}\n`);
      await done;
    },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

/** An operator, as the CLI is one: a REST session proven with the password. */
export async function operator(url: string, database = 'main'): Promise<GatewayClient & { db: (suffix: string) => string }> {
  const client = new GatewayClient(url) as GatewayClient & { db: (suffix: string) => string };
  await client.prove(database, { read: async () => PASSWORD });
  client.db = (suffix) => `/api/databases/${database}${suffix}`;
  return client;
}

/** An MCP client (the SDK's own) connected over Streamable HTTP, or over the `aip mcp` stdio bridge. */
export async function mcpClient(kind: TransportKind, url: string, token: string): Promise<Client> {
  const client = new Client({ name: `test-${kind}`, version: '1.0.0' });
  if (kind === 'http') {
    await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
  } else {
    await client.connect(
      new StdioClientTransport({ command: process.execPath, args: [AIP, 'mcp'], env: { AIP_URL: url, AIP_TOKEN: token, PATH: process.env.PATH ?? '' }, stderr: 'pipe' }),
    );
  }
  return client;
}

/** A tool result's structured content (the kernel always sends one). */
export async function callTool(client: Client, name: string, args: Record<string, unknown> = {}): Promise<Record<string, any> & { isError: boolean; text: string }> {
  const result = await client.callTool({ name, arguments: args });
  return { ...(result.structuredContent as Record<string, any>), isError: result.isError === true, text: (result.content as Array<{ text: string }>)[0]?.text ?? '' };
}
