import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { createVault, resolveDataDir, databaseNameFromFile, passwordProblems } from '../../vault/index.js';
import { systemClock } from '../../lib/clock.js';
import { isKernelError } from '../../lib/errors.js';
import { parse, requirePositional } from '../args.js';
import { CliError, EXIT } from '../errors.js';
import { passwordSource, type PasswordSource } from '../prompt.js';
import { line, printJson, printTable, say } from '../output.js';
import { GatewayClient, gatewayUrl, type GatewayStatus } from '../client.js';

export const DB_USAGE = `aip db create NAME        create an encrypted database
aip db list               list databases
aip db export NAME FILE   write an encrypted, portable .aipdb copy
aip db import FILE [--name NAME]   add an .aipdb export as a new database (never overwrites)
aip db password NAME      change a database's password
options: [--data-dir DIR] [--url URL] [--password-stdin] [--json]
With a gateway running, these use its data directory (create and import go through it: once a
database exists, adding another asks for the password of an existing one). Without one, they work
on the files directly, in --data-dir, AIP_DATA_DIR or ~/.aipermission, and say which.`;

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

/** Where the databases are: the running gateway's data directory, unless --data-dir names another one. */
interface Location {
  dataDir: string;
  /** Set when a gateway runs on this data directory: changes go through it. */
  gateway?: { client: GatewayClient; status: GatewayStatus };
  /** Said on stderr, so the user always knows which directory a command used. */
  note: string;
}

async function locate(values: { 'data-dir'?: string; url?: string }): Promise<Location> {
  const client = new GatewayClient(gatewayUrl(values.url));
  const status = await client.status().catch(() => undefined);
  const explicit = values['data-dir'] ? resolve(values['data-dir']) : undefined;
  if (status && (!explicit || explicit === status.dataDir)) {
    return { dataDir: status.dataDir, gateway: { client, status }, note: `data directory ${status.dataDir} (the gateway at ${client.baseUrl} uses it)` };
  }
  const dataDir = explicit ?? resolveDataDir(undefined);
  const why = explicit ? '--data-dir' : process.env.AIP_DATA_DIR ? 'AIP_DATA_DIR' : 'the default';
  const gatewayNote = status ? `; the gateway at ${client.baseUrl} uses ${status.dataDir}` : '; no gateway is running';
  return { dataDir, note: `data directory ${dataDir} (${why}${gatewayNote})` };
}

/** Adding a database to a gateway that has one needs an operator session: prove an existing database's password. */
async function proveForAdding(gateway: NonNullable<Location['gateway']>, passwords: PasswordSource): Promise<void> {
  if (gateway.status.databases.length === 0) return;
  const existing = gateway.status.databases.find((d) => d.default) ?? gateway.status.databases[0]!;
  if (!existing.unlocked) throw new CliError(`Adding a database needs an operator session, and none of the existing ones is unlocked. Unlock one first: aip unlock --db ${existing.name}`);
  const password = await passwords.read(`Password of the existing database "${existing.name}" (adding another needs it): `);
  await gateway.client.checkingPassword(() => gateway.client.call('POST', `/api/databases/${encodeURIComponent(existing.name)}/session`, { password, client: 'cli' }));
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
  if (!['create', 'list', 'export', 'import', 'password'].includes(sub ?? '')) throw new CliError(`Unknown db command "${sub ?? ''}".\n\n${DB_USAGE}`, EXIT.usage);
  const location = await locate(values);
  if (!values.json) process.stderr.write(`${line`aip: ${location.note}`}\n`);
  const vault = createVault({ dataDir: location.dataDir, clock: systemClock });
  const passwords = passwordSource(values['password-stdin']);
  switch (sub) {
    case 'create': {
      const name = requirePositional(positionals, 0, 'the database name', DB_USAGE);
      if (location.gateway) {
        await proveForAdding(location.gateway, passwords);
        const password = await newPassword(passwords, values['password-stdin'], `New password for "${name}" (14+ characters, upper, lower, digit)`);
        await location.gateway.client.call('POST', '/api/databases', { name, password, client: 'cli' });
        say(line`Created encrypted database "${name}" in ${vault.databasesDir} and unlocked it in the gateway.`);
        say(line`There is no way to recover it without this password. MCP starts switched off: aip switch on --db ${name}`);
        return EXIT.ok;
      }
      const password = await newPassword(passwords, values['password-stdin'], `New password for "${name}" (14+ characters, upper, lower, digit)`);
      await wrap(vault.create(name, password));
      say(line`Created encrypted database "${name}" in ${vault.databasesDir}.`);
      say('There is no way to recover it without this password. Next: aip start, then aip unlock');
      return EXIT.ok;
    }
    case 'list': {
      const databases = await wrap(vault.list());
      const live = new Map((location.gateway?.status.databases ?? []).map((d) => [d.name, d]));
      if (values.json) printJson(databases.map((d) => ({ ...d, unlocked: live.get(d.name)?.unlocked ?? false, default: live.get(d.name)?.default ?? false })));
      else
        printTable(
          databases.map((d) => ({
            ...d,
            name: `${d.name}${live.get(d.name)?.default && databases.length > 1 ? ' (default)' : ''}`,
            state: location.gateway ? (live.get(d.name)?.unlocked ? 'unlocked' : 'locked') : '-',
            size: `${Math.ceil(d.sizeBytes / 1024)} KiB`,
          })),
          [['name', 'NAME'], ['state', 'STATE'], ['size', 'SIZE'], ['createdAt', 'CREATED'], ['modifiedAt', 'MODIFIED'], ['file', 'FILE']],
          `No databases in ${vault.databasesDir}. Create one with: aip db create main`,
        );
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
      if (location.gateway) {
        await proveForAdding(location.gateway, passwords);
        const password = await passwords.read(`Password of the exported database: `);
        const data = (await readFile(file).catch(() => {
          throw new CliError(line`${file} cannot be read.`);
        })).toString('base64');
        await location.gateway.client.call('POST', '/api/databases/import', { name, password, data });
        say(line`Imported ${file} as database "${name}". Unlock it with: aip unlock --db ${name}`);
        return EXIT.ok;
      }
      const password = await passwords.read(`Password of the exported database: `);
      await wrap(vault.importDatabase(file, password, name));
      say(line`Imported ${file} as database "${name}". Unlock it with: aip unlock --db ${name}`);
      return EXIT.ok;
    }
    case 'password': {
      const name = requirePositional(positionals, 0, 'the database name', DB_USAGE);
      const current = await passwords.read(`Current password for "${name}": `);
      const next = await newPassword(passwords, values['password-stdin'], `New password for "${name}"`);
      // If the gateway has it unlocked, the change goes through the gateway (it holds the file open).
      const gateway = location.gateway;
      if (gateway?.status.databases.some((d) => d.name === name && d.unlocked)) {
        await gateway.client.checkingPassword(() => gateway.client.call('POST', `/api/databases/${encodeURIComponent(name)}/session`, { password: current, client: 'cli' }));
        await gateway.client.call('POST', `/api/databases/${encodeURIComponent(name)}/password`, { currentPassword: current, newPassword: next });
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
