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

/**
 * One MCP session spoken in raw JSON, for messages the SDK client cannot
 * send: over HTTP one POST per message on an initialized session, over stdio
 * lines written to a real `aip mcp` bridge. `exchange` returns every answer
 * the message got: none for a notification (over stdio a ping follows each
 * message, so "no answer" is seen rather than waited for).
 */
export async function rawSession(kind: TransportKind, url: string, token: string): Promise<{ exchange(body: string): Promise<{ status?: number; answers: any[] }>; close(): Promise<void> }> {
  const init = JSON.stringify({ jsonrpc: '2.0', id: 'init', method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: `raw-${kind}`, version: '1' } } });
  const initialized = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' });
  if (kind === 'http') {
    const base = { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const opened = await fetch(`${url}/mcp`, { method: 'POST', headers: base, body: init });
    await opened.body?.cancel();
    const headers = { ...base, 'mcp-session-id': opened.headers.get('mcp-session-id')!, 'mcp-protocol-version': '2025-06-18' };
    const post = async (body: string) => {
      const response = await fetch(`${url}/mcp`, { method: 'POST', headers, body });
      const text = await response.text();
      if (response.status === 202 || text === '') return { status: response.status, answers: [] };
      if ((response.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
        const answers = text.split('\n').filter((line) => line.startsWith('data: ')).map((line) => JSON.parse(line.slice(6)) as unknown);
        return { status: response.status, answers };
      }
      const parsed = JSON.parse(text) as unknown;
      return { status: response.status, answers: Array.isArray(parsed) ? parsed : [parsed] };
    };
    await post(initialized);
    return {
      exchange: post,
      async close() {
        await fetch(`${url}/mcp`, { method: 'DELETE', headers }).then((r) => r.body?.cancel());
      },
    };
  }
  const child = spawn(process.execPath, [AIP, 'mcp'], { env: { AIP_URL: url, AIP_TOKEN: token, PATH: process.env.PATH ?? '' }, stdio: ['pipe', 'pipe', 'inherit'] });
  let buffer = '';
  const lines: string[] = [];
  child.stdout.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    for (let newline = buffer.indexOf('\n'); newline >= 0; newline = buffer.indexOf('\n')) {
      lines.push(buffer.slice(0, newline));
      buffer = buffer.slice(newline + 1);
    }
  });
  let sentinel = 0;
  const until = async (id: string): Promise<any[]> => {
    const deadline = Date.now() + 10_000;
    const seen: any[] = [];
    for (;;) {
      while (lines.length > 0) {
        const message = JSON.parse(lines.shift()!) as { id?: unknown };
        if (message.id === id) return seen;
        seen.push(message);
      }
      if (Date.now() > deadline) throw new Error(`no answer to ${id} from the bridge; saw ${JSON.stringify(seen)}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  child.stdin.write(`${init}\n${initialized}\n`);
  const ping = () => `ping-${(sentinel += 1)}`;
  const first = ping();
  child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id: first, method: 'ping' })}\n`);
  await until(first);
  return {
    async exchange(body) {
      const id = ping();
      child.stdin.write(`${body}\n${JSON.stringify({ jsonrpc: '2.0', id, method: 'ping' })}\n`);
      return { answers: await until(id) };
    },
    async close() {
      child.stdin.end();
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}
