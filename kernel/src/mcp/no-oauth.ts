/**
 * AIPermission authenticates MCP clients with static bearer tokens (one per
 * agent, made by the operator), never OAuth. Clients that meet a 401 often
 * start OAuth discovery and registration and then report an OAuth error
 * ("Dynamic Client Registration rejected", "Interactive OAuth requires a
 * TTY") instead of the real cause; every answer on the OAuth paths and every
 * 401 challenge carries this text so the client shows it.
 */
export const NO_OAUTH_HINT =
  'AIPermission does not use OAuth: an MCP client sends a static MCP token in the "Authorization: Bearer aip_..." header. ' +
  'Ask your operator for a token (aip token create) and put it in the client\'s config (aip mcp init writes it).';

/** The OAuth discovery documents clients probe (RFC 9728, RFC 8414, OpenID Connect Discovery). */
export const OAUTH_METADATA_DOCUMENTS = ['oauth-protected-resource', 'oauth-authorization-server', 'openid-configuration'] as const;
