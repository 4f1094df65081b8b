/**
 * The app's shared state: the gateway status, the database being looked at,
 * the pending approvals of every database this session proved, and the live
 * event stream that keeps them current (pushed, never polled).
 */
import { dbPath, get, whenSessionLost } from './api';
import type { ActionRequest, ConnectorInfo, Status } from './types';

export const app = $state({
  status: null as Status | null,
  /** The database the pages show (one of the session's unlocked ones). */
  db: '',
  /** Pending approvals, oldest first, across the session's databases. */
  pending: [] as (ActionRequest & { database: string })[],
  /** Bumped on every event that may change what a page shows; pages reload on it. */
  tick: 0,
  live: false,
  /** The request the approval dialog shows (the oldest pending one unless the operator picked another). */
  openRequest: null as (ActionRequest & { database: string }) | null,
  /** Requests the operator put off with "Later": they stay pending and listed, but do not open the dialog again by themselves. */
  dialogDismissed: [] as string[],
  now: Date.now(),
  loadError: '',
});

setInterval(() => {
  app.now = Date.now();
}, 1000);

export const sessionDatabases = () => app.status?.session?.databases ?? [];

export async function refreshStatus(): Promise<Status> {
  const status = await get<Status>('/api/status');
  app.status = status;
  const proved = status.session?.databases ?? [];
  if (!proved.includes(app.db)) app.db = proved[0] ?? '';
  return status;
}

export async function refreshPending(): Promise<void> {
  const all: (ActionRequest & { database: string })[] = [];
  for (const database of sessionDatabases()) {
    const { requests } = await get<{ requests: ActionRequest[] }>(dbPath(database, 'requests?status=approval_pending&limit=100'));
    for (const request of requests) all.push({ ...request, database });
  }
  all.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  app.pending = all;
  syncDialog();
}

/** Keeps the open dialog on a live request: a new pending one opens it, and the open one is updated in place (stale, expired, decided). */
function syncDialog(): void {
  if (app.openRequest) return;
  const next = app.pending.find((r) => !app.dialogDismissed.includes(r.id));
  if (next) app.openRequest = next;
}

export async function reloadOpenRequest(): Promise<void> {
  const open = app.openRequest;
  if (!open) return;
  const { request } = await get<{ request: ActionRequest }>(dbPath(open.database, `requests/${encodeURIComponent(open.id)}`));
  if (app.openRequest?.id === open.id) app.openRequest = { ...request, database: open.database };
}

let source: EventSource | undefined;
/** Called when the stream reports the session gone (the lock of its last database, a logout). */
let onEnded: (() => void) | undefined;

export function connectEvents(ended: () => void): void {
  onEnded = ended;
  source?.close();
  const stream = new EventSource('/api/events');
  source = stream;
  stream.addEventListener('ready', () => {
    app.live = true;
    void refreshPending();
  });
  const onRequest = (event: MessageEvent<string>) => {
    const data = JSON.parse(event.data) as { requestId: string; database: string };
    app.tick += 1;
    void refreshPending().then(() => (app.openRequest?.id === data.requestId ? reloadOpenRequest() : undefined));
  };
  stream.addEventListener('request.created', (event) => {
    onRequest(event);
    notify();
  });
  stream.addEventListener('request.updated', onRequest);
  for (const type of ['message.created', 'mcp.switched', 'database.unlocked']) {
    stream.addEventListener(type, () => {
      app.tick += 1;
      void refreshStatus();
    });
  }
  stream.addEventListener('database.locked', () => {
    app.tick += 1;
    void refreshStatus().then((status) => {
      if (!status.session || status.session.databases.length === 0) endSession();
    });
  });
  stream.onerror = () => {
    app.live = false;
    // The stream ends with the session; EventSource would reconnect into a 401 forever.
    void refreshStatus()
      .then((status) => {
        if (!status.session || status.session.databases.length === 0) endSession();
      })
      .catch(() => undefined);
  };
}

export function disconnectEvents(): void {
  source?.close();
  source = undefined;
  app.live = false;
}

function endSession(): void {
  disconnectEvents();
  app.pending = [];
  app.openRequest = null;
  onEnded?.();
}

whenSessionLost(() => {
  void refreshStatus().then((status) => {
    if (!status.session || status.session.databases.length === 0) endSession();
  });
});

/**
 * A browser notification for a new approval, only when the operator allowed
 * them and is not looking at the page (the tab is hidden or another window has
 * the focus). It carries no agent text at all: no reason, input, token or
 * target name, only that an approval waits.
 */
export function notify(): void {
  if (typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
  if (document.visibilityState === 'visible' && document.hasFocus()) return;
  new Notification('AIPermission: an agent asks for approval', { body: 'Open the gateway page to review it.', tag: 'aip-approval' });
}

const connectorCache = new Map<string, Promise<ConnectorInfo[]>>();
/** The installed connectors of a database (their schemas and actions), fetched once per database and session. */
export function connectorsOf(database: string): Promise<ConnectorInfo[]> {
  let cached = connectorCache.get(database);
  if (!cached) {
    cached = get<{ connectors: ConnectorInfo[] }>(dbPath(database, 'connectors')).then((answer) => answer.connectors);
    cached.catch(() => connectorCache.delete(database));
    connectorCache.set(database, cached);
  }
  return cached;
}
export function forgetConnectors(): void {
  connectorCache.clear();
}
