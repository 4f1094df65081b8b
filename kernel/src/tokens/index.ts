/**
 * tokens — MCP bearer tokens: `aip_` + 32 random bytes, stored as SHA-256
 * with a display prefix, shown once, optional expiry, revocable, compared in
 * constant time. Cross-database authentication (and its rate limit) lives in
 * the kernel, which sees every unlocked database.
 */
export { createTokenStore, hashToken, tokenState, tokenRefusal, tokenProblem, TOKEN_PATTERN, TOKEN_FORMAT } from './tokens.js';
export type { TokenStore, TokenRecord, TokenState } from './tokens.js';
