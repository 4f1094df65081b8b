import { spawn } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { cp, lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, isAbsolute, join, normalize, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tar from 'tar';
import { compileManifest, PLUGIN_ID_PATTERN, type CompiledManifest, type Manifest } from '@aipermission/plugin-sdk/protocol';
import { canonicalHash } from '../lib/canonical.mjs';
import { confinedPath } from '../lib/confine.js';
import { KernelError } from '../lib/errors.js';
import { quoteForMessage } from '../lib/quote.js';
import { storageRefusal } from '../lib/storage-errors.js';
import { describeChanges, PINS_FORMAT, readPinnedSet, type BuiltinPins } from './builtin-pins.js';
import { INSTALL_RECORD, readPackageFiles } from './package-files.js';

export { INSTALL_RECORD };

/** A plugin the kernel can run: where its code is and what its manifest says. */
export interface PluginSource {
  kind: 'builtin' | 'installed';
  /** Absolute directory of the package. */
  dir: string;
  /** The bundled entry file, relative to dir. */
  entry: string;
  manifest: Manifest;
  compiled: CompiledManifest;
  manifestHash: string;
  /**
   * SHA-256 over the code, checked before every start: an installed plugin's
   * whole package (as approved), a built-in's pinned set (as built); null for
   * a built-in without a build-time pin, which never starts.
   */
  integrity: string | null;
  /** A pinned built-in's per-file SHA-256 as built (to name what changed). */
  pinnedFiles?: Record<string, string>;
  /**
   * An installed plugin: the entry its package.json names (package.json is
   * covered by the integrity), to hold `entry` (from the install record) to
   * when the approval predates approvals that record their entry.
   */
  packageEntry?: string;
}

const PLUGIN_ID = new RegExp(PLUGIN_ID_PATTERN);

/**
 * Refuses anything that is not a plugin id (the manifest's id pattern) before
 * it is used to find, name or remove a folder (`..%2f..` once reached a
 * recursive delete outside the data directory).
 */
export function assertPluginId(id: string): void {
  if (!PLUGIN_ID.test(id)) {
    throw new KernelError(
      'invalid_plugin_id',
      `${quoteForMessage(id)} is not a plugin id: ids are 1-64 lowercase letters, digits and "-", starting with a letter (the "id" in the connector's manifest). See: aip plugin list`,
      { status: 400 },
    );
  }
}

/** The built-in connectors shipped in this repository's plugins/ folder. */
export const BUILTIN_PLUGIN_NAMES = ['redis'] as const;

export function builtinPluginsDir(): string {
  // kernel/{src,dist}/plugin-host -> repository root -> plugins
  return fileURLToPath(new URL('../../../plugins/', import.meta.url));
}

interface PackageJson {
  name?: string;
  version?: string;
  aipermission?: { entry?: string; manifest?: string };
}

async function readPackage(dir: string): Promise<PackageJson> {
  try {
    return JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as PackageJson;
  } catch {
    throw new KernelError('invalid_plugin', `${dir} has no readable package.json; a connector package needs one with an "aipermission": {"entry": ...} field.`);
  }
}

/** The package's entry, checked to be a file inside it. */
export async function entryOf(dir: string): Promise<string> {
  const pkg = await readPackage(dir);
  const entry = pkg.aipermission?.entry;
  if (!entry) throw new KernelError('invalid_plugin', `package.json in ${dir} has no "aipermission": {"entry": "dist/plugin.mjs"}: the bundled file the kernel runs.`);
  const full = resolve(dir, entry);
  if (isAbsolute(entry) || relative(dir, full).startsWith('..')) throw new KernelError('invalid_plugin', `The plugin entry "${entry}" points outside its package.`);
  const info = await stat(full).catch(() => undefined);
  if (!info?.isFile()) throw new KernelError('invalid_plugin', `The plugin entry ${entry} does not exist in ${dir}. Was the plugin built?`);
  return normalize(entry);
}

/**
 * SHA-256 over a package's contents: every regular file's relative path and
 * SHA-256, in walk order (see readPackageFiles, which reads the package
 * bounded and refuses links and special files); the install record itself
 * is left out.
 */
export async function packageIntegrity(dir: string): Promise<string> {
  return (await readPackageFiles(dir)).integrity;
}

/** Compiles (validates) a manifest; the host passes its ManifestCache's, so unchanged manifests are compiled once. */
export type CompileManifest = (manifest: unknown) => { compiled: CompiledManifest; manifestHash: string };

const compileUncached: CompileManifest = (manifest) => {
  const compiled = compileManifest(manifest);
  return { compiled, manifestHash: canonicalHash(compiled.manifest) };
};

export function sourceFromManifest(
  kind: PluginSource['kind'],
  dir: string,
  entry: string,
  manifest: unknown,
  integrity: string | null,
  compile: CompileManifest = compileUncached,
): PluginSource {
  const { compiled, manifestHash } = compile(manifest);
  return { kind, dir, entry, manifest: compiled.manifest, compiled, manifestHash, integrity };
}

/**
 * The built-in connectors. A pinned one is described by its build-time pin
 * (the manifest it printed when it was built), so the catalog is known
 * without starting any process and never follows an edit on disk; its code
 * is checked against the pin before every spawn (host.ts). One without a pin
 * is listed from its files but refuses to start. A pinned one whose files
 * already differ is reported in the log now, so the operator learns it at
 * start, not at the first call.
 */
export async function loadBuiltins(
  root = builtinPluginsDir(),
  log: (message: string) => void = () => undefined,
  names: readonly string[] = BUILTIN_PLUGIN_NAMES,
  pins: BuiltinPins = { format: PINS_FORMAT, builtins: {} },
  compile: CompileManifest = compileUncached,
): Promise<PluginSource[]> {
  const sources: PluginSource[] = [];
  for (const name of names) {
    const dir = confinedPath(root, name);
    const pin = Object.hasOwn(pins.builtins, name) ? pins.builtins[name] : undefined;
    try {
      if (pin) {
        sources.push({ ...sourceFromManifest('builtin', dir, pin.entry, pin.manifest, pin.integrity, compile), pinnedFiles: pin.files });
        const now = await readPinnedSet(dir).catch((error: Error) => error);
        if (now instanceof Error) log(`built-in connector "${name}" cannot be checked against its build-time pin (${now.message}); it will not start until its files match the build.`);
        else if (now.integrity !== pin.integrity) log(`built-in connector "${name}" has files that differ from its build-time pin (${describeChanges(pin.files, now.hashes)}); it will not start. Rebuild (pnpm run build) and restart the gateway if the change is yours.`);
        continue;
      }
      const pkg = await readPackage(dir);
      const entry = await entryOf(dir);
      const manifest = JSON.parse(await readFile(confinedPath(dir, pkg.aipermission?.manifest ?? 'dist/manifest.json'), 'utf8')) as unknown;
      sources.push(sourceFromManifest('builtin', dir, entry, manifest, null, compile));
      log(`built-in connector "${name}" has no build-time pin; it will not start. Build the kernel after the plugins (pnpm run build) and restart the gateway.`);
    } catch (error) {
      log(`built-in connector "${name}" is not available: ${(error as Error).message}`);
    }
  }
  return sources;
}

export interface InstallRecord {
  id: string;
  version: string;
  entry: string;
  manifest: Manifest;
  manifestHash: string;
  integrity: string;
  installedAt: string;
}

export function installedRoot(dataDir: string): string {
  return join(dataDir, 'plugins');
}

/** Installed plugins found on disk (trusted only once a database approves their integrity). */
export async function loadInstalled(dataDir: string, log: (message: string) => void = () => undefined, compile: CompileManifest = compileUncached): Promise<PluginSource[]> {
  const root = installedRoot(dataDir);
  const sources: PluginSource[] = [];
  const ids = await readdir(root, { withFileTypes: true }).catch(() => []);
  for (const idEntry of ids) {
    if (!idEntry.isDirectory() || !PLUGIN_ID.test(idEntry.name)) continue;
    for (const versionEntry of await readdir(confinedPath(root, idEntry.name), { withFileTypes: true })) {
      if (!versionEntry.isDirectory()) continue;
      const dir = confinedPath(root, idEntry.name, versionEntry.name);
      try {
        // Everything here is only what the install record claims; a database counts it approved only if all of it is what that database approved (approval-check.ts).
        const record = JSON.parse(await readFile(join(dir, INSTALL_RECORD), 'utf8')) as InstallRecord;
        if (typeof record.entry !== 'string' || typeof record.integrity !== 'string') throw new Error(`its ${INSTALL_RECORD} has no entry or integrity`);
        const packageEntry = await entryOf(dir).catch(() => undefined);
        sources.push({ ...sourceFromManifest('installed', dir, record.entry, record.manifest, record.integrity, compile), ...(packageEntry ? { packageEntry } : {}) });
      } catch (error) {
        log(`installed plugin at ${dir} is unreadable: ${(error as Error).message}`);
      }
    }
  }
  return sources;
}

function run(command: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolvePromise(stdout) : reject(new Error(stderr.trim().split('\n').slice(-3).join(' ') || `${command} exited with ${code}`))));
  });
}

/** Extracts an npm-style tarball, refusing links and paths that leave the folder. */
async function extractTarball(file: string, into: string): Promise<string> {
  const refused: string[] = [];
  await tar.x({
    file,
    cwd: into,
    strict: true,
    filter: (path, entry) => {
      const type = (entry as { type?: string }).type;
      const ok = (type === 'File' || type === 'Directory' || type === undefined) && !isAbsolute(path) && !normalize(path).split(/[\\/]/).includes('..');
      if (!ok) refused.push(path);
      return ok;
    },
  });
  if (refused.length > 0) throw new KernelError('invalid_plugin', `The tarball contains entries that are not plain files (${refused.slice(0, 3).join(', ')}); refused.`);
  const top = await readdir(into);
  // npm tarballs put everything under package/.
  return top.length === 1 && (await stat(join(into, top[0]!))).isDirectory() ? join(into, top[0]!) : into;
}

/**
 * Copies a plugin source into a fresh staging folder inside the data
 * directory: a local folder (without node_modules and .git), a .tgz, or an
 * npm package name (fetched with `npm pack --ignore-scripts`: nothing of the
 * package runs at install time). Returns the staged package folder.
 */
export async function stagePlugin(source: string, dataDir: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const root = confinedPath(installedRoot(dataDir), '.staging');
  await mkdir(root, { recursive: true, mode: 0o700 });
  const staging = confinedPath(root, basename(await mkdtemp(join(root, 'stage-'))));
  const cleanup = () => rm(staging, { recursive: true, force: true });
  try {
    const local = await lstat(source).catch(() => undefined);
    if (local?.isDirectory()) {
      const dir = join(staging, 'package');
      await cp(source, dir, {
        recursive: true,
        mode: fsConstants.COPYFILE_EXCL,
        verbatimSymlinks: true,
        filter: (path) => !['node_modules', '.git'].includes(basename(path)),
      });
      return { dir, cleanup };
    }
    if (local?.isFile()) return { dir: await extractTarball(resolve(source), staging), cleanup };
    if (!/^(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*(@[\w.^~<>=*|-]+)?$/i.test(source)) {
      throw new KernelError('invalid_plugin', `"${source}" is not a folder, a .tgz file or an npm package name.`);
    }
    const packed = (await run('npm', ['pack', source, '--ignore-scripts', '--silent', '--pack-destination', staging], staging)).trim().split('\n').pop()!;
    const unpacked = join(staging, 'unpacked');
    await mkdir(unpacked);
    return { dir: await extractTarball(confinedPath(staging, packed), unpacked), cleanup };
  } catch (error) {
    await cleanup();
    if (error instanceof KernelError) throw error;
    // A full or read-only disk under the data directory is the gateway's problem, not the package's: named as such.
    const storage = storageRefusal(error);
    if (storage) throw storage;
    throw new KernelError('invalid_plugin', `Could not fetch the plugin from "${source}": ${(error as Error).message}`);
  }
}

/** Moves a staged, inspected package into plugins/<id>/<version>/ and writes its install record. */
export async function commitInstall(stagedDir: string, dataDir: string, record: InstallRecord): Promise<string> {
  assertPluginId(record.id);
  const target = confinedPath(installedRoot(dataDir), record.id, record.version);
  await mkdir(confinedPath(installedRoot(dataDir), record.id), { recursive: true, mode: 0o700 });
  await rm(target, { recursive: true, force: true });
  await rename(stagedDir, target);
  await writeFile(join(target, INSTALL_RECORD), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  return target;
}

/** Removes every installed version of one plugin: plugins/<id>/ and nothing else. */
export async function removeInstalled(dataDir: string, id: string): Promise<void> {
  assertPluginId(id);
  await rm(confinedPath(installedRoot(dataDir), id), { recursive: true, force: true });
}

/** The plugin's own scratch folder (its only writable path in the sandbox). */
export function scratchDirFor(dataDir: string, id: string): string {
  return confinedPath(dataDir, 'plugin-scratch', id);
}
