/**
 * http — the hono app on @hono/node-server: loopback-only bind and peers,
 * Host/Origin checks against DNS rebinding, HttpOnly SameSite=Strict session
 * cookie with CSRF double submit (invariant 7), JSON-only REST routes and the
 * SSE event stream. The API is documented in docs/api.md.
 */
export { createHttpApp, DEFAULT_BODY_LIMIT_BYTES } from './app.js';
export type { HttpAppOptions } from './app.js';
export { listenOnLoopback, loopbackBindAddress } from './server.js';
export type { RunningServer } from './server.js';
export { createSessionStore, SESSION_IDLE_MS } from './sessions.js';
export type { SessionStore, Session } from './sessions.js';
export { isLoopbackAddress, allowedHosts, SESSION_COOKIE, CSRF_COOKIE, CSRF_HEADER } from './boundary.js';
