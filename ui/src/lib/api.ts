/**
 * The one way the UI talks to the gateway: same-origin fetch with the session
 * cookie (HttpOnly, sent by the browser) and the CSRF double submit (the
 * readable aip_csrf cookie echoed in X-CSRF-Token on every mutating request).
 * Errors come back as ApiError with the gateway's code and message, which are
 * written for the operator and shown as they are.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function csrfToken(): string | undefined {
  for (const part of document.cookie.split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === 'aip_csrf') return decodeURIComponent(rest.join('='));
  }
  return undefined;
}

/** Called when an answer says the session or database is gone (401/423): the app returns to the unlock screen. */
let onSessionLost: ((code: string) => void) | undefined;
export function whenSessionLost(listener: (code: string) => void): void {
  onSessionLost = listener;
}

export async function api<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method !== 'GET') {
    const csrf = csrfToken();
    if (csrf) headers['x-csrf-token'] = csrf;
  }
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(path, { method, headers, credentials: 'same-origin', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  } catch {
    throw new ApiError(0, 'unreachable', 'The gateway does not answer. Is it still running? Start it with npm start (or aip start), then reload.');
  }
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    throw new ApiError(response.status, 'bad_answer', `The gateway answered ${response.status} with something that is not JSON.`);
  }
  if (!response.ok) {
    const error = (parsed as { error?: { code?: string; message?: string } }).error;
    const code = error?.code ?? 'http_error';
    if ((response.status === 401 && code === 'not_authenticated') || response.status === 423) onSessionLost?.(code);
    throw new ApiError(response.status, code, error?.message ?? `The gateway answered ${response.status}.`);
  }
  return parsed as T;
}

export const get = <T = Record<string, unknown>>(path: string) => api<T>('GET', path);
export const post = <T = Record<string, unknown>>(path: string, body: unknown = {}) => api<T>('POST', path, body);
export const put = <T = Record<string, unknown>>(path: string, body: unknown) => api<T>('PUT', path, body);
export const patch = <T = Record<string, unknown>>(path: string, body: unknown) => api<T>('PATCH', path, body);
export const del = <T = Record<string, unknown>>(path: string) => api<T>('DELETE', path);

/** `/api/databases/<db>/<rest>`, with the name encoded. */
export const dbPath = (db: string, rest: string) => `/api/databases/${encodeURIComponent(db)}/${rest}`;

export function messageOf(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  return error instanceof Error ? error.message : String(error);
}
