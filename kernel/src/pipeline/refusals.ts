import type { Logger } from '../lib/log.js';
import type { PipelineDatabase } from './ports.js';
import { truncateUtf8 } from './bound.js';

/** Who an attempt is recorded as: the agent's token, or the operator. */
export interface Attempter {
  actor: string;
  subject: { tokenId?: string };
}

/** What an attempt named, cut to a size an audit entry may hold. */
export function attemptOf(input: { targetRef: unknown; action: unknown }) {
  return { targetRef: truncateUtf8(String(input.targetRef), 200), action: truncateUtf8(String(input.action), 100) };
}

/** Records an attempt that was refused before a request existed (every attempt is audited). */
export async function recordRejected(db: PipelineDatabase, who: Attempter, input: { targetRef: unknown; action: unknown }, code: string, message: string, log: Logger) {
  await db.audit
    .commit({ entries: [{ actor: who.actor, event: 'action.rejected', subject: who.subject, payload: { ...attemptOf(input), code, message } }] })
    .catch((error) => log('could not audit a rejected call', error));
}

/** Records a call refused because MCP execution is switched off. */
export async function recordStopped(db: PipelineDatabase, who: Attempter, input: { targetRef: unknown; action: unknown }, log: Logger) {
  await db.audit
    .commit({ entries: [{ actor: who.actor, event: 'action.refused', subject: who.subject, payload: { ...attemptOf(input), reason: 'stopped' } }] })
    .catch((error) => log('could not audit a refused call', error));
}
