import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';

/** Builds the SDK, then bundles the fixture plugins against it as a connector author would. */
export default function setup(): void {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const root = join(here, '..');
  execFileSync(process.execPath, [join(root, '../node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  const fixtures = join(here, 'fixtures');
  mkdirSync(join(fixtures, 'dist'), { recursive: true });
  for (const file of readdirSync(fixtures).filter((f) => f.endsWith('.ts'))) {
    buildSync({
      entryPoints: [join(fixtures, file)],
      outfile: join(fixtures, 'dist', file.replace(/\.ts$/, '.mjs')),
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      banner: { js: "import { createRequire as __r } from 'node:module'; const require = __r(import.meta.url);" },
      logLevel: 'error',
    });
  }
}
