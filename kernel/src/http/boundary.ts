import type { MiddlewareHandler } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import { randomBytes } from 'node:crypto';
import { KernelError } from '../lib/errors.js';
import { safeEqual, type SessionStore } from './sessions.js';
import type { HttpEnv } from './context.js';
import { isGatewayHost, isLoopbackAddress } from '../lib/loopback.js';

export { allowedHosts, isGatewayHost, isLoopbackAddress } from '../lib/loopback.js';

/**
 * Invariant 7: only this machine may talk to the gateway. The bind address
 * already keeps the network out; this refuses any non-loopback peer that
 * reaches it anyway, and fails closed when the peer is unknown.
 */
export function loopbackPeersOnly(): MiddlewareHandler<HttpEnv> {
  return async function loopbackPeersOnly(c, next) {
    const address = c.env?.incoming?.socket?.remoteAddress;
    if (!isLoopbackAddress(address)) {
      throw new KernelError('non_loopback_peer', 'AIPermission only answers connections from this machine (loopback).', { status: 403 });
    }
    await next();
  };
}

/**
 * Invariant 7 against DNS rebinding: a page on evil.example that re-points
 * its name to 127.0.0.1 still sends `Host: evil.example`, and a page of any
 * other origin sends its Origin. Both are refused before any route runs.
 */
export function hostAndOriginCheck(getPort: () => number): MiddlewareHandler<HttpEnv> {
  return async function hostAndOriginCheck(c, next) {
    const port = getPort();
    const host = c.req.header('host') ?? new URL(c.req.url).host;
    if (!isGatewayHost(host, port)) {
      throw new KernelError('bad_host', `Host "${host}" is not this gateway. Use http://127.0.0.1:${port}/.`, { status: 403 });
    }
    const origin = c.req.header('origin');
    if (origin !== undefined) {
      let originHost: string | undefined;
      try {
        const url = new URL(origin);
        originHost = url.protocol === 'http:' ? url.host : undefined;
      } catch {
        originHost = undefined;
      }
      if (!originHost || !isGatewayHost(originHost, port)) {
        throw new KernelError('bad_origin', `Requests from origin "${origin}" are not accepted; only the gateway's own pages may call it.`, { status: 403 });
      }
    }
    // Browsers that send Fetch Metadata tell us directly when a request is cross-site.
    if (c.req.header('sec-fetch-site') === 'cross-site') {
      throw new KernelError('bad_origin', 'Cross-site requests are not accepted.', { status: 403 });
    }
    await next();
  };
}

export function securityHeaders(): MiddlewareHandler<HttpEnv> {
  return async function securityHeaders(c, next) {
    await next();
    c.header('X-Content-Type-Options', 'nosniff');
    c.header('X-Frame-Options', 'DENY');
    c.header('Referrer-Policy', 'no-referrer');
    c.header('Cross-Origin-Resource-Policy', 'same-origin');
    c.header('Cross-Origin-Opener-Policy', 'same-origin');
    // The UI's files set their own cache and CSP (routes/ui.ts: hashed assets
    // cached long, index.html revalidated); everything else is never cached
    // and may load nothing.
    if (c.req.path.startsWith('/api/') || !c.res.headers.has('Cache-Control')) c.header('Cache-Control', 'no-store');
    if (c.req.path.startsWith('/api/') || !c.res.headers.has('Content-Security-Policy')) {
      c.header('Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'");
    }
  };
}

export const SESSION_COOKIE = 'aip_session';
export const CSRF_COOKIE = 'aip_csrf';
export const CSRF_HEADER = 'x-csrf-token';
const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Sets the session and CSRF cookies (HttpOnly only for the session; the UI must read the CSRF value). */
export function setSessionCookies(c: Parameters<MiddlewareHandler<HttpEnv>>[0], secret: string, csrf: string): void {
  // No `Secure`: the gateway speaks plain HTTP on loopback, where browsers would drop a Secure cookie.
  setCookie(c, SESSION_COOKIE, secret, { httpOnly: true, sameSite: 'Strict', path: '/' });
  setCookie(c, CSRF_COOKIE, csrf, { httpOnly: false, sameSite: 'Strict', path: '/' });
}

/**
 * Loads the operator session and enforces CSRF (double submit) on every
 * mutating request: the X-CSRF-Token header must equal the aip_csrf cookie,
 * and once a session exists, the session's own token. Requests that carry no
 * CSRF cookie yet get one on any GET (GET /api/status is the usual first call).
 */
export function sessionAndCsrf(sessions: SessionStore): MiddlewareHandler<HttpEnv> {
  return async function sessionAndCsrf(c, next) {
    const session = sessions.get(getCookie(c, SESSION_COOKIE));
    c.set('session', session);
    const cookieCsrf = getCookie(c, CSRF_COOKIE);
    if (MUTATING.has(c.req.method)) {
      const header = c.req.header(CSRF_HEADER);
      const expected = session?.csrf ?? cookieCsrf;
      if (!header || !cookieCsrf || !expected || !safeEqual(header, cookieCsrf) || !safeEqual(header, expected)) {
        throw new KernelError(
          'csrf_failed',
          'Missing or wrong CSRF token: send the value of the aip_csrf cookie in the X-CSRF-Token header (GET /api/status sets the cookie).',
          { status: 403 },
        );
      }
      // Stopping things, leaving and proving a password need no record first; every change waits for the session's own start to be recorded.
      if (session && session.unrecorded.size > 0 && !/\/(lock|logout|session|unlock)$/.test(c.req.path)) {
        throw new KernelError(
          'disk_full',
          'This session could not be recorded in the audit log yet (the disk that holds the data directory is full), so it can read but not change anything. Free some space there: the session is recorded within a second, then try again.',
          { status: 507 },
        );
      }
    } else if (!cookieCsrf && !session) {
      setCookie(c, CSRF_COOKIE, randomBytes(32).toString('base64url'), { httpOnly: false, sameSite: 'Strict', path: '/' });
    }
    await next();
  };
}

/** JSON only: a mutating request with a body must say it is JSON (this also rules out HTML form posts). */
export function jsonOnly(): MiddlewareHandler<HttpEnv> {
  return async function jsonOnly(c, next) {
    if (MUTATING.has(c.req.method)) {
      const length = c.req.header('content-length');
      const hasBody = (length !== undefined && length !== '0') || c.req.header('transfer-encoding') !== undefined;
      const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
      if (hasBody && type !== 'application/json') {
        throw new KernelError('unsupported_media_type', 'Send the body as JSON with Content-Type: application/json.', { status: 415 });
      }
    }
    await next();
  };
}
