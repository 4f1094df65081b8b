/**
 * The `Upgrade` protocol of the stdio bridge's channel (GET /mcp): after the
 * 101 the connection carries MCP exactly as stdio does (newline-delimited
 * JSON-RPC), so the bridge relays bytes and never parses or re-frames a message.
 * Kept apart from the endpoint so the CLI imports it without the server.
 */
export const STREAM_UPGRADE_PROTOCOL = 'aip-mcp-stdio';
