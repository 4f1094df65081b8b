import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';
import type { Session } from './sessions.js';

export type HttpEnv = {
  Bindings: { incoming?: IncomingMessage };
  Variables: { session: Session | undefined };
};

export type HttpContext = Context<HttpEnv>;
