/**
 * http — the hono app on @hono/node-server: loopback-only bind and peers,
 * Host/Origin checks against DNS rebinding, HttpOnly SameSite=Strict session
 * cookie with CSRF double submit (invariant 7), JSON-only REST routes and the
 * SSE event stream. The API is documented in docs/api.md.
 */
export { createHttpApp, DEFAULT_BODY_LIMIT_BYTES } from './app.js';
export type { HttpAppOptions, HttpDeps, AppDeps } from './app.js';
export type { PerDatabase, DatabaseGuard, DatabaseLifecycle, ApprovalsRunner, ConnectionChecks } from './deps.js';
export type { SystemRouteDeps } from './routes/system.js';
export type { ConfigRouteDeps } from './routes/config.js';
export type { TargetRouteDeps } from './routes/targets.js';
export type { TokenRouteDeps } from './routes/tokens.js';
export type { RequestRouteDeps } from './routes/requests.js';
export type { EventRouteDeps } from './routes/events.js';
export type { PluginRouteDeps, PluginRouteHost } from './routes/plugins.js';
export { listenOnLoopback, loopbackBindAddress } from './server.js';
export type { RunningServer } from './server.js';
export { createSessionStore, SESSION_IDLE_MS } from './sessions.js';
export type { SessionStore, Session } from './sessions.js';
export { isLoopbackAddress, allowedHosts, SESSION_COOKIE, CSRF_COOKIE, CSRF_HEADER } from './boundary.js';
