import { isAbsolute, relative, resolve, sep } from 'node:path';
import { KernelError } from './errors.js';
import { quoteForMessage } from './quote.js';

/**
 * `root` joined with `segments`, refused unless the result lies strictly
 * inside `root`. Every path the kernel builds from an id (an installed
 * plugin's folder, a scratch folder, a database file, a staging folder) goes
 * through here, so a value that slipped past its id check (`..`, an absolute
 * path, a NUL byte, a backslash on Windows) still cannot name anything
 * outside the folder it belongs to. Symbolic links are not resolved: the
 * folders this guards are created by the kernel, and removals never follow
 * links (`rm` deletes a link, not its target).
 */
export function confinedPath(root: string, ...segments: string[]): string {
  for (const segment of segments) {
    if (segment === '' || segment.includes('\0')) {
      throw new KernelError('path_outside_root', `${quoteForMessage(segment)} cannot be part of a path: it is empty or holds a NUL byte.`, { status: 400 });
    }
  }
  const base = resolve(root);
  const full = resolve(base, ...segments);
  const rel = relative(base, full);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new KernelError('path_outside_root', `${quoteForMessage(segments.join('/'))} would name a path outside ${base}; refused.`, { status: 400 });
  }
  return full;
}
