/**
 * The history and audit searches as query strings, in one place: the API's
 * pagination and time filters are growing (cursor/nextCursor, since/until on
 * requests), and this is the only module that has to follow.
 */
export interface RequestFilters {
  q?: string;
  status?: string[];
  tokenId?: string;
  targetId?: string;
  limit?: number;
  /** The page after this one: the previous answer's `next`. */
  page?: string;
}

export interface AuditFilters {
  q?: string;
  event?: string;
  actor?: string;
  subject?: string;
  since?: string;
  until?: string;
  limit?: number;
  page?: string;
}

function query(pairs: [string, string | number | undefined][]): string {
  const params = new URLSearchParams();
  for (const [key, value] of pairs) if (value !== undefined && value !== '') params.set(key, String(value));
  const text = params.toString();
  return text ? `?${text}` : '';
}

export function requestsQuery(filters: RequestFilters): string {
  return query([
    ['q', filters.q?.trim()],
    ['status', filters.status?.length ? filters.status.join(',') : undefined],
    ['tokenId', filters.tokenId],
    ['targetId', filters.targetId],
    ['limit', filters.limit],
    ['before', filters.page],
  ]);
}

export function auditQuery(filters: AuditFilters): string {
  return query([
    ['q', filters.q?.trim()],
    ['event', filters.event],
    ['actor', filters.actor],
    ['subject', filters.subject],
    ['since', filters.since ? new Date(filters.since).toISOString() : undefined],
    ['until', filters.until ? new Date(filters.until).toISOString() : undefined],
    ['limit', filters.limit],
    ['before', filters.page],
  ]);
}

/** The next page's marker from an answer (today `nextBefore`; `nextCursor` once the API has it). */
export function nextPage(answer: { nextBefore?: unknown; nextCursor?: unknown }): string | undefined {
  const next = answer.nextCursor ?? answer.nextBefore;
  return next === null || next === undefined ? undefined : String(next);
}
