import type { NetworkIsolation, SandboxLevel } from './sandbox.js';

/**
 * What an installed plugin will be able to reach once approved, said on the
 * consent screen (`aip plugin install`, the REST inspect answer) before the
 * operator trusts it. Derived from the sandbox this host runs plugins in, so
 * it is what the host enforces, not what the plugin claims.
 */
export interface PluginReach {
  /** `bwrap+node-permission` or `node-permission`. */
  sandbox: string;
  network: NetworkIsolation;
  networkIsolated: boolean;
  /** Which files it can read and write. */
  files: string;
  /**
   * Its scratch: where (a tmpfs at /scratch under bubblewrap, else a folder
   * under `path`), the quota the host enforces on it, and whether it outlives
   * the process (it never does: see SandboxLevel.scratch).
   */
  scratch: { path: string; persists: boolean; quotaBytes: number | null; lives: SandboxLevel['scratch'] };
  /** Who it runs as (SandboxLevel.identity). */
  identity: SandboxLevel['identity'];
  /** The address-space limit of its whole process, null when only the V8 heap is capped. */
  memoryLimitBytes: number | null;
  /** Child processes and worker threads. */
  processes: string;
  /** Whether it can see and signal other processes of the user the gateway runs as. */
  otherProcesses: string;
}

/** How the inspection itself ran the package (before consent), for the same screen. */
export interface InspectionSandbox {
  sandbox: string;
  network: NetworkIsolation;
  networkIsolated: boolean;
  /** What it could write while inspected. */
  scratch: string;
  endpoint: 'none';
  /** It was killed at the latest this long after it was started. */
  timeoutMs: number;
}


export function reachOf(sandbox: SandboxLevel, scratchPath: string): PluginReach {
  return {
    sandbox: sandbox.level,
    network: sandbox.network,
    networkIsolated: sandbox.networkIsolated,
    files: sandbox.bwrap
      ? 'reads its own approved package (read-only at /plugin) and reads and writes its scratch (a tmpfs at /scratch, gone with the process); the data directory and your home are not there at all'
      : 'reads its own approved package (a private read-only copy) and reads and writes its scratch folder (removed when the process stops); Node refuses every other path',
    // The quota the host enforces at this level (a tmpfs size, or RLIMIT_FSIZE plus the host's watcher), and scratch never outlives the process.
    scratch: { path: sandbox.bwrap ? '/scratch (a tmpfs in memory)' : scratchPath, persists: false, quotaBytes: sandbox.scratchQuotaBytes, lives: sandbox.scratch },
    identity: sandbox.identity,
    memoryLimitBytes: sandbox.memoryLimitBytes,
    processes: 'none: it cannot start child processes or worker threads',
    otherProcesses: sandbox.bwrap
      ? 'none: it runs in its own pid namespace and cannot see or signal your processes'
      : 'it can see and signal processes of the user the gateway runs as, the gateway itself included (it could stop it with SIGSTOP): there is no pid namespace without bubblewrap. Turn on requireBwrapForThirdParty to refuse running it here',
  };
}
