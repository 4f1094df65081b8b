import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import {
  CallToolRequestSchema,
  ErrorCode,
  ListToolsRequestSchema,
  isInitializeRequest,
  isJSONRPCRequest,
  type JSONRPCMessage,
  type JSONRPCRequest,
  type MessageExtraInfo,
} from '@modelcontextprotocol/sdk/types.js';
import { isGatewayHost, isLoopbackAddress } from '../lib/loopback.js';
import { isKernelError, KernelError } from '../lib/errors.js';
import type { Clock } from '../lib/clock.js';
import type { AgentPrincipal } from '../lib/principal.js';
import type { TokenAuthenticator } from '../tokens/index.js';
import { VERSION } from '../version.js';
import { NO_OAUTH_HINT } from './no-oauth.js';
import type { createTools } from './tools.js';
import { toCallToolResult } from './format.js';
import { MCP_INSTRUCTIONS } from './instructions.js';
import { STREAM_UPGRADE_PROTOCOL } from './constants.js';
import { checkMessage, errorMessage, parseError, readableId, type JsonRpcErrorMessage } from './jsonrpc.js';
import { paramsProblem } from './params.js';
import { readBodyWithin } from './read-body.js';
import { StreamTransport } from './stream-transport.js';
import { ByteBudget } from './byte-budget.js';

/** Sessions one token may hold; a client that opens more loses its least recently used one. */
export const MAX_SESSIONS_PER_TOKEN = 32;
/** A session unused this long is closed (the client re-initializes). */
export const SESSION_IDLE_MS = 30 * 60_000;
/** Largest MCP request body: the 1 MiB input cap plus JSON-RPC envelope. */
export const MAX_MCP_BODY_BYTES = 2 * 1024 * 1024;
/**
 * After a bridge's stdin ends, how long answers to its requests still in
 * flight may take before the gateway ends the connection. Under the bridge's
 * own wait, and well under the 2 s clients give a stdio server to exit.
 */
export const STREAM_DRAIN_MS = 1000;
/**
 * What all MCP messages still being read (HTTP bodies and bridge lines) may
 * hold in memory together: 16 requests at the 2 MiB cap. Real MCP messages
 * are a few KiB, so only a flood of large, slow messages ever meets it.
 */
export const MAX_BUFFERED_MCP_BYTES = 32 * 1024 * 1024;

/** What the MCP edge uses: the one authentication of a token, the tools behind it, and when a database locks. */
export interface McpEndpointDeps {
  tokens: Pick<TokenAuthenticator, 'authenticate' | 'current'>;
  tools: Pick<ReturnType<typeof createTools>, 'call' | 'tools'>;
  clock: Clock;
  onLocked(listener: (database: string) => void): void;
  getPort(): number;
}

/**
 * What the MCP SDK carries with each message: the principal the edge made.
 * (`token` is required by the SDK's type; it holds the token's id, never the token.)
 */
function authInfoOf(principal: AgentPrincipal) {
  return { token: principal.tokenId, clientId: principal.tokenId, scopes: [] as string[], extra: { principal } };
}

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
  return jsonRpcAnswer(status, errorMessage(null, code, message), headers);
}

function jsonRpcAnswer(status: number, body: JsonRpcErrorMessage | JsonRpcErrorMessage[], headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
}

/**
 * Wraps a connected transport's delivery to the server: each request passes
 * `refuse` first, and a refusal is answered at once through the same
 * transport (so over HTTP it goes to the request's own stream).
 */
function gateRequests(transport: Transport, refuse: (request: JSONRPCRequest) => { code: number; message: string } | undefined): void {
  const deliver = transport.onmessage!.bind(transport);
  transport.onmessage = (message: JSONRPCMessage, extra?: MessageExtraInfo) => {
    if (isJSONRPCRequest(message)) {
      const refusal = refuse(message);
      if (refusal) {
        void transport.send({ jsonrpc: '2.0', id: message.id, error: refusal }).catch(() => undefined);
        return;
      }
    }
    deliver(message, extra);
  };
}

/** JSON-RPC -32602 for params the SDK would answer with -32603 and a schema dump. */
function invalidParams(request: JSONRPCRequest): { code: number; message: string } | undefined {
  const problem = paramsProblem(request);
  return problem ? { code: ErrorCode.InvalidParams, message: problem } : undefined;
}

/** Whether a request carries a body (an answer sent before reading it all closes the connection). */
function hasBody(request: Request): boolean {
  return request.headers.has('transfer-encoding') || Number(request.headers.get('content-length') ?? '0') > 0;
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
 * The 401 challenge (RFC 6750). It carries the reason in error_description
 * and, on purpose, no resource_metadata: AIPermission has no OAuth, so a
 * client has nothing to discover and should report the failure as it is
 * (docs/mcp-clients.md lists what each client shows). error_description may
 * hold only %x20-21 / %x23-5B / %x5D-7E: quotes become ', anything else goes.
 */
function bearerChallenge(error: 'invalid_token' | undefined, description: string): string {
  const text = `${description} ${NO_OAUTH_HINT}`.replace(/"/g, "'").replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, '');
  return `Bearer realm="aipermission"${error ? `, error="${error}"` : ''}, error_description="${text}"`;
}

/**
 * The MCP endpoint (Streamable HTTP): every request authenticates with an
 * MCP bearer token; a session is created by `initialize` and stays bound to
 * the token that created it. One low-level MCP server per session, whose
 * tools call into the pipeline with the principal the edge made (never the token).
 */
export function createMcpEndpoint(deps: McpEndpointDeps) {
  const { tools, clock } = deps;
  const budget = new ByteBudget(MAX_BUFFERED_MCP_BYTES);
  const sessions = new Map<string, McpSession>();
  /** The stdio bridge's connections: one MCP server each, bound to its token. */
  const streams = new Set<{ owner: string; database: string; socket: Duplex; opened: number; end: () => void }>();

  const close = (session: McpSession) => {
    sessions.delete(session.id);
    void session.transport.close().catch(() => undefined);
  };
  deps.onLocked((name) => {
    for (const session of sessions.values()) if (session.database === name) close(session);
    for (const stream of [...streams]) if (stream.database === name) stream.end();
  });
  const sweep = setInterval(() => {
    const now = clock.now();
    for (const session of sessions.values()) if (now - session.lastUsed > SESSION_IDLE_MS) close(session);
  }, 60_000);
  sweep.unref();

  const createServer = () => {
    const server = new Server({ name: 'aipermission', version: VERSION }, { capabilities: { tools: {} }, instructions: MCP_INSTRUCTIONS });
    server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: tools.tools }));
    server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
      // Every message carries the principal its token was authenticated as (HTTP: this request's; stream: the connection's).
      const principal = extra.authInfo?.extra?.principal as AgentPrincipal | undefined;
      if (!principal) throw new Error('no principal on this request');
      const progressToken = request.params._meta?.progressToken;
      let progress = 0;
      const answer = await tools.call(request.params.name, request.params.arguments, {
        principal,
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
    // The transport's callbacks run only once a request arrives, after the session below exists.
    const transport = new WebStandardStreamableHTTPServerTransport({
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
    const session: McpSession = { id: '', transport, server, owner, database, lastUsed: clock.now() };
    await server.connect(session.transport);
    gateRequests(session.transport, invalidParams);
    return session;
  };

  /**
   * Reads and checks a POST body the gateway's way (cap enforced while it
   * streams, -32700 for bad JSON, -32600 for what is not JSON-RPC), so the
   * SDK transport only ever gets a parsed, well-formed body.
   */
  const readMessages = async (request: Request, read: { whole: boolean }): Promise<{ body: unknown; messages: JSONRPCMessage[] } | { refused: Response }> => {
    const outcome = await readBodyWithin(request, MAX_MCP_BODY_BYTES, budget);
    if ('tooLarge' in outcome) {
      return { refused: jsonRpcError(413, -32000, `The request body is over ${MAX_MCP_BODY_BYTES} bytes (the MCP request cap); send a smaller request.`) };
    }
    if ('aborted' in outcome) return { refused: jsonRpcError(400, -32000, 'The request body ended before it was complete.') };
    if ('busy' in outcome) {
      return { refused: jsonRpcError(503, -32000, 'The gateway is reading too many large requests at once; retry in a moment.', { 'retry-after': '1' }) };
    }
    read.whole = true;
    let body: unknown;
    try {
      body = JSON.parse(outcome.text);
    } catch {
      return { refused: jsonRpcAnswer(400, parseError('the body is not valid JSON.')) };
    }
    if (Array.isArray(body) && body.length === 0) {
      return { refused: jsonRpcAnswer(400, errorMessage(null, ErrorCode.InvalidRequest, 'Invalid Request: an empty batch; send a JSON-RPC message (an object).')) };
    }
    const checked = (Array.isArray(body) ? body : [body]).map(checkMessage);
    const errors = checked.flatMap((c) => ('error' in c ? [c.error] : []));
    if (errors.length > 0) {
      // A well-formed request with bad params is answered like any JSON-RPC
      // error (HTTP 200, so the client matches it to its request); framing
      // errors are HTTP 400, as the SDK answers them. A batch with an invalid
      // member is refused whole, with one error per invalid member.
      if (!Array.isArray(body) && errors[0]!.error.code === ErrorCode.InvalidParams) return { refused: jsonRpcAnswer(200, errors[0]!) };
      return { refused: jsonRpcAnswer(400, Array.isArray(body) ? errors : errors[0]!) };
    }
    return { body, messages: checked.flatMap((c) => ('message' in c ? [c.message] : [])) };
  };

  const answer = async (request: Request, read: { whole: boolean }): Promise<Response> => {
    const rawToken = bearerOf(request);
    if (!rawToken) {
      return jsonRpcError(401, -32001, NO_TOKEN_MESSAGE, { 'www-authenticate': bearerChallenge(undefined, NO_TOKEN_MESSAGE) });
    }
    let principal: AgentPrincipal;
    try {
      principal = deps.tokens.authenticate(rawToken);
    } catch (error) {
      if (!isKernelError(error)) throw error;
      const retry = error.details?.retryAfterSeconds;
      return jsonRpcError(error.status, -32001, error.message, {
        ...(error.status === 401 ? { 'www-authenticate': bearerChallenge('invalid_token', error.message) } : {}),
        ...(typeof retry === 'number' ? { 'retry-after': String(retry) } : {}),
      });
    }
    const owner = `${principal.database}/${principal.tokenId}`;
    const authInfo = authInfoOf(principal);
    const sessionId = request.headers.get('mcp-session-id');
    let session: McpSession | undefined;
    if (sessionId) {
      session = sessions.get(sessionId);
      if (!session) return jsonRpcError(404, -32001, 'Session not found: it ended (idle, locked database, or gateway restart). Initialize a new session.');
      if (session.owner !== owner) return jsonRpcError(403, -32001, 'This session belongs to another token.');
      session.lastUsed = clock.now();
      // GET (the server's event stream) and DELETE (end the session) carry no body.
      if (request.method !== 'POST') return session.transport.handleRequest(request, { authInfo });
    } else if (request.method !== 'POST') {
      return jsonRpcError(400, -32000, 'Send an initialize request first (POST), then use the Mcp-Session-Id it returns.');
    }
    // What the SDK checks before it reads a body, checked here before reading ours (same answers).
    const accept = request.headers.get('accept') ?? '';
    if (!accept.includes('application/json') || !accept.includes('text/event-stream')) {
      return jsonRpcError(406, -32000, 'Not Acceptable: Client must accept both application/json and text/event-stream');
    }
    if ((request.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase() !== 'application/json') {
      return jsonRpcError(415, -32000, 'Unsupported Media Type: Content-Type must be application/json');
    }
    const parsed = await readMessages(request, read);
    if ('refused' in parsed) return parsed.refused;
    if (!session) {
      // A new session starts with initialize; one with bad params is told what is wrong (-32602), not "send initialize".
      const init = parsed.messages.find((message) => isJSONRPCRequest(message) && message.method === 'initialize') as JSONRPCRequest | undefined;
      const problem = init && paramsProblem(init);
      if (init && problem) return jsonRpcAnswer(200, errorMessage(readableId(init), ErrorCode.InvalidParams, problem));
      if (!parsed.messages.some((message) => isInitializeRequest(message))) {
        return jsonRpcError(400, -32000, 'No session: send an initialize request first, then use the Mcp-Session-Id it returns.');
      }
      session = await openSession(owner, principal.database);
    }
    return session.transport.handleRequest(request, { authInfo, parsedBody: parsed.body });
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
      const port = deps.getPort();
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
      let principal: AgentPrincipal;
      try {
        principal = deps.tokens.authenticate(rawToken);
      } catch (error) {
        if (!isKernelError(error)) return refuseUpgrade(socket, 500, 'Internal Server Error', 'The gateway could not check the token; see its log.');
        return refuseUpgrade(socket, error.status, error.status === 401 ? 'Unauthorized' : 'Refused', error.message);
      }
      const owner = `${principal.database}/${principal.tokenId}`;
      const mine = [...streams].filter((s) => s.owner === owner).sort((a, b) => a.opened - b.opened);
      while (mine.length >= MAX_SESSIONS_PER_TOKEN) mine.shift()!.end();
      const stream = { owner, database: principal.database, socket, opened: clock.now(), end: () => void socket.end() };
      streams.add(stream);
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${STREAM_UPGRADE_PROTOCOL}\r\nConnection: Upgrade\r\n\r\n`);
      if (head.length > 0) socket.unshift(head);
      (socket as Duplex & { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);

      const server = createServer();
      // A message larger than the HTTP body cap (plus one in flight) closes the connection.
      const transport = new StreamTransport(socket, { maxLineBytes: MAX_MCP_BODY_BYTES * 2, drainMs: STREAM_DRAIN_MS, budget });
      const authInfo = authInfoOf(principal);
      // The transport ends the connection (the peer half-closed or went, an overflow, close()); the session goes with it.
      // (server.connect chains this with the server's own onclose.)
      transport.onclose = () => {
        streams.delete(stream);
        void server.close().catch(() => undefined);
      };
      stream.end = () => void transport.close();
      void server.connect(transport).then(() => {
        // The server reads the principal from the message's extra info, as over HTTP.
        const deliver = transport.onmessage!.bind(transport) as (message: JSONRPCMessage, extra: { authInfo: typeof authInfo }) => void;
        transport.onmessage = (message: JSONRPCMessage) => deliver(message, { authInfo });
        gateRequests(transport, (message) => {
          // Every request re-checks the connection's principal: a token revoked or expired since takes effect at once.
          try {
            deps.tokens.current(principal);
          } catch (error) {
            return { code: -32001, message: isKernelError(error) ? error.message : 'The gateway could not check the token; see its log.' };
          }
          return invalidParams(message);
        });
      });
    },
    async handle(request: Request): Promise<Response> {
      const read = { whole: false };
      const response = await answer(request, read);
      // An answer given before the whole body was read (refused early, or
      // over the cap) ends the connection: the rest is never read or drained.
      if (hasBody(request) && !read.whole) response.headers.set('connection', 'close');
      return response;
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
