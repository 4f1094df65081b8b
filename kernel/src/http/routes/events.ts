import { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { EventBus, KernelEvent } from '../../events/index.js';
import type { HttpEnv } from '../context.js';
import type { DatabaseGuard } from '../deps.js';
import { requireSession } from '../helpers.js';
import type { SessionStore } from '../sessions.js';

/** A comment line every 15 s keeps proxies and browsers from timing the stream out. */
export const HEARTBEAT_MS = 15_000;

/** What the event stream uses: the 423-before-401 check, the event bus to listen on, and the sessions to notice its own end. */
export interface EventRouteDeps {
  databases: Pick<DatabaseGuard, 'anyUnlocked'>;
  events: Pick<EventBus, 'subscribe'>;
  sessions: Pick<SessionStore, 'get'>;
}

/**
 * The live event stream (Server-Sent Events): new and changed requests,
 * messages, lock/unlock and MCP switch changes, for the databases this
 * session proved. The UI and `aip approvals watch` react to it at once
 * instead of polling.
 */
export function eventRoutes(deps: EventRouteDeps) {
  const { events, sessions } = deps;
  const app = new Hono<HttpEnv>();
  app.get('/events', (c) => {
    const session = requireSession(c, deps.databases);
    return streamSSE(c, async (stream) => {
      const queue: KernelEvent[] = [];
      let wake: (() => void) | undefined;
      const unsubscribe = events.subscribe((event) => {
        if (!session.databases.has(event.database) && event.type !== 'database.locked') return;
        queue.push(event);
        wake?.();
      });
      let closed = false;
      stream.onAbort(() => {
        closed = true;
        wake?.();
      });
      const heartbeat = setInterval(() => {
        void stream.write(': heartbeat\n\n');
      }, HEARTBEAT_MS);
      try {
        await stream.writeSSE({ event: 'ready', data: JSON.stringify({ databases: [...session.databases] }) });
        while (!closed) {
          const event = queue.shift();
          if (!event) {
            // Stop when the session ended (logout, expiry, password change, lock of its
            // databases), after what was queued (the lock event itself) went out.
            if (!sessions.get(session.secret)) break;
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
            wake = undefined;
            continue;
          }
          await stream.writeSSE({ event: event.type, data: JSON.stringify(event) });
        }
      } finally {
        clearInterval(heartbeat);
        unsubscribe();
      }
    });
  });
  return app;
}
