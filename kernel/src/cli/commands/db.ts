import { resolve } from 'node:path';
import { createVault, resolveDataDir, databaseNameFromFile, passwordProblems } from '../../vault/index.js';
import { systemClock } from '../../lib/clock.js';
import { isKernelError } from '../../lib/errors.js';
import { parse, requirePositional } from '../args.js';
import { CliError, EXIT } from '../errors.js';
import { passwordSource, type PasswordSource } from '../prompt.js';
import { line, printJson, printTable, say } from '../output.js';
import { GatewayClient, gatewayUrl } from '../client.js';

export const DB_USAGE = `aip db create NAME        create an encrypted database (works without a gateway)
aip db list               list databases (works without a gateway)
aip db export NAME FILE   write an encrypted, portable .aipdb copy
aip db import FILE [--name NAME]   add an .aipdb export as a new database (never overwrites)
aip db password NAME      change a database's password
options: [--data-dir DIR] [--password-stdin] [--json]`;

async function newPassword(passwords: PasswordSource, fromStdin: boolean | undefined, label: string): Promise<string> {
  const first = await passwords.read(`${label}: `);
  const problems = passwordProblems(first);
  if (problems.length > 0) throw new CliError(`The password needs ${problems.join(', ')}.`, EXIT.usage);
  // At a terminal, typing it twice catches a typo in a password nobody can recover.
  if (!fromStdin) {
    const again = await passwords.read('Type it again: ');
    if (again !== first) throw new CliError('The two passwords differ; nothing was changed.', EXIT.usage);
  }
  return first;
}

function wrap<T>(promise: Promise<T>): Promise<T> {
  return promise.catch((error: unknown) => {
    if (isKernelError(error)) throw new CliError(error.message);
    throw error;
  });
}

export async function dbCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse(rest, { name: { type: 'string' } }, DB_USAGE);
  const vault = createVault({ dataDir: resolveDataDir(values['data-dir']), clock: systemClock });
  const passwords = passwordSource(values['password-stdin']);
  switch (sub) {
    case 'create': {
      const name = requirePositional(positionals, 0, 'the database name', DB_USAGE);
      const password = await newPassword(passwords, values['password-stdin'], `New password for "${name}" (14+ characters, upper, lower, digit)`);
      await wrap(vault.create(name, password));
      say(line`Created encrypted database "${name}" in ${vault.databasesDir}.`);
      say('There is no way to recover it without this password. Next: aip start, then aip unlock');
      return EXIT.ok;
    }
    case 'list': {
      const databases = await wrap(vault.list());
      if (values.json) printJson(databases);
      else printTable(databases.map((d) => ({ ...d, size: `${Math.ceil(d.sizeBytes / 1024)} KiB` })), [['name', 'NAME'], ['size', 'SIZE'], ['modifiedAt', 'MODIFIED'], ['file', 'FILE']], `No databases in ${vault.databasesDir}. Create one with: aip db create main`);
      return EXIT.ok;
    }
    case 'export': {
      const name = requirePositional(positionals, 0, 'the database name', DB_USAGE);
      const file = resolve(requirePositional(positionals, 1, 'the output file', DB_USAGE));
      const password = await passwords.read(`Password for database "${name}": `);
      await wrap(vault.exportDatabase(name, password, file));
      say(line`Exported "${name}" to ${file} (encrypted with the same password).`);
      return EXIT.ok;
    }
    case 'import': {
      const file = resolve(requirePositional(positionals, 0, 'the .aipdb file', DB_USAGE));
      const name = values.name ?? databaseNameFromFile(file);
      const password = await passwords.read(`Password of the exported database: `);
      await wrap(vault.importDatabase(file, password, name));
      say(line`Imported ${file} as database "${name}". Unlock it with: aip unlock --db ${name}`);
      return EXIT.ok;
    }
    case 'password': {
      const name = requirePositional(positionals, 0, 'the database name', DB_USAGE);
      const current = await passwords.read(`Current password for "${name}": `);
      const next = await newPassword(passwords, values['password-stdin'], `New password for "${name}"`);
      // If a running gateway has it unlocked, the change goes through the gateway (it holds the file open).
      const client = new GatewayClient(gatewayUrl(values.url));
      const live = await client
        .status()
        .then((status) => status.databases.some((d) => d.name === name && d.unlocked))
        .catch(() => false);
      if (live) {
        await client.call('POST', `/api/databases/${encodeURIComponent(name)}/session`, { password: current, client: 'cli' });
        await client.call('POST', `/api/databases/${encodeURIComponent(name)}/password`, { currentPassword: current, newPassword: next });
      } else {
        await wrap(vault.changePassword(name, current, next));
      }
      say(line`Changed the password of "${name}".`);
      return EXIT.ok;
    }
    default:
      throw new CliError(`Unknown db command "${sub ?? ''}".\n\n${DB_USAGE}`, EXIT.usage);
  }
}
