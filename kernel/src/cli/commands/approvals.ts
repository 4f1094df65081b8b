import { parse, requirePositional } from '../args.js';
import { CliError, EXIT } from '../errors.js';
import { printJson, printTable, say, visible } from '../output.js';
import { asOperator } from '../operator.js';
import { createInterface } from 'node:readline';
import { GatewayClient, gatewayUrl } from '../client.js';
import { passwordSource } from '../prompt.js';

export const APPROVALS_USAGE = `aip approvals list [--status approval_pending|running|completed|...] [--all] [--json]
aip approvals run REQUEST_ID [--note TEXT]
aip approvals decline REQUEST_ID [--note TEXT]
aip approvals watch        live view of pending requests; type: run N [note] | decline N [note] | q
options: [--db NAME] [--password-stdin] [--url URL]`;

export const AUDIT_USAGE = `aip audit search [WORDS...] [--event EVENT] [--limit N] [--json]
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
  error: { message: string } | null;
  createdAt: string;
}

const preview = (value: unknown, max = 80) => {
  const text = visible(JSON.stringify(value));
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
};

export async function approvalsCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'watch') return watchCommand(rest);
  const { values, positionals } = parse(rest, { status: { type: 'string' }, all: { type: 'boolean' }, note: { type: 'string' }, limit: { type: 'string' } }, APPROVALS_USAGE);
  switch (sub) {
    case 'list': {
      const op = await asOperator(values);
      const status = values.all ? undefined : (values.status ?? 'approval_pending');
      const query = new URLSearchParams({ ...(status ? { status } : {}), ...(values.limit ? { limit: values.limit } : {}) });
      const { requests } = await op.client.call<{ requests: RequestView[] }>('GET', op.path(`/requests${query.size ? `?${query}` : ''}`));
      if (values.json) printJson(requests);
      else
        printTable(
          requests.map((r) => ({ ...r, what: `${r.connectorId}.${r.action}`, target: `${r.targetName}/${r.profileLabel}`, input: preview(r.inputPreview), reason: visible(r.reason) })),
          [['id', 'ID'], ['status', 'STATUS'], ['what', 'ACTION'], ['target', 'TARGET'], ['tokenName', 'TOKEN'], ['createdAt', 'CREATED'], ['input', 'INPUT'], ['reason', 'REASON']],
          status === 'approval_pending' ? 'Nothing is waiting for approval.' : 'No requests.',
        );
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
      say(`${request.id}: ${request.status}${request.statusReason ? ` (${request.statusReason})` : ''}`);
      if (request.status === 'completed') say(`output: ${preview(request.output, 2000)}`);
      if (request.error) say(`error: ${request.error.message}`);
      return request.status === 'stale' ? EXIT.error : EXIT.ok;
    }
    default:
      throw new CliError(`Unknown approvals command "${sub ?? ''}".\n\n${APPROVALS_USAGE}`, EXIT.usage);
  }
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
  const { values, positionals } = parse(rest, { event: { type: 'string' }, limit: { type: 'string' } }, AUDIT_USAGE);
  switch (sub) {
    case 'search': {
      const op = await asOperator(values);
      const query = new URLSearchParams({
        ...(positionals.length ? { q: positionals.join(' ') } : {}),
        ...(values.event ? { event: values.event } : {}),
        limit: values.limit ?? '50',
      });
      const { entries } = await op.client.call<{ entries: Array<{ seq: number; ts: string; actor: string; event: string; subject: Record<string, string>; payload: unknown }> }>(
        'GET',
        op.path(`/audit?${query}`),
      );
      if (values.json) printJson(entries);
      else
        printTable(
          entries.map((e) => ({ ...e, subject: Object.values(e.subject).join(' '), payload: preview(e.payload, 100) })),
          [['seq', 'SEQ'], ['ts', 'TIME'], ['event', 'EVENT'], ['actor', 'ACTOR'], ['subject', 'SUBJECT'], ['payload', 'DETAILS']],
          'No matching audit entries.',
        );
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

/**
 * The terminal approvals view: proves the password once, is pushed every
 * new or changed request by the event stream (no polling), and takes
 * `run N [note]`, `decline N [note]` and `q` on standard input.
 */
async function watchCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {}, APPROVALS_USAGE);
  const client = new GatewayClient(gatewayUrl(values.url));
  const db = await client.chooseDatabase(values.db);
  let password: string | undefined;
  // A typed password is read (hidden) before the command reader exists, so it never sees it.
  if (!values['password-stdin']) password = await passwordSource(false).read(`Password for database "${db}": `);
  const input = createInterface({ input: process.stdin, terminal: false });
  const lines = input[Symbol.asyncIterator]();
  if (password === undefined) {
    const first = await lines.next();
    if (first.done || !first.value) throw new CliError('--password-stdin: the first line of standard input must be the password.', EXIT.usage);
    password = first.value;
  }
  await client.call('POST', `/api/databases/${encodeURIComponent(db)}/session`, { password, client: 'cli' });
  const path = (suffix: string) => `/api/databases/${encodeURIComponent(db)}${suffix}`;

  let pending: RequestView[] = [];
  const render = async () => {
    pending = (await client.call<{ requests: RequestView[] }>('GET', path('/requests?status=approval_pending&limit=100'))).requests.reverse();
    const out: string[] = ['', `-- ${pending.length} pending in "${db}" (${new Date().toLocaleTimeString()}) --`];
    pending.forEach((r, index) => {
      out.push(`[${index + 1}] ${r.id}  ${r.connectorId}.${r.action} on ${r.targetName}/${r.profileLabel}  by ${r.tokenName}  ${age(r.createdAt)} ago`);
      if (r.reason) out.push(`    reason: ${visible(r.reason)}`);
      out.push(`    input:  ${preview(r.inputPreview, 500)}`);
    });
    if (pending.length === 0) out.push('Nothing is waiting.');
    out.push('run N [note] | decline N [note] | q');
    process.stdout.write(`${out.join('\n')}\n`);
  };

  const controller = new AbortController();
  let renderScheduled: NodeJS.Timeout | undefined;
  const scheduleRender = () => {
    clearTimeout(renderScheduled);
    // Several events at once (a burst of requests) render once.
    renderScheduled = setTimeout(() => void render().catch((error: unknown) => process.stderr.write(`aip: ${(error as Error).message}\n`)), 30);
  };
  let ended: string | undefined;
  const lockedMessage = `Database "${db}" was locked, which ends this session. Unlock it and run aip approvals watch again.`;
  const stream = (async () => {
    while (!controller.signal.aborted) {
      try {
        for await (const event of client.events(controller.signal)) {
          if (event.event === 'ready') process.stdout.write(`Watching "${db}" for requests (pushed as they arrive).\n`);
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
    const line = next.value.trim();
    if (line === '') continue;
    if (line === 'q' || line === 'quit') break;
    const match = /^(r|run|d|decline)\s+(\d+|req_\w+)(?:\s+(.*))?$/i.exec(line);
    if (!match) {
      process.stdout.write('Type: run N [note], decline N [note] (N is the number in brackets, or the request id), or q\n');
      continue;
    }
    // A number is the position in the list as last shown; an id is unambiguous even if the list moved since.
    const request = /^\d+$/.test(match[2]!) ? pending[Number(match[2]) - 1] : pending.find((r) => r.id === match[2]);
    if (!request) {
      process.stdout.write(`There is no pending request ${/^\d+$/.test(match[2]!) ? 'number ' : ''}${match[2]}.\n`);
      continue;
    }
    const verb = match[1]!.toLowerCase().startsWith('r') ? 'run' : 'decline';
    try {
      const { request: result } = await client.call<{ request: RequestView }>('POST', path(`/requests/${request.id}/${verb}`), match[3] ? { note: match[3] } : {});
      process.stdout.write(`${result.id}: ${result.status}${result.statusReason ? ` (${result.statusReason})` : ''}${result.status === 'completed' ? `  output: ${preview(result.output, 300)}` : ''}\n`);
    } catch (error) {
      process.stdout.write(`${request.id}: ${(error as Error).message}\n`);
    }
  }
  controller.abort();
  clearTimeout(renderScheduled);
  await stream.catch(() => undefined);
  input.close();
  return ended ? EXIT.error : EXIT.ok;
}
