// The floor under the gateway's MCP transports: the same libraries and the same
// process layout as the gateway, and nothing of the gateway. No tokens, grants,
// audit, plugin process or redaction: one tool, `get`, does the ioredis GET in
// this process (as the peer server-redis does).
//   - Streamable HTTP: the SDK's WebStandardStreamableHTTPServerTransport, one
//     session per initialize, mounted in hono on @hono/node-server (as /mcp is).
//   - /plain: the same JSON-RPC answered by a hono handler without the SDK (no
//     sessions, no schema validation, no SSE): what hono and node:http cost alone.
//   - the stdio bridge's channel: a TCP connection carrying MCP stdio framing into
//     the SDK's StdioServerTransport (as the Upgrade channel does), reached through
//     `floor.mjs relay PORT`, a byte relay process standing in for `aip mcp`.
// Prints one JSON line {url, tcpPort}. Ends when stdin ends.
import { randomUUID } from 'node:crypto';
import { createConnection, createServer as createTcpServer } from 'node:net';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema, isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { Redis } from 'ioredis';

if (process.argv[2] === 'relay') {
  // stdin -> TCP -> stdout, byte for byte (what the `aip mcp` bridge does after its Upgrade).
  const socket = createConnection({ host: '127.0.0.1', port: Number(process.argv[3]) });
  socket.setNoDelay(true);
  process.stdin.pipe(socket).pipe(process.stdout);
  socket.on('close', () => process.exit(0));
  process.stdin.on('end', () => socket.end());
} else {
  const redis = new Redis({ host: '127.0.0.1', port: 6379 });
  const createServer = () => {
    const server = new Server({ name: 'floor', version: '1.0.0' }, { capabilities: { tools: {} } });
    server.setRequestHandler(ListToolsRequestSchema, async () => ({
      tools: [{ name: 'get', inputSchema: { type: 'object', properties: { key: { type: 'string' } }, required: ['key'] } }],
    }));
    server.setRequestHandler(CallToolRequestSchema, async (request) => {
      const value = await redis.get(String(request.params.arguments?.key));
      return { content: [{ type: 'text', text: value ?? '' }] };
    });
    return server;
  };

  const sessions = new Map();
  const app = new Hono();
  app.post('/plain', async (c) => {
    const message = await c.req.json();
    if (message.id === undefined) return c.body(null, 202);
    if (message.method === 'initialize') return c.json({ jsonrpc: '2.0', id: message.id, result: { protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'plain', version: '1.0.0' } } });
    const value = await redis.get(String(message.params?.arguments?.key));
    return c.json({ jsonrpc: '2.0', id: message.id, result: { content: [{ type: 'text', text: value ?? '' }] } });
  });
  app.all('/mcp', async (c) => {
    const request = c.req.raw;
    const id = request.headers.get('mcp-session-id');
    if (id) {
      const transport = sessions.get(id);
      return transport ? transport.handleRequest(request) : c.json({ error: 'no session' }, 404);
    }
    const body = await request.json();
    if (!isInitializeRequest(body)) return c.json({ error: 'initialize first' }, 400);
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (sid) => sessions.set(sid, transport),
    });
    await createServer().connect(transport);
    return transport.handleRequest(request, { parsedBody: body });
  });
  const http = await new Promise((resolve) => {
    const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(server));
  });
  const tcp = createTcpServer((socket) => {
    socket.setNoDelay(true);
    void createServer().connect(new StdioServerTransport(socket, socket));
  });
  await new Promise((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${http.address().port}`, tcpPort: tcp.address().port })}\n`);
  process.stdin.on('data', (chunk) => {
    if (String(chunk).trim() === 'cpu') {
      const { user, system } = process.cpuUsage();
      process.stdout.write(`${JSON.stringify({ user, system })}\n`);
    }
  });
  process.stdin.resume();
  process.stdin.on('end', () => {
    redis.disconnect();
    http.close();
    tcp.close();
    process.exit(0);
  });
}
