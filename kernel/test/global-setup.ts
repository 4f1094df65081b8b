import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Tests that start real processes (the `aip` CLI, the gateway, a crashing
 * kernel) run the compiled output, so build it first: running vitest alone
 * then never tests stale code.
 */
export default function setup(): void {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const tsc = fileURLToPath(new URL('../../node_modules/typescript/bin/tsc', import.meta.url));
  execFileSync(process.execPath, [tsc, '-p', 'plugin-sdk/tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  execFileSync(process.execPath, [tsc, '-p', 'kernel/tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
}
