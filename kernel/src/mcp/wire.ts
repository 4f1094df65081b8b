import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { TokenAuthenticator } from '../tokens/index.js';
import type { Pipeline } from '../pipeline/index.js';
import { createMcpEndpoint, type McpEndpoint } from './endpoint.js';
import { createTools, type ToolsDatabase } from './tools.js';

/** The MCP surface from its parts: the tools over the pipeline, behind the edge that authenticates tokens. */
export function createMcp(deps: {
  tokens: Pick<TokenAuthenticator, 'authenticate' | 'current'>;
  pipeline: Pick<Pipeline, 'call' | 'recordRejected'>;
  database(name: string): ToolsDatabase;
  clock: Clock;
  log: Logger;
  onLocked(listener: (database: string) => void): void;
  getPort(): number;
}): McpEndpoint {
  const tools = createTools({ pipeline: deps.pipeline, database: deps.database, currentToken: (p) => deps.tokens.current(p), log: deps.log });
  return createMcpEndpoint({ tokens: deps.tokens, tools, clock: deps.clock, onLocked: deps.onLocked, getPort: deps.getPort });
}
