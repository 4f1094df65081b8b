import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Tests run the bundle the kernel runs: build it first. */
export default function setup(): void {
  execFileSync(process.execPath, ['build.mjs'], { cwd: fileURLToPath(new URL('..', import.meta.url)), stdio: 'inherit' });
}
