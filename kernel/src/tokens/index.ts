/**
 * tokens — MCP bearer tokens: `aip_` + 32 random bytes, stored as SHA-256
 * with a display prefix, shown once, optional expiry, revocable, compared in
 * constant time. The edge's one authentication (across every unlocked
 * database, rate-limited) turns a token into a principal: authenticate.ts.
 */
export { createTokenStore, hashToken, tokenState, tokenRefusal, tokenProblem, TOKEN_PATTERN, TOKEN_FORMAT } from './tokens.js';
export type { TokenStore, TokenRecord, TokenState } from './tokens.js';
export { createTokenAuthenticator } from './authenticate.js';
export type { TokenAuthenticator, UnlockedTokenStores } from './authenticate.js';
