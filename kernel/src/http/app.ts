import { storageRefusal } from '../lib/storage-errors.js';
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { isKernelError, KernelError } from '../lib/errors.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { HttpEnv } from './context.js';
import { hostAndOriginCheck, jsonOnly, loopbackPeersOnly, securityHeaders, sessionAndCsrf } from './boundary.js';
import { createSessionStore, type SessionStore } from './sessions.js';
import { systemRoutes, IMPORT_MAX_BYTES, type SystemRouteDeps } from './routes/system.js';
import { configRoutes, type ConfigRouteDeps } from './routes/config.js';
import { targetRoutes, type TargetRouteDeps } from './routes/targets.js';
import { tokenRoutes, type TokenRouteDeps } from './routes/tokens.js';
import { requestRoutes, type RequestRouteDeps } from './routes/requests.js';
import { eventRoutes, type EventRouteDeps } from './routes/events.js';
import { pluginRoutes, type PluginRouteDeps } from './routes/plugins.js';
import { sshRoutes, type SshRouteDeps } from './routes/ssh.js';
import { noOAuthRoutes } from './routes/no-oauth.js';
import { defaultUiDir, uiRoutes } from './routes/ui.js';
import type { McpEndpoint } from '../mcp/index.js';

/** 256 KiB: every operator request is a small JSON document (a target config, a grant, a note). */
export const DEFAULT_BODY_LIMIT_BYTES = 256 * 1024;

/** What the app itself uses, next to its route groups: the sessions' clock, the lock notice, the error log and the MCP endpoint. */
export interface AppDeps {
  clock: Clock;
  /** Sessions lose a database when it is locked. */
  onLocked(listener: (name: string) => void): void;
  log: Logger;
  /** Builds the MCP endpoint (bearer MCP tokens only) served at /mcp. */
  mcpEndpoint(options: { getPort: () => number }): McpEndpoint;
}

/**
 * Everything the HTTP app depends on: the union of what its route groups
 * declare (each group is handed only its own part, see createHttpApp).
 * ../wiring.ts (the composition root) builds it from the kernel's modules.
 */
export type HttpDeps = AppDeps &
  Omit<SystemRouteDeps, 'sessions' | 'version'> &
  ConfigRouteDeps &
  TargetRouteDeps &
  TokenRouteDeps &
  RequestRouteDeps &
  Omit<EventRouteDeps, 'sessions'> &
  PluginRouteDeps &
  SshRouteDeps;

export interface HttpAppOptions {
  deps: HttpDeps;
  /** The port actually listened on (known only after listen when 0 was asked for). */
  getPort: () => number;
  version: string;
  sessions?: SessionStore;
  /** The built web UI to serve at `/` (default: the repository's ui/dist). */
  uiDir?: string;
}

function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

/**
 * The hono app: boundary middleware (loopback peers, Host/Origin, security
 * headers, JSON only, body caps, session + CSRF) in front of the REST routes.
 * Errors leave as `{"error": {"code", "message"}}`, never a stack trace.
 */
export function createHttpApp(options: HttpAppOptions): { app: Hono<HttpEnv>; sessions: SessionStore; mcp: McpEndpoint } {
  const { deps } = options;
  const sessions = options.sessions ?? createSessionStore(deps.clock);
  deps.onLocked((name) => sessions.dropDatabase(name));
  const app = new Hono<HttpEnv>();

  app.use('*', securityHeaders());
  app.use('*', loopbackPeersOnly());
  app.use('*', hostAndOriginCheck(options.getPort));
  app.use('/api/*', jsonOnly());
  const tooLarge = (limit: number) => () => {
    throw new KernelError('body_too_large', `The body is larger than this route accepts (${limit} bytes).`, { status: 413 });
  };
  app.use('/api/databases/import', bodyLimit({ maxSize: IMPORT_MAX_BYTES + 4096, onError: tooLarge(IMPORT_MAX_BYTES) }));
  app.use('/api/*', async (c, next) => {
    if (c.req.path === '/api/databases/import') return next();
    return bodyLimit({ maxSize: DEFAULT_BODY_LIMIT_BYTES, onError: tooLarge(DEFAULT_BODY_LIMIT_BYTES) })(c, next);
  });
  app.use('/api/*', sessionAndCsrf(sessions));

  // Each group gets its own part of the deps, by name, so who uses what is read here.
  const { databases, clock } = deps;
  app.route(
    '/api',
    systemRoutes({ databases, lifecycle: deps.lifecycle, mcpSwitch: deps.mcpSwitch, audit: deps.audit, sessions, clock, dataDir: deps.dataDir, version: options.version }),
  );
  app.route('/api', configRoutes({ databases, settings: deps.settings, mcpSwitch: deps.mcpSwitch, redaction: deps.redaction, catalog: deps.catalog }));
  app.route('/api', targetRoutes({ databases, targets: deps.targets }));
  app.route('/api', tokenRoutes({ databases, clock, tokens: deps.tokens, grants: deps.grants }));
  app.route(
    '/api',
    requestRoutes({ databases, approvals: deps.approvals, runner: deps.runner, audit: deps.audit, messages: deps.messages, tokens: deps.tokens }),
  );
  app.route('/api', eventRoutes({ databases, events: deps.events, sessions }));
  app.route(
    '/api',
    pluginRoutes({
      databases,
      plugins: deps.plugins,
      pluginApprovals: deps.pluginApprovals,
      settings: deps.settings,
      approvals: deps.approvals,
      connectionChecks: deps.connectionChecks,
    }),
  );

  // The MCP endpoint: bearer MCP tokens only (no cookie, no CSRF: an operator
  // session never works here, and an MCP token never works on /api). Host and
  // Origin were checked above, as the MCP spec requires against DNS rebinding.
  const mcp = deps.mcpEndpoint({ getPort: options.getPort });
  app.all('/mcp', (c) => mcp.handle(c.req.raw));
  // The OAuth paths MCP clients probe after a 401: answered so they report the real cause (no OAuth here).
  app.route('/api', sshRoutes({ databases, sshKeys: deps.sshKeys, hostKeys: deps.hostKeys, scanHostKey: deps.scanHostKey }));
  app.route('/', noOAuthRoutes());

  // The web UI on the same origin (after /api and /mcp, which keep their own answers).
  app.route('/', uiRoutes({ uiDir: options.uiDir ?? defaultUiDir(), version: options.version }));

  app.notFound((c) => c.json(errorBody('not_found', `No route for ${c.req.method} ${c.req.path}. See docs/api.md.`), 404));

  app.onError((error, c) => {
    // Any error on a request that carries a body ends the connection: it may
    // come before the body was read in full (refused early, or over its cap),
    // and the rest must never be read or drained (invariant 8: a flood costs
    // at most the cap).
    if (c.req.header('transfer-encoding') !== undefined || Number(c.req.header('content-length') ?? '0') > 0) c.header('Connection', 'close');
    if (isKernelError(error)) {
      if (error.status === 429 && typeof error.details?.retryAfterSeconds === 'number') c.header('Retry-After', String(error.details.retryAfterSeconds));
      return c.json(errorBody(error.code, error.message), error.status as 400);
    }
    if (error instanceof HTTPException) {
      const status = error.status;
      return c.json(errorBody(status === 413 ? 'body_too_large' : 'http_error', error.message || 'The request could not be handled.'), status);
    }
    // A full disk or an unwritable file is named as such, with what to do (the change was rolled back).
    const storage = storageRefusal(error);
    deps.log(`${storage ? `${storage.code}` : 'unexpected error'} on ${c.req.method} ${c.req.path}`, error);
    if (storage) return c.json(errorBody(storage.code, storage.message), storage.status as 503);
    return c.json(errorBody('internal_error', 'Something went wrong inside the gateway; the details are in its log.'), 500);
  });

  return { app, sessions, mcp };
}
