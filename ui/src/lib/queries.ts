/**
 * The history and audit searches as query strings, in one place: the only
 * module that follows the API's filters and paging (an opaque `cursor` passed
 * back from the answer's `nextCursor`, docs/api.md "Paging").
 */
export interface RequestFilters {
  q?: string;
  status?: string[];
  tokenId?: string;
  targetId?: string;
  action?: string;
  /** Local date-time strings from a datetime-local input, or ISO times. */
  since?: string;
  until?: string;
  limit?: number;
  /** The next (older) page: the previous answer's nextCursor. */
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

const iso = (value: string | undefined) => (value ? new Date(value).toISOString() : undefined);

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
    ['action', filters.action?.trim()],
    ['since', iso(filters.since)],
    ['until', iso(filters.until)],
    ['limit', filters.limit],
    ['cursor', filters.page],
  ]);
}

export function auditQuery(filters: AuditFilters): string {
  return query([
    ['q', filters.q?.trim()],
    ['event', filters.event],
    ['actor', filters.actor],
    ['subject', filters.subject],
    ['since', iso(filters.since)],
    ['until', iso(filters.until)],
    ['limit', filters.limit],
    ['cursor', filters.page],
  ]);
}

/** The next page's cursor from an answer, or undefined on the last page. */
export function nextPage(answer: { nextCursor?: unknown }): string | undefined {
  const next = answer.nextCursor;
  return next === null || next === undefined ? undefined : String(next);
}
