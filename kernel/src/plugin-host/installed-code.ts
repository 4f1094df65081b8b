import { readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { canonicalHash } from '../lib/canonical.mjs';
import { writePrivateCopy, type PinnedFile } from './builtin-pins.js';
import { INSTALL_RECORD, readPackageFiles } from './package-files.js';
import { PluginUnavailable } from './process.js';
import { entryOf, type PluginSource } from './registry.js';
import type { PreparedCode } from './supervisor.js';

/** The entry a package.json (as verified bytes) names, normalised like entryOf does; null if it names none. */
function entryNamedBy(files: readonly PinnedFile[]): string | null {
  const pkg = files.find((file) => file.path === 'package.json');
  if (!pkg) return null;
  try {
    const entry = (JSON.parse(pkg.data.toString('utf8')) as { aipermission?: { entry?: unknown } }).aipermission?.entry;
    return typeof entry === 'string' ? posix.normalize(entry.replace(/\\/g, '/')) : null;
  } catch {
    return null;
  }
}

/**
 * Invariant 5 for an installed plugin: it runs exactly the bytes that were
 * checked against its approval. The package is read into memory once and
 * hashed; on a match the plugin gets those bytes themselves: under
 * bubblewrap through file descriptors into a read-only tmpfs at /plugin (so
 * nothing written to disk after the check can reach it), without bubblewrap
 * from a fresh private copy of them. The files on disk are never what the
 * plugin runs. `source` is what the catalog found approved (its integrity and
 * entry are the approval's), so a difference refuses the start with what to do.
 */
export async function verifiedInstalledCode(source: PluginSource, options: { bwrap: boolean; runRoot: string }): Promise<PreparedCode> {
  let now: Awaited<ReturnType<typeof readPackageFiles>>;
  try {
    now = await readPackageFiles(source.dir);
  } catch (error) {
    throw new PluginUnavailable(`has files that cannot be checked against its approval (${(error as Error).message}); restore them or re-approve it with: aip plugin install`);
  }
  if (now.integrity !== source.integrity) {
    throw new PluginUnavailable(`has files that changed on disk since it was approved (integrity ${now.integrity}, approved ${source.integrity}); re-approve it with: aip plugin install`);
  }
  // The entry started is the approved one, and the approved package.json names it (a record naming another file of the package never runs).
  const named = entryNamedBy(now.files);
  const entry = posix.normalize(source.entry.replace(/\\/g, '/'));
  if (named !== entry || !now.files.some((file) => file.path === entry)) {
    throw new PluginUnavailable(`would start ${entry}, but its approved package.json names ${named ?? 'no entry'}; re-approve it with: aip plugin install`);
  }
  if (options.bwrap) return { files: now.files };
  const copy = await writePrivateCopy(options.runRoot, source.manifest.id, now.files);
  return { pluginDir: copy.dir, dispose: copy.dispose };
}

/** What `verify` found on disk now, for the caller to hold against a database's approval (installed) or the build's pin (built-in). */
export interface VerifyReport {
  kind: PluginSource['kind'];
  /** The integrity of the files on disk now; null when they cannot be read as a package (the problem says why). */
  integrity: string | null;
  /** What the kernel recorded: an installed plugin's install record (what it loaded), a built-in's pin. */
  recorded: string | null;
  /** The manifest the install record on disk now describes it with (a built-in: its pinned one). */
  manifestHash: string | null;
  /** The entry the install record on disk now names (a built-in: its pinned one). */
  entry: string | null;
  /** The entry its package.json on disk names (installed). */
  packageEntry: string | null;
  problem: string | null;
}

/**
 * An installed plugin's folder as it is on disk now: the package's
 * integrity, and the manifest and entry its install record names (re-read,
 * not what was loaded at start), so `verify` says what is true even after
 * an edit the running gateway has not loaded.
 */
export async function installedOnDisk(dir: string): Promise<Omit<VerifyReport, 'kind' | 'recorded'>> {
  const now = await readPackageFiles(dir).catch((error: Error) => error);
  const record = await readFile(join(dir, INSTALL_RECORD), 'utf8')
    .then((text) => JSON.parse(text) as { entry?: unknown; manifest?: unknown })
    .catch(() => null);
  let manifestHash: string | null = null;
  try {
    manifestHash = record?.manifest ? canonicalHash(record.manifest) : null;
  } catch {
    // no canonical form: unreadable
  }
  return {
    integrity: now instanceof Error ? null : now.integrity,
    manifestHash,
    entry: typeof record?.entry === 'string' ? record.entry : null,
    packageEntry: await entryOf(dir).catch(() => null),
    problem: now instanceof Error ? now.message : record === null ? `its install record ${INSTALL_RECORD} is unreadable` : null,
  };
}
