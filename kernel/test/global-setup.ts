import { execFileSync } from 'node:child_process';
import { readdirSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';

const root = fileURLToPath(new URL('../..', import.meta.url));
const tsc = join(root, 'node_modules/typescript/bin/tsc');
const fixtures = fileURLToPath(new URL('./fixtures/plugins/', import.meta.url));

/**
 * Tests that start real processes (the `aip` CLI, the gateway, plugins) run
 * compiled output, so build it first: running vitest alone then never tests
 * stale code. Fixture plugins are bundled like real connectors.
 */
export default function setup(): void {
  execFileSync(process.execPath, [tsc, '-p', 'plugin-sdk/tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  // The Redis connector before the kernel: the kernel build pins the built-ins' code.
  execFileSync(process.execPath, ['build.mjs'], { cwd: join(root, 'plugins/redis'), stdio: 'inherit' });
  execFileSync(process.execPath, ['kernel/scripts/build.mjs'], { cwd: root, stdio: 'inherit' });
  for (const name of readdirSync(fixtures)) {
    const source = join(fixtures, name, 'plugin.ts');
    if (!existsSync(source)) continue;
    const out = join(fixtures, name, 'dist');
    mkdirSync(out, { recursive: true });
    buildSync({
      entryPoints: [source],
      outfile: join(out, 'plugin.mjs'),
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      banner: { js: "import { createRequire as __r } from 'node:module'; const require = __r(import.meta.url);" },
      // ssh2's optional native helpers: required inside try/catch, so left out it falls back to pure JS.
      external: ['cpu-features', '*.node'],
      // ssh2's agent module names a Windows helper by __dirname at load; ESM has none, and the path is never used here.
      define: { __dirname: '"/nonexistent"' },
      logLevel: 'error',
    });
    writeFileSync(join(fixtures, name, 'package.json'), JSON.stringify({ name: `fixture-${name}`, version: '1.0.0', type: 'module', aipermission: { entry: 'dist/plugin.mjs', manifest: 'dist/manifest.json' } }, null, 2));
    const manifest = execFileSync(process.execPath, [join(out, 'plugin.mjs'), '--print-manifest'], { encoding: 'utf8' });
    writeFileSync(join(out, 'manifest.json'), manifest);
  }
}
