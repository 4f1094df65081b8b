import { constants as fsConstants } from 'node:fs';
import { access, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hardeningState } from '../../lib/harden.js';
import { detectBwrap, sandboxLevel } from '../../plugin-host/index.js';
import { resolveDataDir } from '../../vault/index.js';
import { parse } from '../args.js';
import { EXIT } from '../errors.js';
import { GatewayClient, gatewayUrl, type GatewayStatus } from '../client.js';
import { line, printJson, say } from '../output.js';

export const DOCTOR_USAGE = `aip doctor [--url URL] [--data-dir DIR] [--json]
Checks what an agent running as your user could do to this installation (docs/security.md,
"Same-user limits") and says how to close each gap. Exit 1 when a check failed.`;

type Level = 'ok' | 'warn' | 'fail' | 'info';

export interface DoctorCheck {
  name: string;
  level: Level;
  detail: string;
  /** What to do about it, when there is something to do. */
  fix?: string;
}

/** The installation: this checkout (kernel/dist/cli/commands -> repository root). */
const INSTALL_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

async function writable(path: string): Promise<boolean> {
  try {
    await access(path, fsConstants.W_OK);
    return true;
  } catch {
    return false;
  }
}

async function codeWritable(): Promise<DoctorCheck> {
  const candidates = ['kernel/bin/aip.js', 'kernel/dist', 'kernel/dist/native/harden.node', 'plugins/redis/dist', 'node_modules'].map((rel) => join(INSTALL_ROOT, rel));
  const open: string[] = [];
  for (const path of candidates) if (await writable(path).catch(() => false)) open.push(path);
  if (open.length === 0) return { name: 'code', level: 'ok', detail: `the gateway's code in ${INSTALL_ROOT} is not writable by this user` };
  return {
    name: 'code',
    level: 'warn',
    detail: `this user can rewrite the gateway's code (${open.slice(0, 2).join(', ')}${open.length > 2 ? ', ...' : ''}): an agent running as this user could change what the gateway does the next time it starts`,
    fix: 'install AIPermission as another user (e.g. clone it into /opt/aipermission owned by root, build it there, and run it from there), or run the agent under its own account or in a container',
  };
}

async function ptraceScope(): Promise<DoctorCheck> {
  if (process.platform !== 'linux') return { name: 'ptrace', level: 'info', detail: `not Linux (${process.platform}): no Yama check` };
  const raw = await readFile('/proc/sys/kernel/yama/ptrace_scope', 'utf8').catch(() => undefined);
  if (raw === undefined) {
    return {
      name: 'ptrace',
      level: 'warn',
      detail: 'this kernel has no Yama ptrace restrictions: any process of a user may debug any other process of the same user (the gateway and aip protect themselves; your shell, editor and browser do not)',
      fix: 'use a kernel with Yama (CONFIG_SECURITY_YAMA) and set kernel.yama.ptrace_scope = 1, or run the agent under its own account',
    };
  }
  const scope = Number(raw.trim());
  if (scope >= 1) return { name: 'ptrace', level: 'ok', detail: `kernel.yama.ptrace_scope = ${scope}: processes may only debug their own children` };
  return {
    name: 'ptrace',
    level: 'warn',
    detail: 'kernel.yama.ptrace_scope = 0: any process may debug any other process of the same user',
    fix: 'sudo sysctl kernel.yama.ptrace_scope=1 (and put it in /etc/sysctl.d/ to keep it)',
  };
}

function bubblewrap(): DoctorCheck {
  if (process.platform !== 'linux') return { name: 'sandbox', level: 'info', detail: 'bubblewrap is Linux only; plugins run under Node\'s permission model alone' };
  const bwrap = detectBwrap();
  const { network, networkIsolated } = sandboxLevel('auto');
  if (bwrap && networkIsolated) return { name: 'sandbox', level: 'ok', detail: `bubblewrap (${bwrap}) works here: plugins run in their own namespaces, with no network but the endpoints the gateway opens` };
  if (bwrap) {
    return {
      name: 'sandbox',
      level: 'warn',
      detail: `bubblewrap (${bwrap}) works here but cannot give plugins an empty network namespace: network ${network}`,
      fix: 'allow unprivileged network namespaces (user namespaces with CLONE_NEWNET) for bubblewrap',
    };
  }
  return {
    name: 'sandbox',
    level: 'warn',
    detail: "bubblewrap is missing or cannot create namespaces here: plugins run under Node's permission model alone, with this machine's network, and can signal the gateway (no pid namespace)",
    fix: 'install bubblewrap (Debian/Ubuntu: sudo apt-get install bubblewrap) and allow unprivileged user namespaces',
  };
}

/** What bounds a plugin process as a whole (issue 10 items 6 and 7): prlimit, and who it runs as. */
function pluginLimits(): DoctorCheck {
  const level = sandboxLevel('auto');
  if (level.identity === 'root, with every capability (no bubblewrap)') {
    return { name: 'plugin limits', level: 'warn', detail: 'the gateway would run as root without bubblewrap: its plugins would be root with every capability', fix: 'run the gateway as a normal user, or install bubblewrap' };
  }
  if (level.memoryLimitBytes === null) {
    return { name: 'plugin limits', level: 'warn', detail: 'prlimit is missing: only the V8 heap of a plugin is capped (not its Buffers, open files or file sizes)', fix: 'install util-linux (it has prlimit)' };
  }
  return { name: 'plugin limits', level: 'ok', detail: `plugins run as ${level.identity}, with at most ${level.memoryLimitBytes / 1024 / 1024} MiB of address space and a ${level.scratchQuotaBytes / 1024 / 1024} MiB scratch (${level.scratch})` };
}

function thisProcess(): DoctorCheck {
  const state = hardeningState();
  if (state.problems.length === 0) return { name: 'aip process', level: 'ok', detail: 'this aip process is not dumpable and ignores SIGUSR1' };
  return { name: 'aip process', level: 'fail', detail: state.problems.join('; '), fix: 'rebuild (npm start, or node kernel/scripts/build.mjs) so kernel/dist/native/harden.node exists; it needs a C compiler' };
}

function gatewayProcess(status: GatewayStatus | undefined, url: string): DoctorCheck {
  if (!status) return { name: 'gateway', level: 'info', detail: `no gateway answers at ${url} (start one with aip start, then run aip doctor again)` };
  const p = status.process;
  const problems = [
    ...(p.dumpable !== false ? [p.dumpable === null ? 'its dumpable state is unknown' : 'it is dumpable (its memory is readable by this user)'] : []),
    ...(p.sigusr1Ignored ? [] : ['SIGUSR1 would open its inspector']),
    ...(p.inspectorOpen ? ['an inspector is open in it'] : []),
  ];
  if (problems.length === 0) return { name: 'gateway', level: 'ok', detail: `the gateway (pid ${p.pid}, ${url}) is not dumpable, ignores SIGUSR1 and has no inspector open` };
  return { name: 'gateway', level: 'fail', detail: `the gateway (pid ${p.pid}): ${problems.join('; ')}`, fix: 'restart it from a fresh build (npm start); check its start-up warnings' };
}

async function dataDirPermissions(dataDir: string): Promise<DoctorCheck[]> {
  const info = await stat(dataDir).catch(() => undefined);
  if (!info) return [{ name: 'data directory', level: 'info', detail: `${dataDir} does not exist yet` }];
  const checks: DoctorCheck[] = [];
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid) {
    checks.push({ name: 'data directory', level: 'warn', detail: `${dataDir} is owned by uid ${info.uid}, not by you (${uid})`, fix: `chown -R $(id -u) ${dataDir}` });
  }
  if ((info.mode & 0o077) !== 0) {
    checks.push({ name: 'data directory', level: 'warn', detail: `${dataDir} is accessible to other users (mode ${(info.mode & 0o777).toString(8)})`, fix: `chmod 700 ${dataDir}` });
  }
  const databases = join(dataDir, 'databases');
  const loose: string[] = [];
  for (const name of await readdir(databases).catch(() => [] as string[])) {
    const file = await stat(join(databases, name)).catch(() => undefined);
    if (file?.isFile() && (file.mode & 0o077) !== 0) loose.push(name);
  }
  if (loose.length > 0) checks.push({ name: 'database files', level: 'warn', detail: `readable by other users: ${loose.join(', ')}`, fix: `chmod 600 ${databases}/*` });
  if (!checks.some((check) => check.name === 'data directory')) checks.unshift({ name: 'data directory', level: 'ok', detail: `${dataDir} is yours alone (mode 700)` });
  checks.push({
    name: 'same account',
    level: 'info',
    detail: 'an agent running as this same user can still copy or replace the encrypted database files (it cannot open them without the password); a replaced older copy is reported at unlock',
    fix: 'run the agent under its own account or in a container, and keep a copy of the audit head (aip audit verify prints it) somewhere the agent cannot write',
  });
  return checks;
}

function runningAsRoot(): DoctorCheck | undefined {
  if (process.getuid?.() !== 0) return undefined;
  return {
    name: 'user',
    level: 'warn',
    detail: 'you run aip as root: an agent with root can read any process and file, whatever the gateway does',
    fix: 'run the gateway and the agent as ordinary users, ideally different ones',
  };
}

function nodeVersion(): DoctorCheck {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  const native = major > 22 || (major === 22 && minor >= 14);
  return {
    name: 'node',
    level: 'info',
    detail: `Node.js ${process.versions.node}${native ? ' (has --disable-sigusr1; aip ignores SIGUSR1 itself either way)' : ' (aip ignores SIGUSR1 itself through its hardening addon)'}`,
  };
}

export async function doctorCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {}, DOCTOR_USAGE);
  const client = new GatewayClient(gatewayUrl(values.url));
  const status = await client.status().catch(() => undefined);
  const dataDir = values['data-dir'] ? resolveDataDir(values['data-dir']) : (status?.dataDir ?? resolveDataDir(undefined));
  const checks: DoctorCheck[] = [
    ...[runningAsRoot()].filter((check): check is DoctorCheck => check !== undefined),
    thisProcess(),
    gatewayProcess(status, client.baseUrl),
    await codeWritable(),
    await ptraceScope(),
    bubblewrap(),
    pluginLimits(),
    ...(await dataDirPermissions(dataDir)),
    nodeVersion(),
  ];
  if (values.json) printJson({ dataDir, checks });
  else {
    const label: Record<Level, string> = { ok: 'OK  ', warn: 'WARN', fail: 'FAIL', info: 'INFO' };
    for (const check of checks) {
      say(`${label[check.level]}  ${line`${check.name}: ${check.detail}`}`);
      if (check.fix && check.level !== 'ok') say(line`      what to do: ${check.fix}`);
    }
    const warnings = checks.filter((check) => check.level === 'warn').length;
    const failures = checks.filter((check) => check.level === 'fail').length;
    say(failures ? `${failures} check(s) failed.` : warnings ? `No failures; ${warnings} thing(s) an agent on this account could use (see docs/security.md).` : 'All checks passed.');
  }
  return checks.some((check) => check.level === 'fail') ? EXIT.error : EXIT.ok;
}
