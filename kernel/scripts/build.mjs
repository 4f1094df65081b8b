// The kernel's build: TypeScript to dist/, then the native process-hardening
// addon, then the built-in connectors' integrity pins (the plugins are built
// before the kernel). The test suite's global setup runs this same script.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const kernel = fileURLToPath(new URL('..', import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const step = (script, args = []) => execFileSync(process.execPath, [script, ...args], { cwd: kernel, stdio: 'inherit' });

step(tsc, ['-p', 'tsconfig.build.json']);
step('scripts/build-native.mjs');
step('scripts/pin-builtins.mjs');
