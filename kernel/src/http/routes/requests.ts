import { operatorPrincipal } from '../../lib/principal.js';
import { Hono } from 'hono';
import { KernelError } from '../../lib/errors.js';
import { REQUEST_STATUSES, type ApprovalStore, type RequestStatus } from '../../approvals/index.js';
import type { Audit } from '../../audit/index.js';
import type { MessageStore } from '../../messages/index.js';
import type { TokenStore } from '../../tokens/index.js';
import type { HttpEnv } from '../context.js';
import type { ApprovalsRunner, DatabaseGuard, PerDatabase } from '../deps.js';
import { bodySchema, checkQuery, databaseFor, encodeCursor, intQuery, pageQuery, readBody, timeQuery } from '../helpers.js';

const NOTE = { type: ['string', 'null'], maxLength: 4096 } as const;
const decisionBody = bodySchema<{ note?: string | null }>({ note: NOTE });
const messageBody = bodySchema<{ tokenId: string; text: string }>(
  { tokenId: { type: 'string', minLength: 1, maxLength: 64 }, text: { type: 'string', minLength: 1, maxLength: 4096 } },
  ['tokenId', 'text'],
);
const actionBody = bodySchema<{ targetRef: string; action: string; input?: unknown; reason?: string; idempotencyKey?: string }>(
  {
    targetRef: { type: 'string', minLength: 1, maxLength: 200 },
    action: { type: 'string', minLength: 1, maxLength: 100 },
    input: {},
    reason: { type: 'string', maxLength: 2048 },
    idempotencyKey: { type: 'string', minLength: 1, maxLength: 128 },
  },
  ['targetRef', 'action'],
);
/** How long Run waits for the action before answering `running` (the SSE stream announces the end). */
export const RUN_WAIT_MS = 10_000;

/**
 * What the request, audit and message routes use. Run goes through the
 * runner (the pipeline, with its snapshot re-check and audit-first execution);
 * the routes themselves only read, decline and send.
 */
export interface RequestRouteDeps {
  databases: Pick<DatabaseGuard, 'isUnlocked' | 'exists'>;
  approvals: PerDatabase<Pick<ApprovalStore, 'list' | 'require' | 'decline' | 'expireDue'>>;
  runner: ApprovalsRunner;
  audit: PerDatabase<Pick<Audit, 'search' | 'verify'>>;
  messages: PerDatabase<Pick<MessageStore, 'list' | 'sendToAgent' | 'markRead'>>;
  tokens: PerDatabase<Pick<TokenStore, 'require'>>;
}

/** Action requests (approvals and history), the audit log and operator/agent messages. */
export function requestRoutes(deps: RequestRouteDeps) {
  const app = new Hono<HttpEnv>();

  app.get('/databases/:db/requests', async (c) => {
    checkQuery(c, ['status', 'q', 'tokenId', 'targetId', 'action', 'since', 'until', 'before', 'cursor', 'limit']);
    const { name } = await databaseFor(c, deps.databases);
    const approvals = deps.approvals(name);
    const statusParam = c.req.query('status');
    const statuses = statusParam ? (statusParam.split(',').map((s) => s.trim()) as RequestStatus[]) : undefined;
    for (const status of statuses ?? []) {
      if (!REQUEST_STATUSES.includes(status)) {
        throw new KernelError('invalid_query', `"${status}" is not a request status; use one of ${REQUEST_STATUSES.join(', ')}.`, { status: 400 });
      }
    }
    await approvals.expireDue();
    const before = pageQuery(c, 'requests');
    const limit = intQuery(c, 'limit', 1, 500);
    const since = timeQuery(c, 'since');
    const until = timeQuery(c, 'until');
    const page = await approvals.list({
      ...(c.req.query('action') ? { action: c.req.query('action')! } : {}),
      ...(since ? { since } : {}),
      ...(until ? { until } : {}),
      ...(statuses ? { status: statuses } : {}),
      ...(c.req.query('q') ? { q: c.req.query('q')! } : {}),
      ...(c.req.query('tokenId') ? { tokenId: c.req.query('tokenId')! } : {}),
      ...(c.req.query('targetId') ? { targetId: c.req.query('targetId')! } : {}),
      ...(before !== undefined ? { beforeSeq: before } : {}),
      ...(limit !== undefined ? { limit } : {}),
    });
    return c.json({ requests: page.requests, nextCursor: encodeCursor('requests', page.nextBeforeSeq), nextBefore: page.nextBeforeSeq });
  });

  app.get('/databases/:db/requests/:id', async (c) => {
    const { name } = await databaseFor(c, deps.databases);
    const approvals = deps.approvals(name);
    await approvals.expireDue();
    return c.json({ request: await approvals.require(c.req.param('id')) });
  });

  app.post('/databases/:db/actions', async (c) => {
    const { name, session, actor } = await databaseFor(c, deps.databases);
    const body = await readBody(c, actionBody);
    const request = await deps.runner.call(
      operatorPrincipal(name, session.id, actor),
      { targetRef: body.targetRef, action: body.action, ...(body.input !== undefined ? { input: body.input } : {}), ...(body.reason ? { reason: body.reason } : {}), ...(body.idempotencyKey ? { idempotencyKey: body.idempotencyKey } : {}) },
      { waitMs: RUN_WAIT_MS },
    );
    return c.json({ request }, 201);
  });

  app.post('/databases/:db/requests/:id/run', async (c) => {
    const { name, session, actor } = await databaseFor(c, deps.databases);
    const body = await readBody(c, decisionBody);
    // The HTTP edge makes the operator's principal from the session that proved this database's password.
    const request = await deps.runner.run(operatorPrincipal(name, session.id, actor), c.req.param('id'), body.note ?? null, { waitMs: RUN_WAIT_MS });
    return c.json({ request });
  });

  app.post('/databases/:db/requests/:id/decline', async (c) => {
    const { name, actor } = await databaseFor(c, deps.databases);
    const approvals = deps.approvals(name);
    const body = await readBody(c, decisionBody);
    return c.json({ request: await approvals.decline(c.req.param('id'), body.note ?? null, actor) });
  });

  app.get('/databases/:db/audit', async (c) => {
    checkQuery(c, ['q', 'event', 'actor', 'subject', 'since', 'until', 'before', 'cursor', 'limit']);
    const { name } = await databaseFor(c, deps.databases);
    const audit = deps.audit(name);
    const before = pageQuery(c, 'audit');
    const limit = intQuery(c, 'limit', 1, 500);
    const since = timeQuery(c, 'since');
    const until = timeQuery(c, 'until');
    const q = (name: string) => (c.req.query(name) ? { [name]: c.req.query(name)! } : {});
    const page = await audit.search({
      ...q('q'),
      ...q('event'),
      ...q('actor'),
      ...(since ? { since } : {}),
      ...(until ? { until } : {}),
      ...(c.req.query('subject') ? { subjectId: c.req.query('subject')! } : {}),
      ...(before !== undefined ? { beforeSeq: before } : {}),
      ...(limit !== undefined ? { limit } : {}),
    });
    return c.json({ entries: page.entries, nextCursor: encodeCursor('audit', page.nextBeforeSeq), nextBefore: page.nextBeforeSeq });
  });

  app.post('/databases/:db/audit/verify', async (c) => {
    const { name } = await databaseFor(c, deps.databases);
    const audit = deps.audit(name);
    await readBody(c, bodySchema({}));
    return c.json({ report: await audit.verify() });
  });

  app.get('/databases/:db/messages', async (c) => {
    checkQuery(c, ['direction', 'tokenId', 'limit']);
    const { name } = await databaseFor(c, deps.databases);
    const messages = deps.messages(name);
    const direction = c.req.query('direction');
    if (direction !== undefined && direction !== 'to_agent' && direction !== 'to_operator') {
      throw new KernelError('invalid_query', 'direction must be to_agent or to_operator.', { status: 400 });
    }
    const limit = intQuery(c, 'limit', 1, 500);
    return c.json({
      messages: await messages.list({
        ...(direction ? { direction } : {}),
        ...(c.req.query('tokenId') ? { tokenId: c.req.query('tokenId')! } : {}),
        ...(limit !== undefined ? { limit } : {}),
      }),
    });
  });

  app.post('/databases/:db/messages', async (c) => {
    const { name, actor } = await databaseFor(c, deps.databases);
    const [tokens, messages] = [deps.tokens(name), deps.messages(name)];
    const body = await readBody(c, messageBody);
    tokens.require(body.tokenId);
    return c.json({ message: await messages.sendToAgent({ tokenId: body.tokenId, body: body.text }, actor) }, 201);
  });

  app.post('/databases/:db/messages/:id/read', async (c) => {
    const { name } = await databaseFor(c, deps.databases);
    await deps.messages(name).markRead(c.req.param('id'));
    return c.json({ read: true });
  });

  return app;
}
