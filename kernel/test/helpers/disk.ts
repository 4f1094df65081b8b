import { execFileSync } from 'node:child_process';
import { mkdtemp, open, rm, rmdir, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A data directory on a disk that can be filled up and freed again, for
 * real: a size-limited tmpfs (root can mount one; CI runs as root). Where
 * mounting is refused, `kind` says so and the caller falls back to SQLite's
 * own full-database condition (PRAGMA max_page_count) and names that in its
 * test; `fill` and `free` then do nothing.
 */
export interface FillableDisk {
  kind: 'tmpfs' | 'unmountable';
  dir: string;
  /** Fills the disk to the last byte with a filler file. */
  fill(): Promise<void>;
  /** Removes the filler: the space is back. */
  free(): Promise<void>;
  cleanup(): Promise<void>;
}

export async function fillableDisk(sizeMiB = 64): Promise<FillableDisk> {
  const dir = await mkdtemp(join(tmpdir(), 'aip-disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m,mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch {
    return { kind: 'unmountable', dir, fill: async () => undefined, free: async () => undefined, cleanup: () => rm(dir, { recursive: true, force: true }) };
  }
  const filler = join(dir, 'filler');
  return {
    kind: 'tmpfs',
    dir,
    async fill() {
      const handle = await open(filler, 'a');
      const chunk = Buffer.alloc(1 << 20);
      try {
        // Big chunks, then smaller ones, until not one more byte fits.
        for (let size = chunk.length; size >= 1; size = Math.floor(size / 2)) {
          for (;;) {
            try {
              await handle.write(chunk, 0, size);
            } catch (error) {
              if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
              break;
            }
          }
        }
      } finally {
        await handle.close();
      }
    },
    async free() {
      await unlink(filler).catch(() => undefined);
    },
    async cleanup() {
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
      await rmdir(dir);
    },
  };
}
