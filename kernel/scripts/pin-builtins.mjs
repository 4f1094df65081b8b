// Pins the built-in connectors (invariant 8): hashes each one's pinned set
// (package.json and every file under dist/, see src/plugin-host/builtin-pins.ts)
// into dist/builtin-pins.json, which the gateway reads once at start and checks
// before every spawn of a built-in. Runs after tsc (it uses the compiled hash
// code, so build and check share one definition) and after the plugins were
// built: turbo builds plugin-redis before the kernel, which depends on it.
import { fileURLToPath } from 'node:url';

const kernel = fileURLToPath(new URL('..', import.meta.url));
const { pinBuiltins, writePinsFile } = await import(`${kernel}dist/plugin-host/builtin-pins.js`);
const { BUILTIN_PLUGIN_NAMES, builtinPluginsDir } = await import(`${kernel}dist/plugin-host/registry.js`);

try {
  const pins = await pinBuiltins(builtinPluginsDir(), BUILTIN_PLUGIN_NAMES);
  await writePinsFile(`${kernel}dist/builtin-pins.json`, pins);
} catch (error) {
  // A kernel without pins runs no built-in connector: fail the build, not the first call.
  process.stderr.write(`pin-builtins: ${error.message}\n`);
  process.exit(1);
}
