/**
 * messages — notes between the operator and an agent (by token): notes given
 * with Run/Decline, notes sent at any time, and notes from the agent. Bounded,
 * redacted and audited; delivered with the token's next MCP response.
 */
export { createMessageStore, checkMessageBody, MAX_MESSAGE_BYTES } from './messages.js';
export type { Message, MessageStore, MessageDirection } from './messages.js';
