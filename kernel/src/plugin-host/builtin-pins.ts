import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileManifest } from '@aipermission/plugin-sdk/protocol';
import { confinedPath } from '../lib/confine.js';
import { readRegularFile } from './package-files.js';

/**
 * Build-time pins of the built-in connectors (invariant 8: an agent that can
 * edit the checkout must not get its code run with the operator's
 * credentials). The kernel build hashes what each built-in's sandbox may read
 * and execute, its "pinned set", and writes the result next to the compiled
 * kernel; the plugin host reads it once at start and refuses to spawn a
 * built-in whose files differ from it.
 *
 * The pinned set of a built-in is exactly: `package.json` and every regular
 * file under `dist/` (the bundled entry and the manifest it printed at build
 * time, and whatever else the build put there). The package's entry and
 * manifest must lie inside `dist/`. A symbolic link or any other kind of file
 * in the set is refused. Nothing else of the package folder (sources, tests,
 * node_modules) is ever visible to the plugin: it runs from a copy of the
 * set's verified bytes, never from the checkout.
 */

/** Version of the pins file's shape. */
export const PINS_FORMAT = 1;

/** Where the kernel build writes the pins: kernel/dist/builtin-pins.json (this module lives in kernel/{src,dist}/plugin-host). */
export function defaultPinsFile(): string {
  return fileURLToPath(new URL('../../dist/builtin-pins.json', import.meta.url));
}

/**
 * Bounds of a pinned set, checked before anything is read into memory: a
 * bundled connector is one entry and a manifest (Redis: ~1 MB, 3 files);
 * a set far beyond these is not a built-in connector but an attempt to make
 * the kernel read a huge tree before every spawn.
 */
export const PINNED_SET_LIMITS = { maxFiles: 64, maxBytes: 64 * 1024 * 1024 } as const;

/** One file of a pinned set: its path relative to the package (always `/`-separated) and its bytes. */
export interface PinnedFile {
  path: string;
  data: Buffer;
}

/** A pinned set as read from disk: the bytes, each file's SHA-256, and the set's integrity. */
export interface PinnedSet {
  files: PinnedFile[];
  hashes: Record<string, string>;
  integrity: string;
}

/** What the build recorded of one built-in. */
export interface BuiltinPin {
  /** SHA-256 over the pinned set (see `integrityOf`). */
  integrity: string;
  /** The bundled entry, relative to the package (inside dist/). */
  entry: string;
  /** The manifest the entry printed at build time; the host uses this one, never the file on disk. */
  manifest: unknown;
  /** SHA-256 (hex) of each file of the set, to name what changed. */
  files: Record<string, string>;
}

export interface BuiltinPins {
  format: typeof PINS_FORMAT;
  builtins: Record<string, BuiltinPin>;
}

/** The problem with a pinned set or a pins file; the message is for the operator. */
export class PinError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PinError';
  }
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** `sha256-` + SHA-256 over the lines `<path>\t<sha256 of the file>`, sorted by path, joined by `\n`. */
export function integrityOf(hashes: Record<string, string>): string {
  const lines = Object.keys(hashes)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((path) => `${path}\t${hashes[path]}`);
  return `sha256-${sha256(lines.join('\n'))}`;
}

/** Reads a package's pinned set (package.json + dist/**) into memory, bounded, refusing links and special files. */
export async function readPinnedSet(dir: string): Promise<PinnedSet> {
  const paths: string[] = [];
  let bytes = 0;
  const take = async (rel: string) => {
    const info = await lstat(confinedPath(dir, rel)).catch(() => undefined);
    if (!info) throw new PinError(`${rel} is missing`);
    if (info.isSymbolicLink()) throw new PinError(`${rel} is a symbolic link; a built-in connector's files must be plain files`);
    if (info.isDirectory()) {
      for (const name of (await readdir(confinedPath(dir, rel))).sort()) await take(`${rel}/${name}`);
      return;
    }
    if (!info.isFile()) throw new PinError(`${rel} is not a regular file`);
    bytes += info.size;
    paths.push(rel);
    if (paths.length > PINNED_SET_LIMITS.maxFiles) throw new PinError(`dist/ holds more than ${PINNED_SET_LIMITS.maxFiles} files`);
    if (bytes > PINNED_SET_LIMITS.maxBytes) throw new PinError(`package.json and dist/ hold more than ${PINNED_SET_LIMITS.maxBytes} bytes`);
  };
  await take('package.json');
  await take('dist');
  const files: PinnedFile[] = [];
  const hashes: Record<string, string> = {};
  for (const path of paths) {
    // Opened without following links and refused unless still a regular file (a FIFO swapped in after the lstat above would block a read).
    const data = await readRegularFile(confinedPath(dir, path), PINNED_SET_LIMITS.maxBytes, path).catch((error: Error) => {
      throw new PinError(error.message);
    });
    files.push({ path, data });
    hashes[path] = sha256(data);
  }
  return { files, hashes, integrity: integrityOf(hashes) };
}

/** The files of `now` that differ from the pin: changed, added and missing ones, named for the operator. */
export function describeChanges(pinned: Record<string, string>, now: Record<string, string>): string {
  const changed = Object.keys(now).filter((path) => path in pinned && pinned[path] !== now[path]);
  const added = Object.keys(now).filter((path) => !(path in pinned));
  const missing = Object.keys(pinned).filter((path) => !(path in now));
  const parts = [
    ...(changed.length ? [`changed: ${changed.join(', ')}`] : []),
    ...(added.length ? [`added: ${added.join(', ')}`] : []),
    ...(missing.length ? [`missing: ${missing.join(', ')}`] : []),
  ];
  return parts.join('; ') || 'the set hashes differently';
}

interface PackageFields {
  aipermission?: { entry?: unknown; manifest?: unknown };
}

/** The entry or manifest path a package.json names, normalised and required to be a file of the set under dist/. */
function fileOfSet(set: PinnedSet, value: unknown, fallback: string | undefined, what: string): PinnedFile {
  const raw = typeof value === 'string' ? value : fallback;
  if (raw === undefined) throw new PinError(`package.json has no "aipermission": {"${what}": ...}`);
  const path = raw.replace(/^\.\//, '');
  const file = set.files.find((f) => f.path === path);
  if (!path.startsWith('dist/') || !file) throw new PinError(`the ${what} "${raw}" is not a file under dist/ (only package.json and dist/ are pinned and visible to the plugin)`);
  return file;
}

/** Computes the pin of one built-in package folder (the build step; tests use it to pin their own copies). */
export async function pinOf(dir: string): Promise<BuiltinPin> {
  const set = await readPinnedSet(dir);
  const pkg = JSON.parse(set.files.find((f) => f.path === 'package.json')!.data.toString('utf8')) as PackageFields;
  const entry = fileOfSet(set, pkg.aipermission?.entry, undefined, 'entry');
  const manifestFile = fileOfSet(set, pkg.aipermission?.manifest, 'dist/manifest.json', 'manifest');
  let manifest: unknown;
  try {
    manifest = JSON.parse(manifestFile.data.toString('utf8'));
    compileManifest(manifest);
  } catch (error) {
    throw new PinError(`${manifestFile.path} is not a valid manifest: ${(error as Error).message}`);
  }
  return { integrity: set.integrity, entry: entry.path, manifest, files: set.hashes };
}

/** Pins every named built-in under `root`; a built-in that is missing or not built fails the whole pin (and the build). */
export async function pinBuiltins(root: string, names: readonly string[]): Promise<BuiltinPins> {
  const builtins: Record<string, BuiltinPin> = {};
  for (const name of names) {
    try {
      builtins[name] = await pinOf(confinedPath(root, name));
    } catch (error) {
      throw new PinError(`the built-in connector "${name}" (${confinedPath(root, name)}) cannot be pinned: ${(error as Error).message}. Build it before the kernel (pnpm run build builds everything in order).`);
    }
  }
  return { format: PINS_FORMAT, builtins };
}

/** Writes a pins file atomically (temporary name, then rename), so a starting gateway never reads half of one. */
export async function writePinsFile(file: string, pins: BuiltinPins): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(pins, null, 2)}\n`, { mode: 0o644 });
  await rename(tmp, file);
}

function isPins(value: unknown): value is BuiltinPins {
  const pins = value as BuiltinPins | null;
  if (typeof pins !== 'object' || pins === null || pins.format !== PINS_FORMAT || typeof pins.builtins !== 'object' || pins.builtins === null) return false;
  return Object.values(pins.builtins).every(
    (pin) =>
      typeof pin === 'object' &&
      pin !== null &&
      /^sha256-[0-9a-f]{64}$/.test(String(pin.integrity)) &&
      typeof pin.entry === 'string' &&
      pin.entry.startsWith('dist/') &&
      typeof pin.files === 'object' &&
      pin.files !== null &&
      integrityOf(pin.files) === pin.integrity,
  );
}

/**
 * The pins to run with: given ones (tests), or the pins file (default:
 * kernel/dist/builtin-pins.json). Read once, when the plugin host starts, so
 * an edit after start changes nothing. A missing or malformed file means no
 * built-in has a pin, and none will start; the log says how to fix it.
 */
export async function loadPins(source: string | BuiltinPins | undefined, log: (line: string) => void): Promise<{ pins: BuiltinPins; from: string }> {
  if (typeof source === 'object') return { pins: source, from: 'the pins given to the plugin host' };
  const file = source ?? defaultPinsFile();
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : `is unreadable (${(error as Error).message})`;
    log(`the built-in connectors' pins file ${file} ${why}: no built-in connector will start. Build the kernel after the plugins (pnpm run build) and restart the gateway.`);
    return { pins: { format: PINS_FORMAT, builtins: {} }, from: file };
  }
  if (!isPins(parsed)) {
    log(`the built-in connectors' pins file ${file} is not a pins file of format ${PINS_FORMAT}: no built-in connector will start. Rebuild the kernel (pnpm run build) and restart the gateway.`);
    return { pins: { format: PINS_FORMAT, builtins: {} }, from: file };
  }
  return { pins: parsed, from: file };
}

/**
 * Writes verified bytes into a fresh private folder under `root` (mode 0700,
 * files read-only), for a plugin started without bubblewrap: it runs from
 * this copy, never from the checkout, and its permission model may read only
 * this folder. (Under bubblewrap no copy is written: the sandbox gets the
 * bytes through file descriptors, see buildSpawnSpec.) `dispose` removes it.
 */
export async function writePrivateCopy(root: string, name: string, files: readonly PinnedFile[]): Promise<{ dir: string; dispose: () => Promise<void> }> {
  await mkdir(root, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(`${confinedPath(root, name)}-`);
  const dispose = () => rm(dir, { recursive: true, force: true });
  try {
    for (const file of files) {
      const path = confinedPath(dir, file.path);
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      await writeFile(path, file.data, { mode: 0o400, flag: 'wx' });
    }
  } catch (error) {
    await dispose();
    throw error;
  }
  return { dir, dispose };
}
