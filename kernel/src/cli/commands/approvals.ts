import { parse, requirePositional } from '../args.js';
import { CliError, EXIT } from '../errors.js';
import { line, preview, printJson, printTable, say, Shown } from '../output.js';
import { asOperator } from '../operator.js';
import { createInterface } from 'node:readline';
import { GatewayClient, gatewayUrl, passwordPrompt } from '../client.js';
import { passwordSource } from '../prompt.js';

export const APPROVALS_USAGE = `aip approvals list [--status approval_pending|running|completed|...] [--all] [--search WORDS] [--action NAME] [--since TIME] [--until TIME] [--cursor CURSOR | --before SEQ] [--limit N] [--json]
aip approvals show REQUEST_ID [--json]   everything about one request, its whole input and output
aip approvals run REQUEST_ID [--note TEXT]
aip approvals decline REQUEST_ID [--note TEXT]
aip approvals watch        live view of pending requests; type: run N [note] | decline N [note] | show N | q
options: [--db NAME] [--password-stdin] [--url URL]`;

export const AUDIT_USAGE = `aip audit search [WORDS...] [--event EVENT] [--actor ACTOR] [--subject ID] [--since TIME] [--until TIME] [--cursor CURSOR | --before SEQ] [--limit N] [--json]
                     newest first; TIME is ISO-8601 (2026-05-01, 2026-05-01T12:00:00Z); a longer result prints the --cursor of the next page
aip audit verify     exit 0 when the chain is intact, 3 naming the first bad entry when not`;

interface RequestView {
  id: string;
  status: string;
  action: string;
  connectorId: string;
  targetName: string;
  profileLabel: string;
  tokenName: string;
  reason: string;
  inputPreview: unknown;
  statusReason: string | null;
  output: unknown;
  outputTruncated?: boolean;
  error: { kind?: string; message: string } | null;
  operatorNote?: string | null;
  createdAt: string;
  expiresAt?: string | null;
  finishedAt?: string | null;
}

/**
 * What a decision printed: the status and its reason, the start of the
 * output, the error. A failed request's reason is its error message, printed
 * once, on its own line. Everything the agent or plugin wrote is escaped
 * (invariant 8).
 */
function outcomeLines(request: RequestView, outputMax: number): string[] {
  const lines = [line`${request.id}: ${request.status}` + (request.statusReason && !request.error ? line` (${request.statusReason})` : '')];
  if (request.status === 'completed') lines.push(line`output: ${preview(request.output, outputMax)}`);
  if (request.error) lines.push(line`error: ${request.error.message}`);
  return lines;
}

/** Everything about one request, each field on its own line, nothing cut (`show`). */
function detailLines(request: RequestView): string[] {
  const lines = [
    line`${request.id}  ${request.status}` + (request.statusReason && !request.error ? line` (${request.statusReason})` : ''),
    line`  action:  ${request.connectorId}.${request.action} on ${request.targetName}/${request.profileLabel}`,
    line`  by:      ${request.tokenName}, ${request.createdAt}` + (request.expiresAt ? line`, expires ${request.expiresAt}` : ''),
    line`  reason:  ${request.reason || '(none given)'}`,
    line`  input:   ${preview(request.inputPreview, Infinity)}`,
  ];
  if (request.output !== null && request.output !== undefined) {
    lines.push(line`  output:  ${preview(request.output, Infinity)}` + (request.outputTruncated ? ' (cut by the output bound)' : ''));
  }
  if (request.error) lines.push(line`  error:   ${request.error.message}`);
  if (request.operatorNote) lines.push(line`  note:    ${request.operatorNote}`);
  return lines;
}

export async function approvalsCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'watch') return watchCommand(rest);
  const { values, positionals } = parse(
    rest,
    { status: { type: 'string' }, all: { type: 'boolean' }, note: { type: 'string' }, limit: { type: 'string' }, ...PAGE_OPTIONS, search: { type: 'string' }, action: { type: 'string' } },
    APPROVALS_USAGE,
  );
  switch (sub) {
    case 'list': {
      const op = await asOperator(values);
      // A filter names what to look for in the whole history; without one, the default is what waits for a decision.
      const filtered = values.search || values.action || values.since || values.until || values.cursor || values.before;
      const status = values.all ? undefined : (values.status ?? (filtered ? undefined : 'approval_pending'));
      const query = new URLSearchParams({
        ...(status ? { status } : {}),
        ...(values.search ? { q: values.search } : {}),
        ...(values.action ? { action: values.action } : {}),
        ...pageParams(values),
        ...(values.limit ? { limit: values.limit } : {}),
      });
      const { requests, nextCursor } = await op.client.call<{ requests: RequestView[]; nextCursor?: string | null }>('GET', op.path(`/requests${query.size ? `?${query}` : ''}`));
      if (values.json) printJson(requests);
      else
        printTable(
          // Every cell is escaped by printTable; the input preview is escaped JSON already.
          requests.map((r) => ({ ...r, what: `${r.connectorId}.${r.action}`, target: `${r.targetName}/${r.profileLabel}`, input: preview(r.inputPreview) })),
          [['id', 'ID'], ['status', 'STATUS'], ['what', 'ACTION'], ['target', 'TARGET'], ['tokenName', 'TOKEN'], ['createdAt', 'CREATED'], ['input', 'INPUT'], ['reason', 'REASON']],
          status === 'approval_pending' ? 'Nothing is waiting for approval.' : 'No requests.',
        );
      printNextPage(nextCursor);
      return EXIT.ok;
    }
    case 'show': {
      const id = requirePositional(positionals, 0, 'the request id', APPROVALS_USAGE);
      const op = await asOperator(values);
      const { request } = await op.client.call<{ request: RequestView }>('GET', op.path(`/requests/${encodeURIComponent(id)}`));
      if (values.json) printJson(request);
      else say(detailLines(request).join('\n'));
      return EXIT.ok;
    }
    case 'run':
    case 'decline': {
      const id = requirePositional(positionals, 0, 'the request id', APPROVALS_USAGE);
      const op = await asOperator(values);
      const { request } = await op.client.call<{ request: RequestView }>('POST', op.path(`/requests/${encodeURIComponent(id)}/${sub}`), values.note ? { note: values.note } : {});
      if (values.json) {
        printJson(request);
        return EXIT.ok;
      }
      say(outcomeLines(request, 2000).join('\n'));
      return request.status === 'stale' ? EXIT.error : EXIT.ok;
    }
    default:
      throw new CliError(`Unknown approvals command "${sub ?? ''}".\n\n${APPROVALS_USAGE}`, EXIT.usage);
  }
}

/** Paging and time options shared by `approvals list` and `audit search`. */
const PAGE_OPTIONS = {
  since: { type: 'string' },
  until: { type: 'string' },
  cursor: { type: 'string' },
  before: { type: 'string' },
} as const;

function pageParams(values: { since?: string; until?: string; cursor?: string; before?: string }): Record<string, string> {
  return {
    ...(values.since ? { since: values.since } : {}),
    ...(values.until ? { until: values.until } : {}),
    ...(values.cursor ? { cursor: values.cursor } : {}),
    ...(values.before ? { before: values.before } : {}),
  };
}

/** On stderr, so --json output stays one JSON value: how to ask for the next (older) page. */
function printNextPage(nextCursor: string | null | undefined): void {
  if (nextCursor) process.stderr.write(`More results: add --cursor ${nextCursor} for the next page.\n`);
}

interface VerifyReport {
  ok: boolean;
  entries: number;
  head?: { seq: number; hash: string };
  firstBad?: { seq: number; reason: string };
  checkpoint?: { prunedThroughSeq: number } | null;
}

export async function auditCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse(
    rest,
    { event: { type: 'string' }, actor: { type: 'string' }, subject: { type: 'string' }, limit: { type: 'string' }, ...PAGE_OPTIONS },
    AUDIT_USAGE,
  );
  switch (sub) {
    case 'search': {
      const op = await asOperator(values);
      const query = new URLSearchParams({
        ...(positionals.length ? { q: positionals.join(' ') } : {}),
        ...(values.event ? { event: values.event } : {}),
        ...(values.actor ? { actor: values.actor } : {}),
        ...(values.subject ? { subject: values.subject } : {}),
        ...pageParams(values),
        limit: values.limit ?? '50',
      });
      const { entries, nextCursor } = await op.client.call<{
        entries: Array<{ seq: number; ts: string; actor: string; event: string; subject: Record<string, string>; payload: unknown }>;
        nextCursor?: string | null;
      }>('GET', op.path(`/audit?${query}`));
      if (values.json) printJson(entries);
      else
        printTable(
          // The actor, subject and payload may carry agent or plugin text: printTable escapes every cell.
          entries.map((e) => ({ ...e, subject: Object.values(e.subject).join(' '), payload: preview(e.payload, 100) })),
          [['seq', 'SEQ'], ['ts', 'TIME'], ['event', 'EVENT'], ['actor', 'ACTOR'], ['subject', 'SUBJECT'], ['payload', 'DETAILS']],
          'No matching audit entries.',
        );
      printNextPage(nextCursor);
      return EXIT.ok;
    }
    case 'verify': {
      const op = await asOperator(values);
      const { report } = await op.client.call<{ report: VerifyReport }>('POST', op.path('/audit/verify'));
      if (values.json) printJson(report);
      if (report.ok) {
        if (!values.json) {
          say(`Audit chain intact: ${report.entries} entries, head seq ${report.head!.seq} hash ${report.head!.hash}.`);
          if (report.checkpoint) say(`Entries up to seq ${report.checkpoint.prunedThroughSeq} were removed by retention behind a verified checkpoint.`);
        }
        return EXIT.ok;
      }
      process.stderr.write(`Audit chain BROKEN at entry seq ${report.firstBad!.seq}: ${report.firstBad!.reason}.\n`);
      return EXIT.auditBroken;
    }
    default:
      throw new CliError(`Unknown audit command "${sub ?? ''}".\n\n${AUDIT_USAGE}`, EXIT.usage);
  }
}

function age(createdAt: string): string {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(createdAt)) / 1000));
  return seconds < 90 ? `${seconds}s` : seconds < 5400 ? `${Math.round(seconds / 60)}m` : `${Math.round(seconds / 3600)}h`;
}

/** How many terminal columns a line may take, counted high: any character past U+10FF may be drawn two columns wide. */
function columnsOf(text: string): number {
  let width = 0;
  for (const char of text) width += char.codePointAt(0)! < 0x1100 ? 1 : 2;
  return width;
}

/**
 * Fits a line to the terminal: a line the terminal would wrap lets the agent
 * choose what starts the next screen line (pad a reason until "    input: {...}"
 * lands in the first column), so on a terminal a long line is cut instead and
 * `show N` prints the whole request with every continuation marked.
 */
function fitLine(text: string, columns: number | undefined, hint: string): string {
  if (!columns || columnsOf(text) < columns) return text;
  const room = Math.max(10, columns - 1 - columnsOf(hint) - 1);
  let out = '';
  for (const char of text) {
    if (columnsOf(out + char) > room) break;
    out += char;
  }
  return `${out}…${hint}`;
}

/** Wraps a line to the terminal with a marked gutter on every continuation, so a wrapped piece can never pass for a line of its own. */
function wrapLine(text: string, columns: number | undefined): string[] {
  if (!columns || columnsOf(text) < columns) return [text];
  const gutter = '   ┆ ';
  const room = Math.max(10, columns - 1 - gutter.length);
  const pieces: string[] = [];
  let piece = '';
  for (const char of text) {
    if (columnsOf(piece + char) > room) {
      pieces.push(piece);
      piece = '';
    }
    piece += char;
  }
  pieces.push(piece);
  return pieces.map((p, i) => (i === 0 ? p : `${gutter}${p}`));
}

/**
 * The terminal approvals view: proves the password once, is pushed every
 * new or changed request by the event stream (no polling), and takes
 * `run N [note]`, `decline N [note]`, `show N` and `q` on standard input.
 *
 * A number means the request that was on the screen with it (issue: the
 * agent cancelled the request the operator was reading and made another that
 * took its place in the list): each request gets the next number the first
 * time it is shown, keeps it across redraws, and no number is ever given to
 * another request in the same watch. `run N` for a request that is no longer
 * pending says so and runs nothing.
 */
async function watchCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {}, APPROVALS_USAGE);
  const client = new GatewayClient(gatewayUrl(values.url));
  const db = await client.chooseDatabase(values.db);
  let password: string | undefined;
  // A typed password is read (hidden) before the command reader exists, so it never sees it.
  if (!values['password-stdin']) password = await passwordSource(false).read(passwordPrompt(db));
  const input = createInterface({ input: process.stdin, terminal: false });
  const lines = input[Symbol.asyncIterator]();
  if (password === undefined) {
    const first = await lines.next();
    if (first.done || !first.value) throw new CliError('--password-stdin: the first line of standard input must be the password.', EXIT.usage);
    password = first.value;
  }
  await client.checkingPassword(() => client.call('POST', `/api/databases/${encodeURIComponent(db)}/session`, { password, client: 'cli' }));
  // The session is what this long-lived process keeps; the password is not kept a moment longer.
  password = undefined;
  const path = (suffix: string) => `/api/databases/${encodeURIComponent(db)}${suffix}`;
  const write = (text: string) => process.stdout.write(`${text}\n`);
  const columns = () => (process.stdout.isTTY ? process.stdout.columns : undefined);

  // Numbers only grow: a request keeps the number it was first shown with, and a number never means another request.
  const numberOf = new Map<string, number>();
  const idOf = new Map<number, string>();
  let lastNumber = 0;
  const numberFor = (id: string) => {
    let n = numberOf.get(id);
    if (n === undefined) {
      n = ++lastNumber;
      numberOf.set(id, n);
      idOf.set(n, id);
    }
    return n;
  };

  let pending: RequestView[] = [];
  const render = async () => {
    pending = (await client.call<{ requests: RequestView[] }>('GET', path('/requests?status=approval_pending&limit=100'))).requests.reverse();
    const width = columns();
    const out: string[] = ['', line`-- ${pending.length} pending in "${db}" (${new Date().toLocaleTimeString()}) --`];
    for (const r of pending) {
      const n = numberFor(r.id);
      const more = ` (show ${n})`;
      out.push(fitLine(line`[${n}] ${r.id}  ${r.connectorId}.${r.action} on ${r.targetName}/${r.profileLabel}  by ${r.tokenName}  ${age(r.createdAt)} ago`, width, more));
      if (r.reason) out.push(fitLine(line`    reason: ${r.reason}`, width, more));
      out.push(fitLine(line`    input:  ${preview(r.inputPreview, 500)}`, width, more));
    }
    if (pending.length === 0) out.push('Nothing is waiting.');
    out.push('run N [note] | decline N [note] | show N | q');
    write(out.join('\n'));
  };

  const controller = new AbortController();
  let renderScheduled: NodeJS.Timeout | undefined;
  const scheduleRender = () => {
    clearTimeout(renderScheduled);
    // Several events at once (a burst of requests) render once.
    renderScheduled = setTimeout(() => void render().catch((error: unknown) => process.stderr.write(`aip: ${(error as Error).message}\n`)), 30);
  };
  let ended: string | undefined;
  const lockedMessage = line`Database "${db}" was locked, which ends this session. Unlock it and run aip approvals watch again.`;
  const stream = (async () => {
    while (!controller.signal.aborted) {
      try {
        for await (const event of client.events(controller.signal)) {
          if (event.event === 'ready') write(line`Watching "${db}" for requests (pushed as they arrive).`);
          if (event.event === 'request.created' || event.event === 'request.updated') scheduleRender();
          if (event.event === 'database.locked' && (JSON.parse(event.data) as { database?: string }).database === db) {
            ended = lockedMessage;
            break;
          }
        }
      } catch (error) {
        if (controller.signal.aborted) return;
        const status = (error as { status?: number }).status;
        // A session that is gone (locked, logged out, password changed) does not come back by retrying.
        if (status === 423) ended ??= lockedMessage;
        else if (status === 401 || status === 403 || status === 404) ended ??= 'The session ended (logged out, expired, or the password changed). Run aip approvals watch again.';
        else process.stderr.write(`aip: event stream interrupted (${(error as Error).message}); reconnecting\n`);
      }
      if (ended) {
        process.stderr.write(`aip: ${ended}\n`);
        input.close();
        return;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  await render();

  for (;;) {
    const next = await lines.next();
    if (next.done) break;
    const typed = next.value.trim();
    if (typed === '') continue;
    if (typed === 'q' || typed === 'quit') break;
    const match = /^(r|run|d|decline|s|show)\s+(\d+|req_\w+)(?:\s+(.*))?$/i.exec(typed);
    if (!match) {
      write('Type: run N [note], decline N [note], show N (N is the number in brackets, or the request id), or q');
      continue;
    }
    const verb = ({ r: 'run', d: 'decline', s: 'show' } as const)[match[1]!.toLowerCase()[0] as 'r' | 'd' | 's'];
    const byNumber = /^\d+$/.test(match[2]!);
    // A number names the request it was shown with, whatever the list looks like now; an id names itself.
    const id = byNumber ? idOf.get(Number(match[2])) : match[2]!;
    if (id === undefined) {
      write(line`There is no pending request number ${match[2]}.`);
      continue;
    }
    const label = byNumber ? `Request ${match[2]} (${id})` : `Request ${id}`;
    try {
      if (verb === 'show') {
        const { request } = await client.call<{ request: RequestView }>('GET', path(`/requests/${encodeURIComponent(id)}`));
        write(detailLines(request).flatMap((text) => wrapLine(text, columns())).join('\n'));
        continue;
      }
      // It left the list (run, declined, cancelled by the agent, expired, stale): say what became of it; nothing runs.
      const noLongerPending = async () => {
        const known = await client.call<{ request: RequestView }>('GET', path(`/requests/${encodeURIComponent(id)}`)).catch(() => undefined);
        const state = known ? line`: it is ${known.request.status}` + (known.request.statusReason ? line` (${known.request.statusReason})` : '') : '';
        write(`${label} is no longer pending${state}. Nothing was ${verb === 'run' ? 'run' : 'declined'}.`);
      };
      if (!pending.some((r) => r.id === id)) {
        await noLongerPending();
        continue;
      }
      let result: RequestView;
      try {
        ({ request: result } = await client.call<{ request: RequestView }>('POST', path(`/requests/${encodeURIComponent(id)}/${verb}`), match[3] ? { note: match[3] } : {}));
      } catch (error) {
        // It moved on between the last redraw and this line (the gateway checks; nothing ran).
        if (error instanceof CliError && error.code === 'request_state_conflict') {
          await noLongerPending();
          continue;
        }
        throw error;
      }
      pending = pending.filter((r) => r.id !== id);
      const [status, ...rest] = outcomeLines(result, 300);
      // One line for the decision and the start of the output, as the list shows it.
      write([status + (rest[0]?.startsWith('output: ') ? `  ${rest.shift()}` : ''), ...rest].join('\n'));
    } catch (error) {
      write(line`${id}: ${new Shown((error as Error).message)}`);
    }
  }
  controller.abort();
  clearTimeout(renderScheduled);
  await stream.catch(() => undefined);
  input.close();
  return ended ? EXIT.error : EXIT.ok;
}
