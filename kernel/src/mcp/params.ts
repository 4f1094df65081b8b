import {
  CallToolRequestSchema,
  InitializeRequestSchema,
  ListToolsRequestSchema,
  PingRequestSchema,
  type JSONRPCRequest,
} from '@modelcontextprotocol/sdk/types.js';

/**
 * Params checks for the requests this server answers, run before the SDK's
 * own parse: the SDK answers a request whose params fail its schema with
 * -32603 (Internal error) and a raw schema dump; JSON-RPC says -32602
 * (Invalid params), and the client deserves a sentence it can act on.
 */

const SCHEMAS = {
  initialize: InitializeRequestSchema,
  ping: PingRequestSchema,
  'tools/list': ListToolsRequestSchema,
  'tools/call': CallToolRequestSchema,
} as const;

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

/** What is wrong with `_meta` (MCP's common request field) when it is there, in words. */
export function metaProblem(params: Record<string, unknown>): string | undefined {
  if (!('_meta' in params)) return undefined;
  const meta = params._meta;
  if (!isObject(meta)) return `params._meta must be an object (it is ${kindOf(meta)}).`;
  const token = meta.progressToken;
  if (token !== undefined && typeof token !== 'string' && !(typeof token === 'number' && Number.isInteger(token))) {
    return 'params._meta.progressToken must be a string or an integer.';
  }
  return undefined;
}

/** The first of the SDK schema's complaints, with its path, for anything the checks above did not name. */
function schemaProblem(method: keyof typeof SCHEMAS, request: JSONRPCRequest): string | undefined {
  const parsed = SCHEMAS[method].safeParse(request);
  if (parsed.success) return undefined;
  const issue = parsed.error.issues[0];
  return issue ? `${issue.path.join('.') || 'the request'}: ${issue.message}.` : 'the params do not match what this method takes.';
}

/**
 * Why this request's params are invalid, as the message of a -32602 answer,
 * or undefined when they are fine (or the method is not one this server
 * checks; unknown methods get the SDK's -32601).
 */
export function paramsProblem(request: JSONRPCRequest): string | undefined {
  const method = request.method;
  if (!(method in SCHEMAS)) return undefined;
  const params = (request.params ?? {}) as Record<string, unknown>;
  const problem = metaProblem(params) ?? specificProblem(method as keyof typeof SCHEMAS, params) ?? schemaProblem(method as keyof typeof SCHEMAS, request);
  return problem ? `Invalid params for ${method}: ${problem}` : undefined;
}

function specificProblem(method: keyof typeof SCHEMAS, params: Record<string, unknown>): string | undefined {
  switch (method) {
    case 'tools/call':
      if (!('name' in params)) return 'params.name is missing; it names the tool to call (tools/list shows them).';
      if (typeof params.name !== 'string') return `params.name must be a string, the name of the tool to call (it is ${kindOf(params.name)}).`;
      if ('arguments' in params && !isObject(params.arguments)) {
        return `params.arguments must be an object of the tool's arguments, or left out (it is ${kindOf(params.arguments)}).`;
      }
      return undefined;
    case 'tools/list':
      // The spec asks for -32602 on an invalid cursor; this server lists every
      // tool in one page and never hands one out, so every cursor is invalid.
      if ('cursor' in params) return 'invalid cursor: this server lists every tool in one page and never hands out a cursor; call tools/list without one.';
      return undefined;
    case 'initialize':
      if (typeof params.protocolVersion !== 'string') return 'params.protocolVersion must be the protocol version the client speaks, as a string (e.g. "2025-06-18").';
      if (!isObject(params.capabilities)) return 'params.capabilities must be an object (it may be empty).';
      if (!isObject(params.clientInfo) || typeof params.clientInfo.name !== 'string' || typeof params.clientInfo.version !== 'string') {
        return 'params.clientInfo must be an object with the client\'s "name" and "version" strings.';
      }
      return undefined;
    case 'ping':
      return undefined;
  }
}
