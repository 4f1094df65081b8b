import { createHash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { open, readdir } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { KernelError } from '../lib/errors.js';
import type { PinnedFile, PinnedSet } from './builtin-pins.js';

/** Written next to an installed plugin, for listing; trust comes from the database approval, not this file. */
export const INSTALL_RECORD = '.aip-plugin.json';

/**
 * Bounds of an installed package, checked before its contents are read into
 * memory (at inspection and before every start). A connector is one bundled
 * entry plus a few files (the scaffold's package: about ten); these bounds
 * keep a package that grew on disk from making the kernel read a huge tree,
 * and keep the sandbox's file descriptors (one per file under bubblewrap)
 * few.
 */
export const PACKAGE_LIMITS = { maxFiles: 256, maxBytes: 64 * 1024 * 1024 } as const;

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/**
 * Reads one regular file, refusing anything else at the moment it is opened:
 * a symbolic link (O_NOFOLLOW), a FIFO or device (checked on the open
 * descriptor; O_NONBLOCK so opening a FIFO cannot block the kernel), a file
 * larger than `maxBytes`, or one that grows while it is read. What is
 * returned is exactly what was read, once.
 */
export async function readRegularFile(path: string, maxBytes: number, label: string): Promise<Buffer> {
  let handle;
  try {
    handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new KernelError('invalid_plugin', `${label} is a symbolic link; packages must contain only files.`);
    throw new KernelError('invalid_plugin', `${label} cannot be read (${code ?? (error as Error).message}).`);
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new KernelError('invalid_plugin', `${label} is not a regular file; packages must contain only files.`);
    if (info.size > maxBytes) throw new KernelError('invalid_plugin', `${label} is larger than what is left of the package limit (${maxBytes} bytes).`);
    const data = Buffer.alloc(info.size);
    let offset = 0;
    while (offset < info.size) {
      const { bytesRead } = await handle.read(data, offset, info.size - offset, offset);
      if (bytesRead === 0) break;
      offset += bytesRead;
    }
    const probe = Buffer.alloc(1);
    if (offset !== info.size || (await handle.read(probe, 0, 1, offset)).bytesRead !== 0) {
      throw new KernelError('invalid_plugin', `${label} changed while it was being read; try again.`);
    }
    return data;
  } finally {
    await handle.close();
  }
}

/**
 * Reads an installed (third-party) package into memory, bounded: every
 * regular file except the install record, with each file's SHA-256 and the
 * package's integrity. The integrity is the one recorded at approval:
 * `sha256-` + SHA-256 over the lines `<path>\t<sha256>` in walk order
 * (each folder's entries sorted with localeCompare, depth first), joined by
 * `\n`. A symbolic link or any other kind of file is refused. Invariant 5
 * ("what was approved is what runs"): the bytes returned are the bytes that
 * were hashed, and the plugin is handed these, never the files on disk.
 */
export async function readPackageFiles(dir: string, limits: { maxFiles: number; maxBytes: number } = PACKAGE_LIMITS): Promise<PinnedSet> {
  const paths: Array<{ rel: string; full: string }> = [];
  const walk = async (current: string) => {
    const entries = (await readdir(current, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      const full = join(current, entry.name);
      const rel = relative(dir, full).split(sep).join('/');
      if (rel === INSTALL_RECORD) continue;
      if (entry.isSymbolicLink()) throw new KernelError('invalid_plugin', `The plugin package contains a symbolic link (${rel}); packages must contain only files.`);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile()) {
        paths.push({ rel, full });
        if (paths.length > limits.maxFiles) {
          throw new KernelError(
            'invalid_plugin',
            `The plugin package holds more than ${limits.maxFiles} files; a connector package is its bundled entry and a few files. Leave out what it does not need at run time (sources, tests; a "files" list in package.json does this for npm pack).`,
          );
        }
      } else throw new KernelError('invalid_plugin', `The plugin package contains ${rel}, which is not a regular file or folder; packages must contain only files.`);
    }
  };
  await walk(dir);
  const files: PinnedFile[] = [];
  const hashes: Record<string, string> = {};
  const lines: string[] = [];
  let left = limits.maxBytes;
  for (const { rel, full } of paths) {
    const data = await readRegularFile(full, left, `The plugin package's file ${rel}`).catch((error: unknown) => {
      if (error instanceof KernelError && /larger than what is left/.test(error.message)) {
        throw new KernelError('invalid_plugin', `The plugin package holds more than ${limits.maxBytes} bytes; a connector package is its bundled entry and a few files.`);
      }
      throw error;
    });
    left -= data.length;
    const hash = sha256(data);
    files.push({ path: rel, data });
    hashes[rel] = hash;
    lines.push(`${rel}\t${hash}`);
  }
  return { files, hashes, integrity: `sha256-${sha256(lines.join('\n'))}` };
}
