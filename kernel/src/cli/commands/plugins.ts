import { resolve } from 'node:path';
import { parse, requirePositional } from '../args.js';
import { CliError, EXIT } from '../errors.js';
import { line, printJson, printTable, say } from '../output.js';
import { asOperator } from '../operator.js';
import { confirm } from '../prompt.js';
import { scaffoldPlugin } from '../scaffold.js';

export const PLUGIN_USAGE = `aip plugin list [--json]                  connectors: built-in and installed, with state, sandbox level and network
aip plugin install SOURCE [--yes]         a folder, a .tgz, or an npm package name; shows what it asks for, then asks you
aip plugin remove ID                      uninstall (built-ins cannot be removed)
aip plugin verify ID                      exit 0 if its files, manifest and entry are what was approved, 1 if not
aip plugin restart ID                     stop it and lift a quarantine
aip plugin log ID                         its recent log (stderr), redacted
aip plugin new NAME [--dir DIR]           scaffold a connector that passes the conformance suite
options: [--db NAME] [--password-stdin] [--url URL]`;

interface PluginSummary {
  id: string;
  version: string;
  title: string;
  description?: string;
  transports?: string[];
  actions?: Array<{ name: string; title: string; risk: string }>;
  credentials?: Record<string, { fields: string[]; secret: string[] }>;
}

interface SandboxReport {
  level: string;
  bwrap: boolean;
  network: string;
  networkIsolated: boolean;
  identity?: string;
  canSignalGateway?: boolean;
  memoryLimitBytes?: number | null;
}

/** What the plugin will reach once approved (the host's sandbox), and how the inspection ran it. */
interface ReachReport {
  sandbox: string;
  network: string;
  files: string;
  scratch: { path: string; quotaBytes: number | null; persists?: boolean; lives?: string };
  identity?: string;
  memoryLimitBytes?: number | null;
  processes: string;
  otherProcesses: string;
}
interface InspectionReport {
  network: string;
  scratch: string;
  timeoutMs: number;
}

const mib = (bytes: number) => `${Math.round((bytes / 1024 / 1024) * 10) / 10} MiB`;

/** Said plainly when plugins can reach the network themselves (invariant 3 holds only under bubblewrap). */
const noNetworkIsolation = (network: string) =>
  `warning: connectors have no network isolation here (${network}): they can connect to anything this machine can, not only to the endpoints the gateway opens for them. Install bubblewrap with unprivileged user namespaces (Debian/Ubuntu: sudo apt-get install bubblewrap) and restart the gateway; aip doctor checks it.\n`;

/** Said at install and in the list where plugins run without a pid namespace (issue 10 item 9). */
const canSignal =
  'warning: without bubblewrap a connector can signal the gateway and your other processes (stop it with SIGSTOP, kill it): there is no pid namespace. To refuse running third-party connectors here, turn on requireBwrapForThirdParty: aip settings set requireBwrapForThirdParty=true (or in the UI, Settings)\n';

/** What the operator is asked to trust. Every word of it is the plugin's own (its manifest): escaped, one line per field (invariant 8). */
function describePlugin(plugin: PluginSummary, integrity: string, sandbox: SandboxReport, reach?: ReachReport, inspected?: InspectionReport): string {
  const lines = [
    line`${plugin.title} (${plugin.id} ${plugin.version})`,
    plugin.description ? line`  ${plugin.description}` : '',
    line`  integrity: ${integrity}`,
    line`  sandbox:   ${sandbox.level}`,
    line`  network:   ${sandbox.network}`,
    ...(reach
      ? [
          line`  files:     ${reach.files}`,
          line`  scratch:   ${reach.scratch.path}, ${reach.scratch.lives ?? (reach.scratch.persists === false ? 'not kept' : 'kept between runs')}, ${reach.scratch.quotaBytes === null ? 'no quota' : `quota ${mib(reach.scratch.quotaBytes)}`}`,
          line`  memory:    ${reach.memoryLimitBytes ? `at most ${mib(reach.memoryLimitBytes)} of address space for its whole process` : 'only its JavaScript heap is capped (256 MiB): prlimit is missing'}`,
          ...(reach.identity ? [line`  runs as:   ${reach.identity}`] : []),
          line`  processes: ${reach.processes}`,
          line`  your processes: ${reach.otherProcesses}`,
        ]
      : []),
    ...(inspected
      ? [line`  inspected: it already ran once, to show this: network ${inspected.network}; scratch ${inspected.scratch}; no endpoint; killed after ${inspected.timeoutMs / 1000} s at most`]
      : []),
    line`  transports: ${(plugin.transports ?? []).join(', ')}`,
    '  actions:',
    ...(plugin.actions ?? []).map((a) => line`    ${a.risk.padEnd(11)} ${a.name}  ${a.title}`),
    '  at each call it receives, from the one credential profile the call uses:',
    ...Object.entries(plugin.credentials ?? {}).map(
      ([kind, c]) => line`    ${kind}: ${c.fields.map((f) => (c.secret.includes(f) ? `${f} (secret)` : f)).join(', ') || '(nothing)'}`,
    ),
  ];
  return lines.filter((line) => line !== '').join('\n');
}

export async function pluginCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse(rest, { yes: { type: 'boolean' }, dir: { type: 'string' } }, PLUGIN_USAGE);
  switch (sub) {
    case 'new': {
      const name = requirePositional(positionals, 0, 'the connector name', PLUGIN_USAGE);
      const dir = await scaffoldPlugin(name, values.dir ? resolve(values.dir) : resolve(name));
      say(line`Created connector "${name}" in ${dir}.`);
      say(line`Next: cd ${dir} && npm install && npm test    (builds it and runs the conformance suite)`);
      say(line`Then: aip plugin install ${dir}`);
      return EXIT.ok;
    }
    case 'list': {
      const op = await asOperator(values);
      const { plugins, sandbox } = await op.client.call<{
        sandbox: SandboxReport;
        plugins: Array<{
          id: string;
          version: string;
          title: string;
          kind: string;
          approved: boolean;
          approvalProblem?: string | null;
          approval: unknown;
          status: { state: string; crashes: number; lastError?: string | null; quarantined: { reason: string } | null; sandbox: SandboxReport };
        }>;
      }>('GET', op.path('/plugins'));
      if (values.json) {
        printJson({ sandbox, plugins });
        return EXIT.ok;
      }
      const exposed = [sandbox, ...plugins.map((p) => p.status.sandbox)].find((s) => !s.networkIsolated);
      if (exposed) process.stderr.write(noNetworkIsolation(exposed.network));
      if ([sandbox, ...plugins.map((p) => p.status.sandbox)].some((s) => s.canSignalGateway)) process.stderr.write(canSignal);
      printTable(
        plugins.map((p) => ({
          ...p,
          approvedText: p.kind === 'builtin' ? (p.approved ? 'built-in' : 'NO PIN') : p.approved ? 'approved' : p.approval ? 'CHANGED: re-approve' : 'not approved',
          state: p.status.quarantined ? `quarantined: ${p.status.quarantined.reason}` : p.status.state,
          sandboxLevel: p.status.sandbox.level,
          network: p.status.sandbox.network,
          signals: p.status.sandbox.canSignalGateway ? 'can signal the gateway' : 'pid namespace',
          crashes: p.status.crashes,
        })),
        [['id', 'ID'], ['version', 'VERSION'], ['approvedText', 'TRUST'], ['state', 'STATE'], ['sandboxLevel', 'SANDBOX'], ['network', 'NETWORK'], ['signals', 'SIGNALS'], ['crashes', 'CRASHES'], ['title', 'TITLE']],
        'No connectors.',
      );
      // What differs from the approval, said once per plugin that will not run.
      for (const p of plugins) if (!p.approved && p.approvalProblem) process.stderr.write(line`${p.id} ${p.version}: ${p.approvalProblem}\n`);
      // Why a plugin was stopped (a flood, a quota, not reading its stdin), said once per plugin.
      for (const p of plugins) if (p.status.lastError && p.status.state !== 'ready') process.stderr.write(line`${p.id} ${p.version}: last stopped: ${p.status.lastError}\n`);
      return EXIT.ok;
    }
    case 'install': {
      const source = requirePositional(positionals, 0, 'a folder, a .tgz file or an npm package name', PLUGIN_USAGE);
      const local = /^[./~]/.test(source) || source.endsWith('.tgz') ? resolve(source) : source;
      const op = await asOperator(values);
      const inspected = await op.client.call<{
        inspection: string;
        plugin: PluginSummary;
        integrity: string;
        sandbox: SandboxReport;
        reach?: ReachReport;
        inspectedWith?: InspectionReport;
        replaces: { version: string } | null;
        requireBwrap: boolean;
      }>(
        'POST',
        op.path('/plugins/inspect'),
        { source: local },
      );
      process.stderr.write(`${describePlugin(inspected.plugin, inspected.integrity, inspected.sandbox, inspected.reach, inspected.inspectedWith)}\n`);
      if (inspected.replaces) process.stderr.write(line`  replaces version ${inspected.replaces.version}; pending approvals for it will go stale\n`);
      if (inspected.requireBwrap && !inspected.sandbox.bwrap) process.stderr.write('  warning: this database requires bubblewrap for third-party connectors, which is not available here: it will not run\n');
      else {
        if (!inspected.sandbox.networkIsolated) process.stderr.write(`  ${noNetworkIsolation(inspected.sandbox.network)}`);
        if (inspected.sandbox.canSignalGateway) process.stderr.write(`  ${canSignal}`);
      }
      if (!values.yes && !(await confirm(line`Install ${inspected.plugin.id} ${inspected.plugin.version} and trust it in database "${op.db}"?`))) {
        say('Not installed.');
        return EXIT.error;
      }
      await op.client.call('POST', op.path('/plugins'), { inspection: inspected.inspection, integrity: inspected.integrity });
      say(line`Installed and approved ${inspected.plugin.id} ${inspected.plugin.version} in "${op.db}".`);
      return EXIT.ok;
    }
    case 'remove':
    case 'verify':
    case 'restart':
    case 'log': {
      const id = requirePositional(positionals, 0, 'the plugin id', PLUGIN_USAGE);
      const op = await asOperator(values);
      const path = op.path(`/plugins/${encodeURIComponent(id)}`);
      if (sub === 'remove') {
        await op.client.call('DELETE', path);
        say(line`Removed ${id}; its pending approvals are now stale.`);
        return EXIT.ok;
      }
      if (sub === 'restart') {
        await op.client.call('POST', `${path}/restart`);
        say(line`Restarted ${id} (it starts again on its next call).`);
        return EXIT.ok;
      }
      if (sub === 'log') {
        const { lines } = await op.client.call<{ lines: string[] }>('GET', `${path}/log`);
        if (values.json) printJson(lines);
        // The plugin's stderr, line by line: each line escaped, so a plugin cannot forge lines or rewrite the terminal.
        else say(lines.length ? lines.map((text) => line`${text}`).join('\n') : '(no log lines)');
        return EXIT.ok;
      }
      const report = await op.client.call<{
        intact: boolean;
        integrity: string | null;
        approvedIntegrity: string | null;
        version: string;
        kind?: 'builtin' | 'installed';
        differences?: string[];
        problem?: string | null;
      }>('POST', `${path}/verify`);
      if (values.json) printJson(report);
      if (report.intact) {
        if (!values.json) say(line`${id} ${report.version}: files, manifest and entry intact (${report.integrity ?? ''}).`);
        return EXIT.ok;
      }
      const differences = report.differences ?? [];
      const filesChanged = report.integrity !== report.approvedIntegrity;
      process.stderr.write(
        report.kind === 'builtin'
          ? line`${id} ${report.version}: built-in files CHANGED since the build pinned them (now ${report.integrity ?? 'unreadable'}, pinned ${report.approvedIntegrity ?? 'nothing'}). It will not start. If the change is yours, rebuild (npm start builds) and restart the gateway; if not, someone rewrote the installation (see aip doctor).\n`
          : report.approvedIntegrity
          ? line`${id} ${report.version}: ${filesChanged ? 'files CHANGED since approval' : 'install record CHANGED since approval'} (${differences.join('; ') || report.problem || 'it differs from the approval'}). It will not start until re-approved: aip plugin install <its source>. A process already running was started from the approved bytes.\n`
          : line`${id} ${report.version}: not approved in this database.\n`,
      );
      return EXIT.error;
    }
    default:
      throw new CliError(`Unknown plugin command "${sub ?? ''}".\n\n${PLUGIN_USAGE}`, EXIT.usage);
  }
}
