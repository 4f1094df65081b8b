import { parse, requirePositional } from '../args.js';
import { CliError, EXIT } from '../errors.js';
import { printJson, printTable, say, visible } from '../output.js';
import { asOperator } from '../operator.js';

export const APPROVALS_USAGE = `aip approvals list [--status approval_pending|running|completed|...] [--all] [--json]
aip approvals run REQUEST_ID [--note TEXT]
aip approvals decline REQUEST_ID [--note TEXT]
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
