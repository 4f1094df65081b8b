import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readlinkSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import type { PinnedFile } from './builtin-pins.js';

/**
 * What a plugin can reach on the network, said plainly (invariant 3):
 * - `none (endpoint only)`: under bubblewrap, in an empty network namespace;
 *   the endpoint socket the kernel puts in its sandbox is all it can reach;
 * - `host network (no bubblewrap)`: the machine's network, like any process
 *   of the user (Node's permission model does not cover the network);
 * - `host network (bubblewrap cannot unshare the network here)`: bubblewrap
 *   runs, but this kernel refuses it a network namespace.
 */
export type NetworkIsolation = 'none (endpoint only)' | 'host network (no bubblewrap)' | 'host network (bubblewrap cannot unshare the network here)';

/** How a plugin process is confined; reported per plugin in `aip plugin list`. */
export interface SandboxLevel {
  /** Node's permission model: fs read = plugin code, fs write = its scratch dir, no child processes, no workers. */
  nodePermission: boolean;
  /** bubblewrap: a mount namespace without the data directory, private /tmp, pid namespace, no new privileges. */
  bwrap: boolean;
  /** `bwrap+node-permission` or `node-permission`. */
  level: string;
  /** What the plugin can reach on the network. */
  network: NetworkIsolation;
  /** True only for `none (endpoint only)`: the endpoint is the only thing it can reach. */
  networkIsolated: boolean;
  /** Who the plugin runs as, said plainly (issue 10 item 7: a root gateway must not hand its plugins root). */
  identity: PluginIdentity;
  /** Whether it holds no capability at all (CapEff 0): it cannot bind a port below 1024, change owners, load modules. */
  noCapabilities: boolean;
  /**
   * Whether the plugin can send the gateway a signal (SIGSTOP, SIGKILL): true
   * without bubblewrap, where no pid namespace separates them (issue 10
   * item 9). The gateway notices a stop it survives (lib/stall-watch.ts).
   */
  canSignalGateway: boolean;
  /**
   * The address-space limit of the whole plugin process (RLIMIT_AS: V8 heap,
   * Buffers, native memory), or null where `prlimit` is missing and only the
   * V8 heap is capped (PLUGIN_HEAP_MB).
   */
  memoryLimitBytes: number | null;
  /** The most its scratch (and /tmp under bubblewrap) may hold; enforced as `scratch` says. */
  scratchQuotaBytes: number;
  /**
   * Where scratch lives and how long: under bubblewrap a size-limited tmpfs in
   * memory that is gone with the process; without it a folder in the data
   * directory, each file capped by RLIMIT_FSIZE and the total watched by the
   * host (over quota: killed), removed when the process stops.
   */
  scratch: 'tmpfs, gone with the process' | 'folder on disk, removed when the process stops';
}

/**
 * Who a plugin runs as:
 * - `nobody, in a user namespace of its own, no capabilities`: under bubblewrap with user namespaces;
 * - `the gateway's user, no capabilities`: bubblewrap without user namespaces, or no bubblewrap and a gateway not run as root;
 * - `root, with every capability (no bubblewrap)`: a gateway run as root without bubblewrap (run it as a normal user).
 */
export type PluginIdentity = 'nobody, in a user namespace of its own, no capabilities' | "the gateway's user, no capabilities" | 'root, with every capability (no bubblewrap)';

/** Where the endpoint directory appears inside the sandbox (a tmpfs /run holding only it). */
export const SANDBOX_ENDPOINT_DIR = '/run/ep';

export type BwrapMode = 'auto' | 'off';

/** The node flag of the permission model: `--permission` where Node has it (22+), else `--experimental-permission` (20). */
export function nodePermissionFlag(): string {
  return process.allowedNodeEnvironmentFlags.has('--permission') ? '--permission' : '--experimental-permission';
}

interface BwrapProbe {
  path: string;
  unshareNet: boolean;
  /** `--unshare-user --uid 65534 --gid 65534` works here (user namespaces are allowed). */
  unshareUser: boolean;
}
let bwrapProbe: BwrapProbe | null | undefined;

/**
 * The bwrap binary if it exists and can actually create namespaces here
 * (user namespaces may be disabled), probed once with a trivial command,
 * and whether it may also give the plugin an empty network namespace.
 */
function probeBwrap(): BwrapProbe | null {
  if (bwrapProbe !== undefined) return bwrapProbe;
  bwrapProbe = null;
  for (const candidate of ['/usr/bin/bwrap', '/bin/bwrap', '/usr/local/bin/bwrap']) {
    if (!existsSync(candidate)) continue;
    const run = (extra: string[]) => spawnSync(candidate, ['--ro-bind', '/', '/', '--unshare-pid', ...extra, '--die-with-parent', '/bin/true'], { timeout: 5_000, stdio: 'ignore' }).status === 0;
    const unshareUser = run([...UNPRIVILEGED, '--cap-drop', 'ALL']);
    if (run(['--unshare-net'])) bwrapProbe = { path: candidate, unshareNet: true, unshareUser };
    else if (run([])) bwrapProbe = { path: candidate, unshareNet: false, unshareUser };
    break;
  }
  return bwrapProbe;
}

/** The unprivileged id a plugin runs as inside its user namespace (nobody/nogroup). */
const UNPRIVILEGED = ['--unshare-user', '--uid', '65534', '--gid', '65534'];

let prlimitProbe: string | null | undefined;
/** prlimit (util-linux), if it is here and can set limits on what it runs. */
function probePrlimit(): string | null {
  if (prlimitProbe !== undefined) return prlimitProbe;
  prlimitProbe = null;
  for (const candidate of ['/usr/bin/prlimit', '/bin/prlimit']) {
    if (!existsSync(candidate)) continue;
    if (spawnSync(candidate, [`--as=${PLUGIN_ADDRESS_SPACE_BYTES}`, '--', '/bin/true'], { timeout: 5_000, stdio: 'ignore' }).status === 0) prlimitProbe = candidate;
    break;
  }
  return prlimitProbe;
}

const runsAsRoot = () => process.getuid?.() === 0;

export function detectBwrap(): string | null {
  return probeBwrap()?.path ?? null;
}

export function sandboxLevel(mode: BwrapMode): SandboxLevel {
  const probe = mode === 'auto' ? probeBwrap() : null;
  const network: NetworkIsolation = !probe ? 'host network (no bubblewrap)' : probe.unshareNet ? 'none (endpoint only)' : 'host network (bubblewrap cannot unshare the network here)';
  const identity: PluginIdentity = probe?.unshareUser
    ? 'nobody, in a user namespace of its own, no capabilities'
    : !probe && runsAsRoot()
      ? 'root, with every capability (no bubblewrap)'
      : "the gateway's user, no capabilities";
  return {
    nodePermission: true,
    bwrap: probe !== null,
    level: probe ? 'bwrap+node-permission' : 'node-permission',
    network,
    networkIsolated: network === 'none (endpoint only)',
    identity,
    noCapabilities: identity !== 'root, with every capability (no bubblewrap)',
    canSignalGateway: probe === null,
    memoryLimitBytes: probePrlimit() ? PLUGIN_ADDRESS_SPACE_BYTES : null,
    scratchQuotaBytes: PLUGIN_SCRATCH_QUOTA_BYTES,
    scratch: probe ? 'tmpfs, gone with the process' : 'folder on disk, removed when the process stops',
  };
}

export interface SpawnSpec {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  sandbox: SandboxLevel;
  /** Bytes to write to the child's file descriptors 3, 4, ... (bubblewrap reads the plugin's files from them). */
  fdData?: Buffer[];
}

/**
 * Only these environment variables reach a plugin; everything else of the
 * kernel's environment (tokens, cloud credentials, AIP_*) stays behind.
 */
export const ENV_SAFELIST = ['LANG', 'LC_ALL', 'TZ'] as const;

/** V8 heap ceiling for a plugin; a connector that needs more is doing something wrong. */
export const PLUGIN_HEAP_MB = 256;

/**
 * The address space of the whole plugin process (RLIMIT_AS, set by prlimit):
 * 1.5 GiB. The V8 heap cap alone left Buffers unbounded (a plugin held
 * 1.1 GiB of them). RLIMIT_AS counts reserved virtual memory, not what is
 * used, and Node reserves a lot before it runs any code (Node 20 here: about
 * 710 MiB of VmSize at idle: V8's code range and cage, thread stacks), so the
 * limit is that, plus the 256 MiB heap, plus about 512 MiB of Buffers and
 * native memory. An allocation past it fails (RangeError: Array buffer
 * allocation failed; V8 out of memory ends the process).
 */
export const PLUGIN_ADDRESS_SPACE_BYTES = 1536 * 1024 * 1024;

/**
 * What a plugin's scratch may hold (64 MiB): connectors keep small caches
 * there, and under bubblewrap it is memory (a tmpfs; /tmp gets the same).
 * Without bubblewrap it is a folder on disk: one file may not grow past it
 * (RLIMIT_FSIZE) and the host kills a plugin whose folder holds more.
 */
export const PLUGIN_SCRATCH_QUOTA_BYTES = 64 * 1024 * 1024;

/** Open files at once (RLIMIT_NOFILE): a connector's pool and its files need tens; 1024 bounds an fd flood. */
export const PLUGIN_MAX_OPEN_FILES = 1024;

/**
 * The prlimit arguments every plugin process starts under: address space,
 * largest file, open files, and no core dumps (a core file of a plugin would
 * hold its leases in clear).
 */
function limitArgs(): string[] {
  return [`--as=${PLUGIN_ADDRESS_SPACE_BYTES}`, `--fsize=${PLUGIN_SCRATCH_QUOTA_BYTES}`, `--nofile=${PLUGIN_MAX_OPEN_FILES}`, '--core=0'];
}

/** Wraps a command in prlimit with the plugin limits, where prlimit exists (else the V8 heap cap is all). */
function limited(command: string, args: string[]): { command: string; args: string[] } {
  const prlimit = probePrlimit();
  return prlimit ? { command: prlimit, args: [...limitArgs(), '--', command, ...args] } : { command, args };
}

/** System paths bound read-only into the bwrap namespace (as little as node needs to run and resolve names). */
const SYSTEM_RO = ['/usr', '/etc/resolv.conf', '/etc/hosts', '/etc/nsswitch.conf', '/etc/gai.conf', '/etc/ssl', '/etc/ca-certificates', '/etc/localtime'];

function bindSystemDir(args: string[], path: string) {
  if (!existsSync(path)) return;
  const stat = lstatSync(path);
  if (stat.isSymbolicLink()) args.push('--symlink', readlinkSync(path), path);
  else args.push('--ro-bind', path, path);
}

/**
 * Builds the command that starts a plugin: node with the permission model,
 * inside bwrap when available, under the prlimit limits (limitArgs). Inside
 * bwrap the plugin runs as nobody in a user namespace of its own with no
 * capabilities, sees its code at /plugin (read-only) and a scratch tmpfs of
 * PLUGIN_SCRATCH_QUOTA_BYTES at /scratch (gone with it), so the data
 * directory is not even a path there; it has no network (an empty network
 * namespace, invariant 3) and reaches targets only through the endpoint
 * sockets in /run/ep (read-only: it can connect to them, not replace them).
 *
 * With `pluginFiles` (a built-in's verified pinned set) under bwrap, /plugin
 * is a read-only tmpfs holding exactly those files, which bwrap copies from
 * pipes the kernel writes the verified bytes to: what runs is what was
 * hashed, whatever happens on disk meanwhile. Without bwrap `pluginFiles` is
 * ignored and `pluginDir` must already be a private copy of them.
 */
export function buildSpawnSpec(options: {
  pluginDir: string;
  entry: string;
  scratchDir: string;
  bwrap: BwrapMode;
  heapMb?: number;
  pluginFiles?: readonly PinnedFile[];
  /** Under bubblewrap: the kernel's directory of endpoint sockets for this plugin, shown read-only at /run/ep. */
  endpointDir?: string;
  /**
   * A start with nothing that outlives it (inspection, before consent): under
   * bubblewrap /scratch and /tmp are tmpfs of at most this many bytes each,
   * gone with the sandbox, and `scratchDir` is only the host-side working
   * folder; without bubblewrap nothing is writable at all (no size-limited
   * place exists there) and `scratchDir` is an empty folder it may read.
   */
  throwawayScratchBytes?: number;
}): SpawnSpec {
  const sandbox = sandboxLevel(options.bwrap);
  const env: Record<string, string> = {};
  for (const name of ENV_SAFELIST) if (process.env[name]) env[name] = process.env[name]!;
  env.NODE_ENV = 'production';
  // V8's WebAssembly trap handler reserves about 10 GiB of address space per
  // Wasm memory, far past PLUGIN_ADDRESS_SPACE_BYTES: ssh2 (the SSH connector's
  // library) instantiates Wasm (poly1305) and aborted under the limit. Explicit
  // bounds checks instead reserve only what the memory uses.
  const heap = [`--max-old-space-size=${options.heapMb ?? PLUGIN_HEAP_MB}`, ...(process.allowedNodeEnvironmentFlags.has('--disable-wasm-trap-handler') ? ['--disable-wasm-trap-handler'] : [])];
  const permission = nodePermissionFlag();

  const throwaway = options.throwawayScratchBytes;
  if (!sandbox.bwrap) {
    env.AIP_PLUGIN_SCRATCH = options.scratchDir;
    return {
      ...limited(process.execPath, [
        permission,
        `--allow-fs-read=${options.pluginDir}`,
        `--allow-fs-read=${options.scratchDir}`,
        ...(throwaway === undefined ? [`--allow-fs-write=${options.scratchDir}`] : []),
        ...heap,
        '--no-warnings',
        join(options.pluginDir, options.entry),
      ]),
      env,
      cwd: options.scratchDir,
      sandbox,
    };
  }

  env.AIP_PLUGIN_SCRATCH = '/scratch';
  const args = ['--die-with-parent', '--new-session', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try'];
  // Issue 10 item 7: never root inside, never a capability, even when the gateway runs as root.
  if (probeBwrap()!.unshareUser) args.push(...UNPRIVILEGED);
  args.push('--cap-drop', 'ALL');
  if (sandbox.networkIsolated) args.push('--unshare-net');
  for (const path of SYSTEM_RO) bindSystemDir(args, path);
  for (const path of ['/lib', '/lib64', '/bin', '/sbin']) bindSystemDir(args, path);
  // node itself, when it lives outside /usr (nvm, a tarball install).
  const nodeDir = dirname(process.execPath);
  if (!nodeDir.startsWith('/usr/')) args.push('--ro-bind', dirname(nodeDir), dirname(nodeDir));
  args.push('--proc', '/proc', '--dev', '/dev');
  // /tmp is memory too: bounded like scratch.
  args.push('--size', String(throwaway ?? PLUGIN_SCRATCH_QUOTA_BYTES), '--tmpfs', '/tmp');
  if (options.endpointDir) args.push('--tmpfs', '/run', '--ro-bind', options.endpointDir, SANDBOX_ENDPOINT_DIR);
  const fdData: Buffer[] = [];
  if (options.pluginFiles) {
    args.push('--tmpfs', '/plugin');
    const dirs = new Set<string>();
    for (const file of options.pluginFiles) {
      for (let dir = posix.dirname(file.path); dir !== '.'; dir = posix.dirname(dir)) dirs.add(dir);
    }
    for (const dir of [...dirs].sort()) args.push('--dir', posix.join('/plugin', dir));
    for (const file of options.pluginFiles) {
      // fd 0-2 are the protocol and the log; the files follow from 3.
      args.push('--ro-bind-data', String(3 + fdData.length), posix.join('/plugin', file.path));
      fdData.push(file.data);
    }
    args.push('--remount-ro', '/plugin');
  } else {
    args.push('--ro-bind', options.pluginDir, '/plugin');
  }
  // Scratch is a size-limited tmpfs, gone with the sandbox: nothing a plugin keeps there outlives its process or lands on disk (issue 10 item 6).
  args.push('--size', String(throwaway ?? PLUGIN_SCRATCH_QUOTA_BYTES), '--tmpfs', '/scratch');
  args.push('--clearenv');
  for (const [name, value] of Object.entries(env)) args.push('--setenv', name, value);
  args.push('--chdir', '/scratch');
  args.push(process.execPath, permission, '--allow-fs-read=/plugin', '--allow-fs-read=/scratch', '--allow-fs-write=/scratch', ...heap, '--no-warnings', join('/plugin', options.entry));
  return { ...limited(probeBwrap()!.path, args), env: {}, cwd: options.scratchDir, sandbox, ...(fdData.length ? { fdData } : {}) };
}
