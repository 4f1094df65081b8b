import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request as httpRequest } from 'node:http';
import { createInterface } from 'node:readline';
import type { Duplex } from 'node:stream';
import { isJSONRPCRequest } from '@modelcontextprotocol/sdk/types.js';
import { TOKEN_PATTERN, tokenProblem } from '../../tokens/index.js';
import { closestName } from '../../lib/closest-name.js';
import { MCP_INSTRUCTIONS, parseLine, STREAM_UPGRADE_PROTOCOL } from '../../mcp/index.js';
import { parse } from '../args.js';
import { CliError, EXIT } from '../errors.js';
import { gatewayUrl } from '../client.js';
import { passwordSource } from '../prompt.js';
import { say } from '../output.js';
import { gitStatusOf } from '../safe-git.js';

export const MCP_USAGE = `aip mcp                                   the stdio bridge for MCP clients that only speak stdio;
                                          reads AIP_URL (default http://127.0.0.1:3210) and AIP_TOKEN from the environment
aip mcp init --client CLIENT [--print] [--force] [--file PATH] [--token-stdin] [--url URL]
                                          writes CLIENT's MCP config: claude-code, codex, cursor, vscode, windsurf, gemini, custom
aip mcp instructions                      prints guidance for agents (paste it into the agent's rules)`;

/**
 * After stdin ends, how long the bridge waits for the gateway to send the
 * answers still in flight and close: longer than the gateway's own drain
 * (1 s) so it normally closes first, and under the 2 s MCP clients give a
 * stdio server to exit before they kill it.
 */
const BRIDGE_DRAIN_MS = 1500;

/** The `aip` launcher, so a client can start the bridge without aip on its PATH. */
function aipLauncher(): string {
  return fileURLToPath(new URL('../../../bin/aip.js', import.meta.url));
}

// ---- the stdio bridge ----------------------------------------------------------

/** Answers every request the client sends with `message` (the gateway refused or is not there), until stdin ends. */
function answerWithError(message: string): Promise<number> {
  process.stderr.write(`aip mcp: ${message}\n`);
  const input = createInterface({ input: process.stdin, terminal: false });
  const reply = (answer: object) => process.stdout.write(`${JSON.stringify(answer)}\n`);
  input.on('line', (line) => {
    if (line.trim() === '') return;
    // The same framing answers as the gateway's: -32700 for a line that is not JSON, -32600 for one that is not JSON-RPC.
    const parsed = parseLine(line);
    if ('error' in parsed) reply(parsed.error);
    else if (isJSONRPCRequest(parsed.message)) reply({ jsonrpc: '2.0', id: parsed.message.id, error: { code: -32001, message } });
  });
  return new Promise((resolve) => input.once('close', () => resolve(EXIT.error)));
}

/**
 * The stdio bridge: opens the gateway's bridge channel (an HTTP Upgrade on
 * /mcp, authenticated with the token), which speaks MCP's own stdio framing,
 * then relays bytes both ways. Nothing is parsed or re-framed, so requests,
 * responses, notifications (progress included) and errors pass unchanged.
 * The token goes only to a loopback URL (gatewayUrl refuses anything else
 * before any connection is made).
 */
export async function runBridge(): Promise<number> {
  const base = gatewayUrl(process.env.AIP_URL?.replace(/\/mcp\/?$/, ''));
  const token = process.env.AIP_TOKEN ?? '';
  if (!TOKEN_PATTERN.test(token)) {
    const problem = token === '' ? 'it is not set' : `the value is not an MCP token: ${tokenProblem(token)}`;
    throw new CliError(`Set AIP_TOKEN to an MCP token (aip_...) in the MCP client's configuration for this server (${problem}). aip mcp init writes it for you.`, EXIT.usage);
  }
  const url = new URL(base);
  const outcome = await new Promise<{ socket: Duplex; head: Buffer } | { refused: string }>((resolve) => {
    const request = httpRequest({
      host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port || 80,
      path: '/mcp',
      method: 'GET',
      headers: { Host: url.host, Connection: 'Upgrade', Upgrade: STREAM_UPGRADE_PROTOCOL, Authorization: `Bearer ${token}` },
    });
    request.on('upgrade', (_response, socket, head) => resolve({ socket, head }));
    request.on('response', (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => {
        let message = `The gateway refused the connection (HTTP ${response.statusCode}).`;
        try {
          message = (JSON.parse(body) as { error?: { message?: string } }).error?.message ?? message;
        } catch {
          // keep the status line message
        }
        resolve({ refused: message });
      });
    });
    request.on('error', () => resolve({ refused: `No AIPermission gateway answers at ${base}. Ask your operator to start it (aip start).` }));
    request.end();
  });
  if ('refused' in outcome) return answerWithError(outcome.refused);

  const { socket, head } = outcome;
  (socket as Duplex & { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  if (head.length > 0) process.stdout.write(head);
  // When the client closes stdin, pipe() half-closes the connection: the
  // gateway then ends this session once its answers in flight are sent.
  process.stdin.pipe(socket);
  socket.pipe(process.stdout);
  return new Promise<number>((resolve) => {
    let stdinEnded = false;
    let drain: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (code: number) => {
      if (done) return;
      done = true;
      clearTimeout(drain);
      process.stdin.unpipe(socket);
      process.stdin.destroy();
      socket.destroy();
      resolve(code);
    };
    process.stdin.once('end', () => {
      // The client is done (MCP stdio shutdown starts by closing our stdin) or
      // died. Answers still in flight get a bounded moment, then the bridge
      // exits by itself, before a client's 2 s wait runs out.
      stdinEnded = true;
      drain = setTimeout(() => finish(EXIT.ok), BRIDGE_DRAIN_MS);
    });
    // The client stopped reading our stdout: nobody is left to answer.
    process.stdout.once('error', () => finish(EXIT.ok));
    socket.on('error', (error) => process.stderr.write(`aip mcp: connection to the gateway failed: ${error.message}\n`));
    socket.once('close', () => {
      if (!stdinEnded) process.stderr.write('aip mcp: the gateway closed the connection (stopped, restarted, or the database was locked).\n');
      finish(EXIT.ok);
    });
  });
}

// ---- client setup ----------------------------------------------------------------

type Client = 'claude-code' | 'codex' | 'cursor' | 'vscode' | 'windsurf' | 'gemini' | 'custom';
const CLIENTS: Client[] = ['claude-code', 'codex', 'cursor', 'vscode', 'windsurf', 'gemini', 'custom'];
const SERVER_NAME = 'aipermission';
/** Names people type for a client that edit distance would not find (`code` is closer to codex). */
const CLIENT_ALIASES: Record<string, Client> = { claude: 'claude-code', claudecode: 'claude-code', code: 'vscode', 'vs-code': 'vscode', 'visual-studio-code': 'vscode', 'gemini-cli': 'gemini' };

interface ClientConfig {
  /** Where the client reads its MCP servers from (project or user level, as each client does). */
  file: string;
  render(existing: string | undefined, url: string, token: string): string;
  /** The entry alone, for --print. */
  snippet(url: string, token: string): string;
  alreadyConfigured(existing: string): boolean;
}

function jsonConfig(file: string, rootKey: string, entry: (url: string, token: string) => Record<string, unknown>): ClientConfig {
  return {
    file,
    render(existing, url, token) {
      let doc: Record<string, unknown> = {};
      if (existing && existing.trim() !== '') {
        try {
          doc = JSON.parse(existing) as Record<string, unknown>;
        } catch {
          throw new CliError(`${file} is not valid JSON; fix it or pass --file to write elsewhere.`, EXIT.error);
        }
      }
      const servers = (doc[rootKey] ?? {}) as Record<string, unknown>;
      doc[rootKey] = { ...servers, [SERVER_NAME]: entry(url, token) };
      return `${JSON.stringify(doc, null, 2)}\n`;
    },
    snippet: (url, token) => `${JSON.stringify({ [rootKey]: { [SERVER_NAME]: entry(url, token) } }, null, 2)}\n`,
    alreadyConfigured: (existing) => {
      try {
        return Boolean(((JSON.parse(existing) as Record<string, Record<string, unknown>>)[rootKey] ?? {})[SERVER_NAME]);
      } catch {
        return false;
      }
    },
  };
}

function tomlString(value: string): string {
  return JSON.stringify(value);
}

function codexConfig(file: string): ClientConfig {
  const section = (url: string, token: string) =>
    [
      `[mcp_servers.${SERVER_NAME}]`,
      `command = ${tomlString(process.execPath)}`,
      `args = [${tomlString(aipLauncher())}, "mcp"]`,
      `env = { AIP_URL = ${tomlString(url)}, AIP_TOKEN = ${tomlString(token)} }`,
      '',
    ].join('\n');
  return {
    file,
    render(existing, url, token) {
      const text = existing ?? '';
      const header = `[mcp_servers.${SERVER_NAME}]`;
      const start = text.indexOf(header);
      if (start < 0) return `${text}${text && !text.endsWith('\n') ? '\n' : ''}${text ? '\n' : ''}${section(url, token)}`;
      const rest = text.slice(start + header.length);
      const next = rest.search(/^\[/m);
      return `${text.slice(0, start)}${section(url, token)}${next >= 0 ? rest.slice(next) : ''}`;
    },
    snippet: section,
    alreadyConfigured: (existing) => existing.includes(`[mcp_servers.${SERVER_NAME}]`),
  };
}

function configFor(client: Client, cwd: string): ClientConfig | undefined {
  const headers = (token: string) => ({ Authorization: `Bearer ${token}` });
  switch (client) {
    case 'claude-code':
      return jsonConfig(join(cwd, '.mcp.json'), 'mcpServers', (url, token) => ({ type: 'http', url, headers: headers(token) }));
    case 'cursor':
      return jsonConfig(join(cwd, '.cursor', 'mcp.json'), 'mcpServers', (url, token) => ({ url, headers: headers(token) }));
    case 'vscode':
      return jsonConfig(join(cwd, '.vscode', 'mcp.json'), 'servers', (url, token) => ({ type: 'http', url, headers: headers(token) }));
    case 'windsurf':
      return jsonConfig(join(homedir(), '.codeium', 'windsurf', 'mcp_config.json'), 'mcpServers', (url, token) => ({ serverUrl: url, headers: headers(token) }));
    case 'gemini':
      return jsonConfig(join(cwd, '.gemini', 'settings.json'), 'mcpServers', (url, token) => ({ httpUrl: url, headers: headers(token) }));
    case 'codex':
      // Codex gets the stdio bridge: it starts `aip mcp` itself.
      return codexConfig(join(homedir(), '.codex', 'config.toml'));
    case 'custom':
      return undefined;
  }
}

function customSnippet(url: string, token: string): string {
  return [
    'Streamable HTTP (preferred):',
    `  URL:     ${url}`,
    `  Header:  Authorization: Bearer ${token}`,
    '',
    'stdio (for clients that only start processes):',
    `  command: ${process.execPath}`,
    `  args:    ${aipLauncher()} mcp`,
    `  env:     AIP_URL=${url.replace(/\/mcp$/, '')}  AIP_TOKEN=${token}`,
    '',
  ].join('\n');
}

/**
 * Refuses a file git tracks (a token must not land in a repository), or one
 * git cannot tell about, unless --force. Returns whether git ignores it.
 */
function checkWritable(file: string, force: boolean): boolean | undefined {
  const git = gitStatusOf(file);
  if (force) return git.ignored;
  if (git.tracked === true) {
    throw new CliError(`${file} is tracked by git: writing a token there would put it in the repository. Use --print and configure it elsewhere, or --force if you really mean it.`, EXIT.error);
  }
  if (git.tracked === undefined) {
    throw new CliError(
      `git could not tell whether ${file} is tracked (git said: ${git.problem ?? 'nothing'}), so no token is written there. Fix the repository, use --print and configure it elsewhere, or --force if you really mean it.`,
      EXIT.error,
    );
  }
  return git.ignored;
}

async function initCommand(argv: string[]): Promise<number> {
  if (argv.some((arg) => arg === '--token' || arg.startsWith('--token=') || /^aip_/.test(arg))) {
    throw new CliError('The token is never taken from the command line (other processes can read it). Type it at the prompt or pipe it with --token-stdin.', EXIT.usage);
  }
  const { values } = parse(
    argv,
    { client: { type: 'string' }, print: { type: 'boolean' }, force: { type: 'boolean' }, file: { type: 'string' }, 'token-stdin': { type: 'boolean' } },
    MCP_USAGE,
  );
  const client = values.client as Client | undefined;
  if (!client || !CLIENTS.includes(client)) {
    const guess = client ? (CLIENT_ALIASES[client.toLowerCase()] ?? closestName(client, CLIENTS)) : undefined;
    throw new CliError(`--client must be one of ${CLIENTS.join(', ')}.${guess ? ` Did you mean --client ${guess}?` : ''}\n\nUsage: ${MCP_USAGE}`, EXIT.usage);
  }
  const url = `${gatewayUrl(values.url)}/mcp`;
  const config = configFor(client, process.cwd());
  const file = config && !values.print ? (values.file ? resolve(values.file) : config.file) : undefined;
  // Everything that runs git, or could refuse, happens before the token is
  // read: no child process ever runs while the token is in this process.
  const ignored = file ? checkWritable(file, values.force === true) : undefined;
  const alreadyThere = async () => {
    const existing = file ? await readFile(file, 'utf8').catch(() => undefined) : undefined;
    if (file && existing && config!.alreadyConfigured(existing) && !values.force) {
      throw new CliError(`${file} already has an "${SERVER_NAME}" server; pass --force to replace it.`, EXIT.error);
    }
    return existing;
  };
  await alreadyThere();
  const token = (await passwordSource(values['token-stdin'], '--token-stdin').read('MCP token (aip_...): ')).trim();
  if (!TOKEN_PATTERN.test(token)) throw new CliError(`That is not an MCP token: ${tokenProblem(token)}. Copy it again from aip token create (it is shown once; create another if it is lost).`, EXIT.usage);

  if (!config) {
    process.stdout.write(customSnippet(url, token));
    return EXIT.ok;
  }
  if (!file) {
    process.stdout.write(config.snippet(url, token));
    return EXIT.ok;
  }
  // Read again: the file may have changed while the token was typed.
  const existing = await alreadyThere();
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, config.render(existing, url, token), { mode: 0o600 });
  // An existing file keeps its mode on write: it holds a token now, so only its owner may read it.
  await chmod(file, 0o600);
  say(`Wrote the ${client} MCP configuration to ${file}.`);
  if (ignored === false) say(`Note: ${file} is not ignored by git; add it to .gitignore so the token is never committed.`);
  say('Restart the client (or reload its MCP servers) to connect. Agents should follow: aip mcp instructions');
  return EXIT.ok;
}

export async function mcpCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined) return runBridge();
  if (sub === 'init') return initCommand(rest);
  if (sub === 'instructions') {
    process.stdout.write(`${MCP_INSTRUCTIONS}\n`);
    return EXIT.ok;
  }
  throw new CliError(`Unknown mcp command "${sub}".\n\n${MCP_USAGE}`, EXIT.usage);
}
