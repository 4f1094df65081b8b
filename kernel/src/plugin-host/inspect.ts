import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writePrivateCopy, type PinnedFile } from './builtin-pins.js';
import { PluginProcess } from './process.js';
import type { InspectionSandbox } from './reach.js';
import { buildSpawnSpec, sandboxLevel, type BwrapMode } from './sandbox.js';

/**
 * Bounds of an inspection: the package runs before anyone consented to it,
 * only to answer the handshake with its manifest.
 */
export const INSPECT_LIMITS = {
  /** Spawn to manifest; a connector answers in about 100 ms, five seconds allow a loaded machine. Then it is killed. */
  timeoutMs: 5_000,
  /** The throwaway /scratch and /tmp under bubblewrap: a manifest needs none, a little is allowed for start-up habits. */
  scratchBytes: 1024 * 1024,
} as const;

/** The package did not answer with a manifest; its last log lines say why. */
export class InspectionFailed extends Error {
  constructor(
    message: string,
    readonly logLines: readonly string[],
  ) {
    super(message);
    this.name = 'InspectionFailed';
  }
}

/** How long the kill after an inspection is waited for (SIGKILL is immediate; this only guards a spawn that never became a process). */
const KILL_WAIT_MS = 2_000;

export interface InspectOptions {
  /** The staged package as verified bytes (what was hashed is what runs). */
  files: readonly PinnedFile[];
  entry: string;
  bwrap: BwrapMode;
  /** Where private folders are made (`<data>/plugin-run`); the inspection's are removed when it ends. */
  runRoot: string;
  kernelInfo: { name: string; version: string };
  redact: (line: string) => string;
  log: (line: string) => void;
}

/**
 * Starts a package once in the strictest sandbox there is, to read its
 * manifest, and kills it at once (issue 10, item 8: code runs before
 * consent, so it must be able to change nothing):
 * - its code is the verified bytes (read-only tmpfs from file descriptors
 *   under bubblewrap; a private read-only copy without);
 * - no endpoint, and under bubblewrap no network at all;
 * - no scratch that outlives it: under bubblewrap /scratch and /tmp are
 *   small tmpfs gone with its namespace; without bubblewrap it may write
 *   nothing anywhere;
 * - at most INSPECT_LIMITS.timeoutMs from spawn to manifest, then SIGKILL
 *   (no polite stop: it holds nothing that needs closing);
 * - it is answered for no invocation.
 */
export async function inspectManifest(options: InspectOptions): Promise<{ manifest: unknown; sandbox: InspectionSandbox }> {
  const level = sandboxLevel(options.bwrap);
  await mkdir(options.runRoot, { recursive: true, mode: 0o700 });
  // The host-side working folder (and, without bubblewrap, the empty scratch it may only read).
  const work = await mkdtemp(join(options.runRoot, 'inspect-'));
  const copy = level.bwrap ? undefined : await writePrivateCopy(options.runRoot, 'inspect-code', options.files).catch(async (error: unknown) => {
    await rm(work, { recursive: true, force: true });
    throw error;
  });
  const sandbox: InspectionSandbox = {
    sandbox: level.level,
    network: level.network,
    networkIsolated: level.networkIsolated,
    scratch: level.bwrap ? `a throwaway tmpfs of ${INSPECT_LIMITS.scratchBytes / 1024 / 1024} MiB, gone with the process` : 'none: every write was refused',
    endpoint: 'none',
    timeoutMs: INSPECT_LIMITS.timeoutMs,
  };
  try {
    const spec = buildSpawnSpec({
      pluginDir: copy?.dir ?? work,
      entry: options.entry,
      scratchDir: work,
      bwrap: options.bwrap,
      throwawayScratchBytes: INSPECT_LIMITS.scratchBytes,
      ...(level.bwrap ? { pluginFiles: options.files } : {}),
    });
    const probe = new PluginProcess({
      spec,
      handshakeTimeoutMs: INSPECT_LIMITS.timeoutMs,
      kernelInfo: options.kernelInfo,
      redact: options.redact,
      // Started only to read its manifest: it runs no invocation, so it is answered for none.
      resolveScope: () => undefined,
      log: (line) => options.log(`[plugin inspect] ${line}`),
      onExit: () => undefined,
    });
    try {
      return { manifest: (await probe.start()).manifest, sandbox };
    } catch (error) {
      throw new InspectionFailed((error as Error).message, [...probe.logLines]);
    } finally {
      await Promise.race([probe.kill('the inspection read what it needed'), new Promise((resolve) => setTimeout(resolve, KILL_WAIT_MS).unref())]);
    }
  } finally {
    await copy?.dispose();
    await rm(work, { recursive: true, force: true });
  }
}
