import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const tsc = join(root, 'node_modules/typescript/bin/tsc');

/**
 * The browser tests drive the built UI served by a real gateway process, so
 * build what that runs first (as the kernel's own setup does): the plugin
 * SDK, the Redis connector, the kernel, then the UI itself. Running vitest
 * alone then never tests stale code.
 */
export default function setup(): void {
  // AIP_UI_TEST_REUSE_KERNEL=1 (while iterating on the UI alone) skips the kernel side when it is built.
  const reuse = process.env.AIP_UI_TEST_REUSE_KERNEL === '1' && existsSync(join(root, 'kernel/dist/main.js'));
  if (!reuse) buildKernel();
  // vitest sets NODE_ENV=test, which would make this a development build of Svelte: test what ships.
  execFileSync(process.execPath, [join(root, 'ui/node_modules/vite/bin/vite.js'), 'build', '--logLevel', 'warn'], {
    cwd: join(root, 'ui'),
    stdio: 'inherit',
    env: { ...process.env, NODE_ENV: 'production' },
  });
  if (!existsSync(join(root, 'ui/dist/index.html'))) throw new Error('the UI build wrote no ui/dist/index.html');
}

function buildKernel(): void {
  execFileSync(process.execPath, [tsc, '-p', 'plugin-sdk/tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  execFileSync(process.execPath, ['build.mjs'], { cwd: join(root, 'plugins/redis'), stdio: 'inherit' });
  execFileSync(process.execPath, ['kernel/scripts/build.mjs'], { cwd: root, stdio: 'inherit' });
}
