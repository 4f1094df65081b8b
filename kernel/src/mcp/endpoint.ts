import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex, Readable, Writable } from 'node:stream';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema, isInitializeRequest, isJSONRPCRequest, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { isGatewayHost, isLoopbackAddress } from '../http/boundary.js';
import { isKernelError, KernelError } from '../lib/errors.js';
import type { Kernel } from '../kernel.js';
import { VERSION } from '../version.js';
import { createTools } from './tools.js';
import { toCallToolResult } from './format.js';
import { MCP_INSTRUCTIONS } from './instructions.js';
import { STREAM_UPGRADE_PROTOCOL } from './constants.js';

/** Sessions one token may hold; a client that opens more loses its least recently used one. */
export const MAX_SESSIONS_PER_TOKEN = 32;
/** A session unused this long is closed (the client re-initializes). */
export const SESSION_IDLE_MS = 30 * 60_000;
/** Largest MCP request body: the 1 MiB input cap plus JSON-RPC envelope. */
export const MAX_MCP_BODY_BYTES = 2 * 1024 * 1024;

interface McpSession {
  id: string;
  transport: WebStandardStreamableHTTPServerTransport;
  server: Server;
  /** The token that opened it: `<database>/<token id>` (a token authenticates in one database only). */
  owner: string;
  database: string;
  lastUsed: number;
}

function jsonRpcError(status: number, code: number, message: string, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  });
}

/** The token of an `Authorization: Bearer …` header, or undefined. */
function bearerFrom(header: string | null | undefined): string | undefined {
  return header ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : undefined;
}

/** The bearer token of a request, or undefined. Cookies are never looked at: the operator session does not work here. */
export function bearerOf(request: Request): string | undefined {
  return bearerFrom(request.headers.get('authorization'));
}

const NO_TOKEN_MESSAGE = 'This endpoint needs an MCP token: send "Authorization: Bearer aip_...". Ask your operator for one.';

/**
 * The MCP endpoint (Streamable HTTP): every request authenticates with an
 * MCP bearer token; a session is created by `initialize` and stays bound to
 * the token that created it. One low-level MCP server per session, whose
 * tools call into the kernel with the request's own token.
 */
export function createMcpEndpoint(kernel: Kernel, options: { getPort: () => number }) {
  const tools = createTools(kernel);
  const sessions = new Map<string, McpSession>();
  /** The stdio bridge's connections: one MCP server each, bound to its token. */
  const streams = new Set<{ owner: string; database: string; socket: Duplex; opened: number }>();

  const close = (session: McpSession) => {
    sessions.delete(session.id);
    void session.transport.close().catch(() => undefined);
  };
  kernel.onLocked((name) => {
    for (const session of sessions.values()) if (session.database === name) close(session);
    for (const stream of streams) if (stream.database === name) stream.socket.end();
  });
  const sweep = setInterval(() => {
    const now = kernel.clock.now();
    for (const session of sessions.values()) if (now - session.lastUsed > SESSION_IDLE_MS) close(session);
  }, 60_000);
  sweep.unref();

  const createServer = () => {
    const server = new Server({ name: 'aipermission', version: VERSION }, { capabilities: { tools: {} }, instructions: MCP_INSTRUCTIONS });
    server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: tools.tools }));
    server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
      // Every message carries the token it was authenticated with (HTTP: this request's; stream: the connection's).
      const rawToken = extra.authInfo?.token;
      if (!rawToken) throw new Error('no token on this request');
      const progressToken = request.params._meta?.progressToken;
      let progress = 0;
      const answer = await tools.call(request.params.name, request.params.arguments, {
        rawToken,
        ...(progressToken !== undefined
          ? {
              onProgress: (update) => {
                // MCP progress must increase; a connector's own counter is used when it gives one.
                progress = Math.max(progress + 1, update.completed ?? 0);
                void extra
                  .sendNotification({
                    method: 'notifications/progress',
                    params: { progressToken, progress, ...(update.total !== undefined ? { total: update.total } : {}), ...(update.message ? { message: update.message } : {}) },
                  })
                  .catch(() => undefined);
              },
            }
          : {}),
      });
      return toCallToolResult(answer);
    });
    return server;
  };

  const openSession = async (owner: string, database: string): Promise<McpSession> => {
    // Keep each token's sessions bounded: drop its least recently used one.
    const mine = [...sessions.values()].filter((s) => s.owner === owner).sort((a, b) => a.lastUsed - b.lastUsed);
    while (mine.length >= MAX_SESSIONS_PER_TOKEN) close(mine.shift()!);
    const server = createServer();
    const session: McpSession = { id: '', transport: undefined as never, server, owner, database, lastUsed: kernel.clock.now() };
    session.transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        session.id = id;
        sessions.set(id, session);
      },
      onsessionclosed: (id) => {
        sessions.delete(id);
      },
      maxRequestBodySize: MAX_MCP_BODY_BYTES,
    });
    await server.connect(session.transport);
    return session;
  };

  /** Refuses an upgrade with a plain HTTP response carrying a JSON-RPC error (what the bridge relays). */
  const refuseUpgrade = (socket: Duplex, status: number, reason: string, message: string) => {
    const body = JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message }, id: null });
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  };

  return {
    get sessionCount() {
      return sessions.size;
    },
    get streamCount() {
      return streams.size;
    },
    /**
     * The stdio bridge's channel: `GET /mcp` with `Upgrade: aip-mcp-stdio` and
     * the MCP bearer token. The same boundary as every HTTP request (loopback
     * peer, Host, Origin), then the connection speaks MCP's stdio framing to a
     * server bound to that token; every message re-authenticates the token,
     * so revoking or expiring it takes effect on the next message.
     */
    handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
      socket.on('error', () => socket.destroy());
      const port = options.getPort();
      if (!isLoopbackAddress(request.socket.remoteAddress)) return refuseUpgrade(socket, 403, 'Forbidden', 'AIPermission only answers connections from this machine (loopback).');
      const path = (request.url ?? '').split('?')[0];
      if (path !== '/mcp' || request.method !== 'GET' || (request.headers.upgrade ?? '').toLowerCase() !== STREAM_UPGRADE_PROTOCOL) {
        return refuseUpgrade(socket, 400, 'Bad Request', `Only GET /mcp with "Upgrade: ${STREAM_UPGRADE_PROTOCOL}" is accepted (the aip mcp bridge).`);
      }
      if (!isGatewayHost(String(request.headers.host ?? ''), port)) return refuseUpgrade(socket, 403, 'Forbidden', `Host "${request.headers.host ?? ''}" is not this gateway.`);
      if (request.headers.origin !== undefined || request.headers['sec-fetch-site'] !== undefined) {
        // The bridge is not a browser; anything that says it is one is refused.
        return refuseUpgrade(socket, 403, 'Forbidden', 'Browsers may not open the bridge channel.');
      }
      const rawToken = bearerFrom(request.headers.authorization);
      if (!rawToken) return refuseUpgrade(socket, 401, 'Unauthorized', NO_TOKEN_MESSAGE);
      let auth;
      try {
        auth = kernel.authenticateToken(rawToken);
      } catch (error) {
        if (!isKernelError(error)) return refuseUpgrade(socket, 500, 'Internal Server Error', 'The gateway could not check the token; see its log.');
        return refuseUpgrade(socket, error.status, error.status === 401 ? 'Unauthorized' : 'Refused', error.message);
      }
      const owner = `${auth.workspace.name}/${auth.token.id}`;
      const mine = [...streams].filter((s) => s.owner === owner).sort((a, b) => a.opened - b.opened);
      while (mine.length >= MAX_SESSIONS_PER_TOKEN) mine.shift()!.socket.end();
      const stream = { owner, database: auth.workspace.name, socket, opened: kernel.clock.now() };
      streams.add(stream);
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${STREAM_UPGRADE_PROTOCOL}\r\nConnection: Upgrade\r\n\r\n`);
      if (head.length > 0) socket.unshift(head);
      (socket as Duplex & { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);

      const server = createServer();
      // A message larger than the HTTP body cap (plus one in flight) closes the connection.
      const transport = new StdioServerTransport(socket as Readable, socket as Writable, { maxBufferSize: MAX_MCP_BODY_BYTES * 2 });
      const authInfo = { token: rawToken, clientId: auth.token.id, scopes: [] as string[], extra: { database: auth.workspace.name } };
      let ended = false;
      const end = () => {
        if (ended) return;
        ended = true;
        streams.delete(stream);
        socket.end();
        // The transport paused the socket on close; read on so the peer's FIN
        // arrives, and never let a peer that does not hang up hold the socket.
        socket.resume();
        setTimeout(() => socket.destroy(), 2000).unref();
        void server.close().catch(() => undefined);
      };
      socket.once('close', end);
      transport.onclose = end;
      void server.connect(transport).then(() => {
        // The server reads the token from the message's extra info, as over HTTP.
        const deliver = transport.onmessage as unknown as (message: JSONRPCMessage, extra: { authInfo: typeof authInfo }) => void;
        transport.onmessage = (message: JSONRPCMessage) => {
          if (isJSONRPCRequest(message)) {
            try {
              kernel.authenticateToken(rawToken);
            } catch (error) {
              const text = isKernelError(error) ? error.message : 'The gateway could not check the token; see its log.';
              void transport.send({ jsonrpc: '2.0', id: message.id, error: { code: -32001, message: text } });
              return;
            }
          }
          deliver(message, { authInfo });
        };
      });
    },
    async handle(request: Request): Promise<Response> {
      const rawToken = bearerOf(request);
      if (!rawToken) {
        return jsonRpcError(401, -32001, NO_TOKEN_MESSAGE, {
          'www-authenticate': 'Bearer realm="aipermission"',
        });
      }
      let auth;
      try {
        auth = kernel.authenticateToken(rawToken);
      } catch (error) {
        if (!isKernelError(error)) throw error;
        const retry = error.details?.retryAfterSeconds;
        return jsonRpcError(error.status, -32001, error.message, {
          ...(error.status === 401 ? { 'www-authenticate': 'Bearer realm="aipermission", error="invalid_token"' } : {}),
          ...(typeof retry === 'number' ? { 'retry-after': String(retry) } : {}),
        });
      }
      const owner = `${auth.workspace.name}/${auth.token.id}`;
      const authInfo = { token: rawToken, clientId: auth.token.id, scopes: [], extra: { database: auth.workspace.name } };
      const sessionId = request.headers.get('mcp-session-id');
      if (sessionId) {
        const session = sessions.get(sessionId);
        if (!session) return jsonRpcError(404, -32001, 'Session not found: it ended (idle, locked database, or gateway restart). Initialize a new session.');
        if (session.owner !== owner) return jsonRpcError(403, -32001, 'This session belongs to another token.');
        session.lastUsed = kernel.clock.now();
        return session.transport.handleRequest(request, { authInfo });
      }
      if (request.method !== 'POST') return jsonRpcError(400, -32000, 'Send an initialize request first (POST), then use the Mcp-Session-Id it returns.');
      // A new session starts with initialize; read the body once to see that.
      const length = Number(request.headers.get('content-length') ?? '0');
      if (length > MAX_MCP_BODY_BYTES) return jsonRpcError(413, -32000, `The request body is over ${MAX_MCP_BODY_BYTES} bytes.`);
      let body: unknown;
      try {
        const text = await request.text();
        if (text.length > MAX_MCP_BODY_BYTES) return jsonRpcError(413, -32000, `The request body is over ${MAX_MCP_BODY_BYTES} bytes.`);
        body = JSON.parse(text);
      } catch {
        return jsonRpcError(400, -32700, 'The body is not valid JSON-RPC (JSON).');
      }
      const messages = Array.isArray(body) ? body : [body];
      if (!messages.some((message) => isInitializeRequest(message))) {
        return jsonRpcError(400, -32000, 'No session: send an initialize request first, then use the Mcp-Session-Id it returns.');
      }
      const session = await openSession(owner, auth.workspace.name);
      return session.transport.handleRequest(request, { authInfo, parsedBody: body });
    },
    async closeAll() {
      clearInterval(sweep);
      for (const session of [...sessions.values()]) close(session);
      for (const stream of [...streams]) stream.socket.destroy();
    },
  };
}

export type McpEndpoint = ReturnType<typeof createMcpEndpoint>;
export { KernelError };
