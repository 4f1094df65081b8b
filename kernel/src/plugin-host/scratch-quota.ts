import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** How often the host adds up a plugin's on-disk scratch: twice a second is cheap for a small folder and soon enough for a quota. */
export const SCRATCH_WATCH_MS = 500;
/** Entries looked at per round; a folder with more is over quota by itself (a flood of empty files costs inodes, not bytes). */
export const MAX_SCRATCH_ENTRIES = 10_000;

/**
 * The host's quota on a plugin's scratch folder where no size-limited tmpfs
 * exists (no bubblewrap): each file is capped by RLIMIT_FSIZE (the process
 * limits), and this adds up the folder every SCRATCH_WATCH_MS and calls
 * `over` once when it holds more than `quotaBytes` (or more than
 * MAX_SCRATCH_ENTRIES entries). Between two rounds a plugin can write past
 * the quota by what it writes in half a second, each file below RLIMIT_FSIZE;
 * the watcher then has it killed and its folder removed.
 */
export function watchScratch(dir: string, quotaBytes: number, over: (reason: string) => void): () => void {
  let stopped = false;
  let running = false;
  const round = async () => {
    if (running || stopped) return;
    running = true;
    try {
      let bytes = 0;
      let entries = 0;
      const pending = [dir];
      while (pending.length > 0 && !stopped) {
        const current = pending.pop()!;
        const names = await readdir(current).catch(() => [] as string[]);
        for (const name of names) {
          entries += 1;
          if (entries > MAX_SCRATCH_ENTRIES) {
            stopped = true;
            over(`it made more than ${MAX_SCRATCH_ENTRIES} files in its scratch folder`);
            return;
          }
          const path = join(current, name);
          const stat = await lstat(path).catch(() => null);
          if (!stat) continue;
          if (stat.isDirectory()) pending.push(path);
          else bytes += stat.size;
          if (bytes > quotaBytes) {
            stopped = true;
            over(`it wrote more than its scratch quota of ${quotaBytes} bytes (${bytes} and counting)`);
            return;
          }
        }
      }
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void round(), SCRATCH_WATCH_MS);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
