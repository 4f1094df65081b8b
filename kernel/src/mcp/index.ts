/**
 * mcp — the agent's surface: MCP tools over Streamable HTTP at /mcp
 * (bearer MCP tokens only), and the stdio bridge in the CLI (`aip mcp`).
 */
export { createMcpEndpoint, bearerOf, MAX_SESSIONS_PER_TOKEN } from './endpoint.js';
export type { McpEndpoint, McpEndpointDeps } from './endpoint.js';
export { createMcp } from './wire.js';
export { createTools } from './tools.js';
export type { ToolsDatabase, ToolsDeps } from './tools.js';
export { TOOLS, CALL_WAIT_MS } from './tools.js';
export { MCP_INSTRUCTIONS } from './instructions.js';
export { STREAM_UPGRADE_PROTOCOL } from './constants.js';
export { parseLine } from './jsonrpc.js';
export { NO_OAUTH_HINT, OAUTH_METADATA_DOCUMENTS } from './no-oauth.js';
