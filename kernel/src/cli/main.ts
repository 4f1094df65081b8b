#!/usr/bin/env node
/**
 * `aip` — the operator's command line. Operator commands talk to the running
 * gateway on loopback and prove the database password from a hidden prompt
 * or --password-stdin, never argv or the environment (invariant 8).
 */
import { hardenProcess } from '../lib/harden.js';
import { CliError, EXIT } from './errors.js';
import { VERSION } from '../version.js';
import { visibleText } from '../lib/visible-text.js';
import { startCommand, START_USAGE } from './commands/start.js';
import { dbCommand, DB_USAGE } from './commands/db.js';
import { lockCommand, settingsCommand, SETTINGS_USAGE, statusCommand, switchCommand, SWITCH_USAGE, unlockCommand, UNLOCK_USAGE, LOCK_USAGE, STATUS_USAGE } from './commands/gateway.js';
import { profileCommand, PROFILE_USAGE, targetCommand, TARGET_USAGE } from './commands/targets.js';
import { grantCommand, GRANT_USAGE, tokenCommand, TOKEN_USAGE } from './commands/tokens.js';
import { approvalsCommand, APPROVALS_USAGE, auditCommand, AUDIT_USAGE } from './commands/approvals.js';
import { pluginCommand, PLUGIN_USAGE } from './commands/plugins.js';
import { mcpCommand, MCP_USAGE } from './commands/mcp.js';
import { doctorCommand, DOCTOR_USAGE } from './commands/doctor.js';
import { sshCommand, SSH_USAGE } from './commands/ssh.js';

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<number>; usage: string; summary: string }> = {
  start: { run: startCommand, usage: START_USAGE, summary: 'run the gateway in the foreground (loopback only)' },
  db: { run: dbCommand, usage: DB_USAGE, summary: 'create, list, export, import databases; change a password' },
  unlock: { run: unlockCommand, usage: UNLOCK_USAGE, summary: 'unlock a database in the running gateway' },
  lock: { run: lockCommand, usage: LOCK_USAGE, summary: 'lock a database' },
  status: { run: statusCommand, usage: STATUS_USAGE, summary: 'show the gateway and its databases' },
  switch: { run: switchCommand, usage: SWITCH_USAGE, summary: 'turn MCP execution on or off (the global stop)' },
  settings: { run: settingsCommand, usage: SETTINGS_USAGE, summary: 'show or change settings (TTL, retention, redaction, auto-start)' },
  target: { run: targetCommand, usage: TARGET_USAGE, summary: 'add, list, check, remove targets' },
  profile: { run: profileCommand, usage: PROFILE_USAGE, summary: "add, list, remove a target's credential profiles" },
  token: { run: tokenCommand, usage: TOKEN_USAGE, summary: 'create, list, revoke MCP tokens' },
  grant: { run: grantCommand, usage: GRANT_USAGE, summary: 'set, list, remove grants' },
  ssh: { run: sshCommand, usage: SSH_USAGE, summary: 'SSH keys (generate, import, show, remove) and host keys (list, approve, reject)' },
  approvals: { run: approvalsCommand, usage: APPROVALS_USAGE, summary: 'list, run or decline action requests' },
  audit: { run: auditCommand, usage: AUDIT_USAGE, summary: 'search the audit log, verify its hash chain' },
  plugin: { run: pluginCommand, usage: PLUGIN_USAGE, summary: 'list, install, remove, verify connectors; scaffold a new one' },
  mcp: { run: mcpCommand, usage: MCP_USAGE, summary: 'the stdio bridge for MCP clients; write client configs; agent instructions' },
  doctor: { run: doctorCommand, usage: DOCTOR_USAGE, summary: 'check what an agent on this account could do here, and how to close it' },
};

function help(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  return [
    `aip ${VERSION} — AIPermission, a local permission gateway for AI agents`,
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, command]) => `  ${name.padEnd(width)}  ${command.summary}`),
    '',
    'Run "aip COMMAND --help" for details. Common options: --db NAME, --url URL (default http://127.0.0.1:3210, or AIP_URL),',
    '--data-dir DIR (default ~/.aipermission, or AIP_DATA_DIR), --json, --password-stdin.',
    'Passwords are read from a hidden prompt or --password-stdin, never from arguments or the environment.',
    'Exit codes: 0 ok, 1 error, 2 usage, 3 audit chain broken.',
  ].join('\n');
}

export async function runCli(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(`${help()}\n`);
    return EXIT.ok;
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write(`${VERSION}\n`);
    return EXIT.ok;
  }
  const command = COMMANDS[name];
  if (!command) throw new CliError(`Unknown command "${name}".\n\n${help()}`, EXIT.usage);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`Usage:\n${command.usage.replace(/^/gm, '  ')}\n`);
    return EXIT.ok;
  }
  return command.run(rest);
}

// Before anything is read or typed: every aip process may hold a password, a
// session or a token, so none may be dumpable or open an inspector on SIGUSR1.
hardenProcess();

runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof CliError) {
      process.stderr.write(`aip: ${error.message}\n`);
      process.exitCode = error.exitCode;
    } else {
      process.stderr.write(`aip: unexpected error: ${visibleText(error instanceof Error ? error.message : String(error))}\n`);
      process.exitCode = EXIT.error;
    }
  },
);
