/**
 * mcp-switch — the global stop per unlocked database (invariant 4): while it
 * is off, every MCP call answers `stopped` and nothing runs, but grants,
 * tokens and discovery stay as they are.
 */
import type { Audit } from '../audit/index.js';
import type { EventBus } from '../events/index.js';
import { isoAt, type Clock } from '../lib/clock.js';

export interface McpSwitch {
  isRunning(): boolean;
  set(running: boolean, actor: string): Promise<void>;
}

export function createMcpSwitch(deps: { database: string; initial: boolean; audit: Pick<Audit, 'append'>; events: EventBus; clock: Clock }): McpSwitch {
  let running = deps.initial;
  return {
    isRunning: () => running,
    async set(next, actor) {
      if (next === running) return;
      await deps.audit.append({ actor, event: next ? 'mcp.started' : 'mcp.stopped' });
      running = next;
      deps.events.emit({ type: 'mcp.switched', database: deps.database, running, at: isoAt(deps.clock.now()) });
    },
  };
}
