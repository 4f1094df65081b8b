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
  /** Its scratch folder: kept between runs; the quota the host enforces on it, null when there is none. */
  scratch: { path: string; persists: true; quotaBytes: number | null };
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

/**
 * The scratch quota the host reports for a plugin's sandbox, or null when it
 * enforces none. (The whole-process limits of issue 10, item 6, add the
 * quota to the sandbox level; until then there is none to report.)
 */
function scratchQuotaOf(sandbox: SandboxLevel): number | null {
  const quota = (sandbox as SandboxLevel & { scratchQuotaBytes?: unknown }).scratchQuotaBytes;
  return typeof quota === 'number' ? quota : null;
}

export function reachOf(sandbox: SandboxLevel, scratchPath: string): PluginReach {
  return {
    sandbox: sandbox.level,
    network: sandbox.network,
    networkIsolated: sandbox.networkIsolated,
    files: sandbox.bwrap
      ? 'reads its own approved package (read-only at /plugin) and reads and writes its scratch folder (at /scratch); the data directory and your home are not there at all'
      : 'reads its own approved package (a private read-only copy) and reads and writes its scratch folder; Node refuses every other path',
    scratch: { path: scratchPath, persists: true, quotaBytes: scratchQuotaOf(sandbox) },
    processes: 'none: it cannot start child processes or worker threads',
    otherProcesses: sandbox.bwrap
      ? 'none: it runs in its own pid namespace and cannot see or signal your processes'
      : 'it can see and signal processes of the user the gateway runs as (no pid namespace without bubblewrap)',
  };
}
