import { parse } from '../args.js';
import { CliError, EXIT } from '../errors.js';
import { GatewayClient, gatewayUrl } from '../client.js';
import { passwordSource } from '../prompt.js';
import { line, printJson, printTable, say } from '../output.js';
import { asOperator } from '../operator.js';

export const UNLOCK_USAGE = 'aip unlock [--db NAME] [--password-stdin] [--url URL]';
export const LOCK_USAGE = `aip lock [--db NAME] [--url URL]   lock every unlocked database, or only NAME
No password: locking only ever stops things, so nothing (not even an agent guessing passwords) can keep you from it.`;
export const STATUS_USAGE = 'aip status [--json] [--url URL]';
export const SWITCH_USAGE = `aip switch off [--db NAME]      stop every agent call now, in every unlocked database (or only NAME); no password
aip switch on [--db NAME] [--password-stdin]   let agents run what their grants allow again (asks for the password)
aip switch status               the switch of every database
options: [--url URL]`;
export const SETTINGS_USAGE = 'aip settings get | aip settings set KEY=VALUE... [--db NAME] [--password-stdin]';

export async function unlockCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {}, UNLOCK_USAGE);
  const client = new GatewayClient(gatewayUrl(values.url));
  const db = await client.chooseDatabase(values.db);
  const result = await client.unlock(db, passwordSource(values['password-stdin']));
  say(line`Unlocked "${db}". MCP switch: ` + (result.database.mcpRunning ? 'on.' : 'off (agents get "stopped"; turn on with: aip switch on).'));
  if (result.database.rollbackWarning) process.stderr.write(line`aip: WARNING: ${result.database.rollbackWarning}` + '\n');
  return EXIT.ok;
}

export async function lockCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {}, LOCK_USAGE);
  const client = new GatewayClient(gatewayUrl(values.url));
  if (values.db) {
    await client.call('POST', `/api/databases/${encodeURIComponent(values.db)}/lock`, {});
    say(line`Locked "${values.db}".`);
    return EXIT.ok;
  }
  const { locked } = await client.call<{ locked: string[] }>('POST', '/api/lock', {});
  say(locked.length ? `Locked ${locked.map((name) => line`"${name}"`).join(', ')}.` : 'Nothing was unlocked.');
  return EXIT.ok;
}

export async function statusCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {}, STATUS_USAGE);
  const client = new GatewayClient(gatewayUrl(values.url));
  const status = await client.status();
  if (values.json) {
    printJson({ url: client.baseUrl, ...status });
    return EXIT.ok;
  }
  say(line`AIPermission ${status.version} at ${client.baseUrl}: ${status.locked ? 'locked' : 'unlocked'}`);
  say(line`Data directory: ${status.dataDir}`);
  const hardened = status.process.dumpable === false && status.process.sigusr1Ignored && !status.process.inspectorOpen;
  say(line`Gateway process ${status.process.pid}: ` + (hardened ? 'hardened (not dumpable, no inspector)' : 'NOT hardened: run aip doctor'));
  printTable(
    status.databases.map((d) => ({
      name: `${d.name}${d.default && status.databases.length > 1 ? ' (default)' : ''}`,
      state: d.unlocked ? 'unlocked' : 'locked',
      mcp: d.unlocked ? (d.mcpRunning ? 'on' : 'off') : '-',
      note: d.rollbackWarning ? 'WARNING: older than the copy last seen (see aip unlock)' : d.hasSafetyCopy ? 'a password change was interrupted; unlock to recover' : '',
    })),
    [['name', 'DATABASE'], ['state', 'STATE'], ['mcp', 'MCP'], ['note', '']],
    'No databases yet. Create one with: aip db create main',
  );
  return EXIT.ok;
}

export async function switchCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values } = parse(rest, {}, SWITCH_USAGE);
  if (sub !== 'on' && sub !== 'off' && sub !== 'status') throw new CliError(`Usage: ${SWITCH_USAGE}`, EXIT.usage);
  const describe = (running: boolean) => (running ? 'on (agents can run what their grants allow)' : 'off (every agent call answers "stopped")');
  if (sub === 'on') {
    const op = await asOperator(values);
    const result = await op.client.call<{ running: boolean }>('PUT', op.path('/mcp'), { running: true });
    if (values.json) printJson(result);
    else say(line`MCP switch for "${op.db}": ` + describe(result.running));
    return EXIT.ok;
  }
  const client = new GatewayClient(gatewayUrl(values.url));
  const status = await client.status();
  const unlocked = status.databases.filter((d) => d.unlocked && (!values.db || d.name === values.db));
  if (values.db && !status.databases.some((d) => d.name === values.db)) throw new CliError(line`There is no database named "${values.db}".`);
  if (sub === 'status') {
    if (values.json) printJson(status.databases.map((d) => ({ name: d.name, unlocked: d.unlocked, running: d.mcpRunning })));
    else printTable(status.databases.map((d) => ({ name: d.name, mcp: d.unlocked ? describe(d.mcpRunning) : 'locked (nothing runs)' })), [['name', 'DATABASE'], ['mcp', 'MCP SWITCH']], 'No databases yet.');
    return EXIT.ok;
  }
  // Off needs no password (it only ever stops agents) and covers every unlocked database unless one is named.
  for (const d of unlocked) await client.call('PUT', `/api/databases/${encodeURIComponent(d.name)}/mcp`, { running: false });
  if (values.json) printJson(unlocked.map((d) => ({ name: d.name, running: false })));
  else say(unlocked.length ? `MCP switch off for ${unlocked.map((d) => line`"${d.name}"`).join(', ')}: every agent call answers "stopped".` : 'No database is unlocked: nothing can run.');
  return EXIT.ok;
}

function parseSettingValue(raw: string): unknown {
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  if (/^-?\d+$/.test(raw)) return Number(raw);
  return raw;
}

export async function settingsCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse(rest, {}, SETTINGS_USAGE);
  if (sub !== 'get' && sub !== 'set') throw new CliError(`Usage: ${SETTINGS_USAGE}`, EXIT.usage);
  const patch: Record<string, unknown> = {};
  if (sub === 'set') {
    if (positionals.length === 0) throw new CliError(`Usage: ${SETTINGS_USAGE}`, EXIT.usage);
    for (const pair of positionals) {
      const index = pair.indexOf('=');
      if (index <= 0) throw new CliError(`"${pair}" is not KEY=VALUE (e.g. approvalTtlSeconds=600).`, EXIT.usage);
      patch[pair.slice(0, index)] = parseSettingValue(pair.slice(index + 1));
    }
  }
  const op = await asOperator(values);
  const result = await op.client.call<{ settings: Record<string, unknown> }>(sub === 'get' ? 'GET' : 'PATCH', op.path('/settings'), sub === 'set' ? patch : undefined);
  if (values.json) printJson(result.settings);
  else printTable(Object.entries(result.settings).map(([key, value]) => ({ key, value })), [['key', 'SETTING'], ['value', 'VALUE']], 'No settings.');
  return EXIT.ok;
}
