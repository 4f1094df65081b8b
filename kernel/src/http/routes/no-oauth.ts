import { Hono } from 'hono';
import type { HttpEnv } from '../context.js';
import { NO_OAUTH_HINT, OAUTH_METADATA_DOCUMENTS } from '../../mcp/index.js';

/**
 * Answers on the paths MCP clients probe for OAuth (per the MCP authorization
 * spec and its fallbacks), so a bad or missing token ends in a plain
 * authentication failure that says what to do, not an OAuth error:
 * - the discovery documents are 404 (there is no authorization server), with
 *   the reason in the body, also under the path-aware forms (`.../mcp`);
 * - `/register` refuses as RFC 7591 §3.2.2 says (400 `invalid_client_metadata`),
 *   which clients surface with its error_description;
 * - `/authorize` and `/token` refuse with RFC 6749 errors.
 * Nothing here reads a body. The boundary middleware (loopback peers, Host,
 * Origin) runs in front of these as of every other path (invariant 7).
 */
export function noOAuthRoutes(): Hono<HttpEnv> {
  const app = new Hono<HttpEnv>();
  const refusal = (error: string) => ({ error, error_description: NO_OAUTH_HINT });
  for (const document of OAUTH_METADATA_DOCUMENTS) {
    for (const path of [`/.well-known/${document}`, `/.well-known/${document}/*`, `/mcp/.well-known/${document}`]) {
      app.all(path, (c) => c.json(refusal('oauth_not_supported'), 404));
    }
  }
  app.all('/register', (c) => c.json(refusal('invalid_client_metadata'), 400));
  app.all('/authorize', (c) => c.json(refusal('invalid_request'), 400));
  app.all('/token', (c) => c.json(refusal('unsupported_grant_type'), 400));
  return app;
}
