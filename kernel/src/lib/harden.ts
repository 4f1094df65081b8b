import { createRequire } from 'node:module';
import { close as closeInspector, url as inspectorUrl } from 'node:inspector';
import { fileURLToPath } from 'node:url';

/**
 * Process hardening for everything that holds a database password, an
 * operator session or an MCP token: the gateway and every `aip` process
 * (invariant 8: the agent is a local adversary with a shell as the same user).
 *
 * - Not dumpable (Linux `prctl(PR_SET_DUMPABLE, 0)`): another process of the
 *   same non-root user can no longer ptrace it (gdb -p) or read its
 *   /proc/<pid>/mem and /proc/<pid>/environ, where passwords and secrets live.
 * - SIGUSR1 ignored: Node opens its inspector on SIGUSR1, from which anything
 *   in the process can be called (mint a session, run a request).
 * - An inspector opened at start (`--inspect`, NODE_OPTIONS) is closed.
 *
 * The native part is kernel/native/harden.c, built by scripts/build-native.mjs.
 */
export interface HardeningState {
  /** false once hardened; null where it cannot be known (not Linux, no addon). */
  dumpable: boolean | null;
  /** SIGUSR1 cannot open the inspector. */
  sigusr1Ignored: boolean;
  /** An inspector is listening right now. */
  inspectorOpen: boolean;
  /** Why a part is missing, for `aip doctor` and the gateway's start-up warning. */
  problems: string[];
}

interface HardenAddon {
  setNonDumpable(): number;
  dumpableState(): number;
  ignoreSigusr1(): boolean;
  sigusr1Ignored(): boolean;
}

/** kernel/dist/native/harden.node, from src/lib (tests) and dist/lib alike. */
export const HARDEN_ADDON_PATH = fileURLToPath(new URL('../../dist/native/harden.node', import.meta.url));

let addon: HardenAddon | null | undefined;
let loadProblem: string | undefined;

function loadAddon(): HardenAddon | null {
  if (addon !== undefined) return addon;
  try {
    addon = createRequire(import.meta.url)(HARDEN_ADDON_PATH) as HardenAddon;
  } catch (error) {
    addon = null;
    loadProblem = `the hardening addon ${HARDEN_ADDON_PATH} could not be loaded (${(error as Error).message.split('\n')[0]}); rebuild with: npm start (or node kernel/scripts/build.mjs)`;
  }
  return addon;
}

/** What this process is protected by right now. */
export function hardeningState(): HardeningState {
  const native = loadAddon();
  const problems: string[] = [];
  if (!native) problems.push(loadProblem!);
  let dumpable: boolean | null = null;
  if (native) {
    const state = native.dumpableState();
    dumpable = state < 0 ? null : state !== 0;
    if (dumpable) problems.push('the process is dumpable: another process of this user can read its memory');
  }
  const sigusr1Ignored = native?.sigusr1Ignored() ?? false;
  if (native && !sigusr1Ignored) problems.push('SIGUSR1 would open the Node inspector');
  const inspectorOpen = inspectorUrl() !== undefined;
  if (inspectorOpen) problems.push('a Node inspector is open');
  return { dumpable, sigusr1Ignored, inspectorOpen, problems };
}

let hardened: HardeningState | undefined;

/**
 * Hardens this process (idempotent; cheap after the first call). Never
 * throws: the caller decides what a missing part means (the gateway warns
 * loudly; `aip doctor` explains).
 */
export function hardenProcess(): HardeningState {
  if (hardened && !hardened.inspectorOpen) return hardened;
  const native = loadAddon();
  if (native) {
    if (process.platform === 'linux') native.setNonDumpable();
    native.ignoreSigusr1();
  }
  // Started with --inspect (or NODE_OPTIONS): close it before any secret arrives.
  if (inspectorUrl() !== undefined) closeInspector();
  hardened = hardeningState();
  return hardened;
}
