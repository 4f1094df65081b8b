import { ErrorCode, JSONRPCMessageSchema, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { metaProblem } from './params.js';

/**
 * JSON-RPC 2.0 framing checks the gateway owns on both MCP channels (HTTP and
 * the bridge's stream), so a malformed message gets the error JSON-RPC
 * requires instead of silence or a misleading code: -32700 when the text is
 * not JSON, -32600 when the JSON is not a JSON-RPC message, -32602 for a
 * request whose params break MCP's common fields, with the message's id
 * when one can be read and `null` otherwise.
 * Kept free of the server so the CLI bridge uses the same answers.
 */

export interface JsonRpcErrorMessage {
  jsonrpc: '2.0';
  id: string | number | null;
  error: { code: number; message: string };
}

export function errorMessage(id: string | number | null, code: number, message: string): JsonRpcErrorMessage {
  return { jsonrpc: '2.0', id, error: { code, message } };
}

/** The id of something that looks like a request (a string or integer id), else null. */
export function readableId(value: unknown): string | number | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const id = (value as { id?: unknown }).id;
  return typeof id === 'string' || (typeof id === 'number' && Number.isInteger(id)) ? id : null;
}

/** Why a parsed JSON value is not one JSON-RPC 2.0 message (its structure), in words a client developer can act on; undefined when the structure is fine. */
function structureProblem(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'a JSON-RPC message is a JSON object.';
  const message = value as Record<string, unknown>;
  if (message.jsonrpc !== '2.0') return 'the "jsonrpc" member must be the string "2.0".';
  if ('id' in message && !(typeof message.id === 'string' || (typeof message.id === 'number' && Number.isInteger(message.id)))) {
    return 'the "id" member must be a string or an integer.';
  }
  if ('method' in message) {
    if (typeof message.method !== 'string') return 'the "method" member must be a string.';
    if ('params' in message && (message.params === null || typeof message.params !== 'object' || Array.isArray(message.params))) {
      return 'the "params" member must be an object.';
    }
    const extra = Object.keys(message).filter((key) => !['jsonrpc', 'id', 'method', 'params'].includes(key));
    if (extra.length > 0) return `unknown member(s) ${extra.map((key) => `"${key.slice(0, 40)}"`).join(', ')}; a request has jsonrpc, id, method and params.`;
    return undefined;
  }
  if (!('result' in message) && !('error' in message)) return 'it has no "method" (a request or notification) and no "result" or "error" (a response).';
  return undefined;
}

function firstIssue(value: unknown): string {
  const parsed = JSONRPCMessageSchema.safeParse(value);
  const issue = parsed.success ? undefined : parsed.error.issues[0];
  return issue ? `${issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''}${issue.message}.` : 'it does not match any JSON-RPC message shape.';
}

/**
 * One parsed JSON value as a JSON-RPC message, or the error to answer it
 * with: -32600 when its JSON-RPC structure is wrong; -32602 for a request
 * whose structure is right but whose params break MCP's common fields
 * (`_meta`), which the SDK checks as part of the message.
 */
export function checkMessage(value: unknown): { message: JSONRPCMessage } | { error: JsonRpcErrorMessage } {
  const parsed = JSONRPCMessageSchema.safeParse(value);
  if (parsed.success) return { message: parsed.data };
  const id = readableId(value);
  const structure = structureProblem(value);
  if (structure) return { error: errorMessage(id, ErrorCode.InvalidRequest, `Invalid Request: ${structure}`) };
  const message = value as { method?: string; params?: Record<string, unknown> };
  if (typeof message.method === 'string' && id !== null) {
    const problem = metaProblem(message.params ?? {}) ?? firstIssue(value);
    return { error: errorMessage(id, ErrorCode.InvalidParams, `Invalid params for ${message.method.slice(0, 100)}: ${problem}`) };
  }
  return { error: errorMessage(id, ErrorCode.InvalidRequest, `Invalid Request: ${firstIssue(value)}`) };
}

/** The -32700 answer to text that is not JSON. */
export function parseError(detail = 'the message is not valid JSON.'): JsonRpcErrorMessage {
  return errorMessage(null, ErrorCode.ParseError, `Parse error: ${detail}`);
}

/**
 * Parses one line of the stdio framing: a single JSON-RPC message, or the
 * error to send back. Batches (a JSON array) are not part of the stdio
 * framing the SDK speaks, and MCP 2025-06-18 removed them: refused with -32600.
 */
export function parseLine(line: string): { message: JSONRPCMessage } | { error: JsonRpcErrorMessage } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { error: parseError() };
  }
  if (Array.isArray(value)) {
    return { error: errorMessage(null, ErrorCode.InvalidRequest, 'Invalid Request: batches (JSON arrays) are not supported on this channel; send one message per line.') };
  }
  return checkMessage(value);
}
