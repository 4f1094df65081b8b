// Builds native/harden.c into dist/native/harden.node with the system's C
// compiler (the same toolchain @journeyapps/sqlcipher is built with at
// install). It declares the few Node-API functions it uses itself, so no
// Node headers or node-gyp are needed. Written under a temporary name and
// renamed, so a running gateway never loads half a file.
import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const kernel = fileURLToPath(new URL('..', import.meta.url));
const source = `${kernel}native/harden.c`;
const outDir = `${kernel}dist/native`;
const out = `${outDir}/harden.node`;
const tmp = `${outDir}/.harden.${process.pid}.node`;

const compilers = [process.env.CC, 'cc', 'gcc', 'clang'].filter(Boolean);
mkdirSync(outDir, { recursive: true });
const flags = ['-O2', '-Wall', '-Werror', '-shared', '-fPIC', '-o', tmp, source];
// macOS resolves Node-API symbols from the host binary at load time only when told to.
if (process.platform === 'darwin') flags.unshift('-undefined', 'dynamic_lookup');
let built = false;
const failures = [];
for (const compiler of compilers) {
  try {
    execFileSync(compiler, flags, { stdio: ['ignore', 'ignore', 'pipe'] });
    built = true;
    break;
  } catch (error) {
    failures.push(`${compiler}: ${error.code === 'ENOENT' ? 'not found' : String(error.stderr ?? error.message).trim()}`);
  }
}
if (!built) {
  rmSync(tmp, { force: true });
  const message = `could not build the process-hardening addon (kernel/native/harden.c): ${failures.join('; ')}`;
  if (process.platform === 'linux') {
    // Without it the gateway's memory is readable by any process of the same user: never ship that silently.
    process.stderr.write(`build-native: ${message}\nInstall a C compiler (Debian/Ubuntu: apt-get install gcc) and build again.\n`);
    process.exit(1);
  }
  process.stderr.write(`build-native: ${message} (continuing: only Linux needs it)\n`);
  process.exit(0);
}
renameSync(tmp, out);
