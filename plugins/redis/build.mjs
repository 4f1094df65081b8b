// Bundles the connector into one file (dist/plugin.mjs) and records its
// manifest (dist/manifest.json). One file means the sandbox grants read
// access to this package only, and cold start reads one module, not a tree.
// Both files are written under a temporary name and renamed into place, so a
// reader (a gateway, another test run) never sees half a file.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';

mkdirSync('dist', { recursive: true });
const tmp = `dist/.plugin.${process.pid}.mjs`;
await build({
  entryPoints: ['src/plugin.ts'],
  outfile: tmp,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minify: false,
  legalComments: 'none',
  // ESM bundles of CommonJS dependencies need require().
  banner: { js: "import { createRequire as __aipCreateRequire } from 'node:module'; const require = __aipCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
const manifest = execFileSync(process.execPath, [tmp, '--print-manifest'], { encoding: 'utf8' });
JSON.parse(manifest); // fail the build, not the gateway, if the plugin printed no manifest
renameSync(tmp, 'dist/plugin.mjs');
writeFileSync(`dist/.manifest.${process.pid}.json`, manifest);
renameSync(`dist/.manifest.${process.pid}.json`, 'dist/manifest.json');
