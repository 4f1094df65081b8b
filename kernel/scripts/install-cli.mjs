// `npm run install-cli`: puts an `aip` command on PATH that runs this
// checkout's CLI with this Node.js, from any directory. It writes one small
// launcher script (default ~/.local/bin/aip; --prefix DIR writes DIR/bin/aip)
// and never touches anything else. `npx aip` is NOT this tool: that npm name
// belongs to nobody here, so npx would fetch a stranger's package.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const prefixAt = args.indexOf('--prefix');
const prefix = prefixAt >= 0 && args[prefixAt + 1] ? resolve(args[prefixAt + 1]) : join(homedir(), '.local');
const binDir = join(prefix, 'bin');
const target = join(binDir, 'aip');
const launcher = fileURLToPath(new URL('../bin/aip.js', import.meta.url));
const marker = '# aipermission launcher';

if (!existsSync(fileURLToPath(new URL('../dist/cli/main.js', import.meta.url)))) {
  process.stderr.write('install-cli: build first (npm start builds; or: npx -y pnpm@10.34.9 run build)\n');
  process.exit(1);
}
if (existsSync(target) && !readFileSync(target, 'utf8').includes(marker)) {
  process.stderr.write(`install-cli: ${target} exists and is not an AIPermission launcher; not replacing it. Use --prefix DIR.\n`);
  process.exit(1);
}
const quote = (text) => `'${text.replace(/'/g, "'\\''")}'`;
mkdirSync(binDir, { recursive: true });
const tmp = `${target}.${process.pid}.tmp`;
writeFileSync(tmp, `#!/bin/sh\n${marker} (npm run install-cli in ${fileURLToPath(new URL('../..', import.meta.url))})\nexec ${quote(process.execPath)} ${quote(launcher)} "$@"\n`);
chmodSync(tmp, 0o755);
renameSync(tmp, target);
process.stdout.write(`Installed ${target} -> ${launcher}\n`);
const onPath = (process.env.PATH ?? '').split(delimiter).some((dir) => resolve(dir) === binDir);
if (!onPath) process.stdout.write(`${binDir} is not on your PATH yet. Add it, e.g.: echo 'export PATH="${binDir}:$PATH"' >> ~/.bashrc\n`);
process.stdout.write('Check with: aip --version\n');
