/** Runs an action as the operator: the same kernel pipeline as an agent's call (bounds, redaction, audit with the operator as actor). */
import { dbPath, post } from './api';
import type { ActionRequest } from './types';

export async function runAction(database: string, targetRef: string, action: string, input: unknown, reason = 'run from the web console'): Promise<ActionRequest> {
  const { request } = await post<{ request: ActionRequest }>(dbPath(database, 'actions'), { targetRef, action, input, reason });
  return request;
}

/** An operator run's output, or an Error that says what failed (the connector's message as a line). */
export function outputOf(request: ActionRequest): unknown {
  if (request.status === 'completed') return request.output;
  throw new Error(`${request.action} ${request.status}${request.statusReason ? `: ${request.statusReason}` : request.error ? `: ${request.error.message}` : ''}`);
}
