import { parse } from '../args.js';
import { CliError, EXIT } from '../errors.js';
import { GatewayClient, gatewayUrl } from '../client.js';
import { passwordSource } from '../prompt.js';
import { line, printJson, printTable, say } from '../output.js';
import { asOperator } from '../operator.js';

export const UNLOCK_USAGE = 'aip unlock [--db NAME] [--password-stdin] [--url URL]';
export const LOCK_USAGE = 'aip lock [--db NAME] [--password-stdin] [--url URL]';
export const STATUS_USAGE = 'aip status [--json] [--url URL]';
export const SWITCH_USAGE = 'aip switch on|off|status [--db NAME] [--password-stdin]   the MCP switch: off = every agent call answers "stopped"';
export const SETTINGS_USAGE = 'aip settings get | aip settings set KEY=VALUE... [--db NAME] [--password-stdin]';

export async function unlockCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {}, UNLOCK_USAGE);
  const client = new GatewayClient(gatewayUrl(values.url));
  const db = await client.chooseDatabase(values.db, 'any');
  const result = await client.unlock(db, passwordSource(values['password-stdin']));
  say(line`Unlocked "${db}". MCP switch: ` + (result.database.mcpRunning ? 'on.' : 'off (agents get "stopped"; turn on with: aip switch on).'));
  return EXIT.ok;
}

export async function lockCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {}, LOCK_USAGE);
  const op = await asOperator(values);
  await op.client.call('POST', op.path('/lock'));
  say(line`Locked "${op.db}".`);
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
  printTable(
    status.databases.map((d) => ({ name: d.name, state: d.unlocked ? 'unlocked' : 'locked', note: d.hasSafetyCopy ? 'a password change was interrupted; unlock to recover' : '' })),
    [['name', 'DATABASE'], ['state', 'STATE'], ['note', '']],
    'No databases yet. Create one with: aip db create main',
  );
  return EXIT.ok;
}

export async function switchCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values } = parse(rest, {}, SWITCH_USAGE);
  if (sub !== 'on' && sub !== 'off' && sub !== 'status') throw new CliError(`Usage: ${SWITCH_USAGE}`, EXIT.usage);
  const op = await asOperator(values);
  const result =
    sub === 'status'
      ? await op.client.call<{ running: boolean }>('GET', op.path('/mcp'))
      : await op.client.call<{ running: boolean }>('PUT', op.path('/mcp'), { running: sub === 'on' });
  if (values.json) printJson(result);
  else say(line`MCP switch for "${op.db}": ` + (result.running ? 'on (agents can run what their grants allow)' : 'off (every agent call answers "stopped")'));
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
