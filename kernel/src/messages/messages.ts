import { isoAt, type Clock } from '../lib/clock.js';
import { errors } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import { Where } from '../lib/where.js';
import type { SqlDb, SqlTx } from '../vault/index.js';
import type { Audit } from '../audit/index.js';
import type { Redactor } from '../redaction/index.js';
import type { EventBus } from '../events/index.js';

/** 4 KiB: a note is a sentence or a paragraph, and it lands in an agent's context. */
export const MAX_MESSAGE_BYTES = 4096;

export type MessageDirection = 'to_agent' | 'to_operator';

export interface Message {
  id: string;
  direction: MessageDirection;
  tokenId: string;
  requestId: string | null;
  body: string;
  createdAt: string;
  deliveredAt: string | null;
  readAt: string | null;
}

interface Row {
  seq: number;
  id: string;
  direction: MessageDirection;
  token_id: string;
  request_id: string | null;
  body: string;
  created_at: string;
  delivered_at: string | null;
  read_at: string | null;
}

const toMessage = (row: Row): Message => ({
  id: row.id,
  direction: row.direction,
  tokenId: row.token_id,
  requestId: row.request_id,
  body: row.body,
  createdAt: row.created_at,
  deliveredAt: row.delivered_at,
  readAt: row.read_at,
});

export interface MessageStore {
  /** Stores a note for the agent holding tokenId; delivered with that token's next MCP response. */
  sendToAgent(input: { tokenId: string; requestId?: string | null; body: string }, actor: string, tx?: SqlTx): Promise<Message>;
  /** Stores a note from the agent for the operator. */
  sendToOperator(input: { tokenId: string; requestId?: string | null; body: string }, actor: string): Promise<Message>;
  list(filter?: { direction?: MessageDirection; tokenId?: string; limit?: number }): Promise<Message[]>;
  /** Notes for this token not yet delivered, marked delivered in the same step (at most once). */
  takeUndelivered(tokenId: string): Promise<Message[]>;
  markRead(id: string): Promise<void>;
  /** Whether notes wait for this token (in memory: checked on every MCP response without a query). */
  hasUndelivered(tokenId: string): boolean;
}

export function checkMessageBody(body: string): string {
  const trimmed = body.trim();
  if (trimmed.length === 0) throw errors.invalid('A message needs some text.');
  if (Buffer.byteLength(trimmed, 'utf8') > MAX_MESSAGE_BYTES) throw errors.invalid(`A message may be at most ${MAX_MESSAGE_BYTES} bytes.`);
  return trimmed;
}

export async function createMessageStore(deps: { db: SqlDb; clock: Clock; audit: Pick<Audit, 'record'>; redactor: () => Redactor; events: EventBus; database: string }): Promise<MessageStore> {
  const { db, clock, audit } = deps;
  // Undelivered notes per token, so every MCP response can check for notes without a query.
  const waiting = new Map<string, number>();
  for (const row of await db.all<{ token_id: string; n: number }>(
    "SELECT token_id, count(*) AS n FROM messages WHERE direction = 'to_agent' AND delivered_at IS NULL GROUP BY token_id",
  )) {
    waiting.set(row.token_id, row.n);
  }

  const insert = async (tx: SqlTx, direction: MessageDirection, input: { tokenId: string; requestId?: string | null; body: string }, actor: string) => {
    const row: Row = {
      seq: 0,
      id: newId('msg'),
      direction,
      token_id: input.tokenId,
      request_id: input.requestId ?? null,
      body: deps.redactor().text(checkMessageBody(input.body)),
      created_at: isoAt(clock.now()),
      delivered_at: null,
      read_at: null,
    };
    await tx.run('INSERT INTO messages (id, direction, token_id, request_id, body, created_at) VALUES (?, ?, ?, ?, ?, ?)', [
      row.id,
      row.direction,
      row.token_id,
      row.request_id,
      row.body,
      row.created_at,
    ]);
    await audit.record(tx, {
      actor,
      event: 'message.sent',
      subject: { messageId: row.id, tokenId: row.token_id, ...(row.request_id ? { requestId: row.request_id } : {}) },
      payload: { direction, body: row.body },
    });
    tx.afterCommit(() => {
      if (direction === 'to_agent') waiting.set(row.token_id, (waiting.get(row.token_id) ?? 0) + 1);
      deps.events.emit({ type: 'message.created', database: deps.database, messageId: row.id, direction, at: row.created_at });
    });
    return toMessage(row);
  };

  return {
    sendToAgent: (input, actor, tx) => (tx ? insert(tx, 'to_agent', input, actor) : db.write((own) => insert(own, 'to_agent', input, actor))),
    sendToOperator: (input, actor) => db.write((tx) => insert(tx, 'to_operator', input, actor)),
    async list(filter = {}) {
      const where = new Where().add('direction = ?', filter.direction).add('token_id = ?', filter.tokenId);
      const limit = Math.min(Math.max(filter.limit ?? 100, 1), 500);
      const rows = await db.all<Row>(`SELECT * FROM messages ${where} ORDER BY seq DESC LIMIT ?`, [...where.params, limit]);
      return rows.map(toMessage);
    },
    hasUndelivered: (tokenId) => (waiting.get(tokenId) ?? 0) > 0,
    async takeUndelivered(tokenId) {
      if (!waiting.get(tokenId)) return [];
      return db.write(async (tx) => {
        const rows = await tx.all<Row>("SELECT * FROM messages WHERE token_id = ? AND direction = 'to_agent' AND delivered_at IS NULL ORDER BY seq", [tokenId]);
        if (rows.length === 0) {
          tx.afterCommit(() => waiting.delete(tokenId));
          return [];
        }
        const at = isoAt(clock.now());
        await tx.run(`UPDATE messages SET delivered_at = ? WHERE seq IN (${rows.map(() => '?').join(',')})`, [at, ...rows.map((r) => r.seq)]);
        await audit.record(tx, { actor: `token:${tokenId}`, event: 'message.delivered', subject: { tokenId }, payload: { messageIds: rows.map((r) => r.id) } });
        tx.afterCommit(() => waiting.delete(tokenId));
        return rows.map((row) => ({ ...toMessage(row), deliveredAt: at }));
      });
    },
    async markRead(id) {
      const result = await db.run('UPDATE messages SET read_at = coalesce(read_at, ?) WHERE id = ?', [isoAt(clock.now()), id]);
      if (result.changes === 0) throw errors.notFound('Message', id);
    },
  };
}
