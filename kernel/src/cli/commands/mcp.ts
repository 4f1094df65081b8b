import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { isInitializeRequest, isJSONRPCRequest, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { TOKEN_PATTERN } from '../../tokens/index.js';
import { MCP_INSTRUCTIONS } from '../../mcp/index.js';
import { parse } from '../args.js';
import { CliError, EXIT } from '../errors.js';
import { gatewayUrl } from '../client.js';
import { passwordSource } from '../prompt.js';
import { say } from '../output.js';

export const MCP_USAGE = `aip mcp                                   the stdio bridge for MCP clients that only speak stdio;
                                          reads AIP_URL (default http://127.0.0.1:3210) and AIP_TOKEN from the environment
aip mcp init --client CLIENT [--print] [--force] [--file PATH] [--token-stdin] [--url URL]
                                          writes CLIENT's MCP config: claude-code, codex, cursor, vscode, windsurf, gemini, custom
aip mcp instructions                      prints guidance for agents (paste it into the agent's rules)`;

/** The `aip` launcher, so a client can start the bridge without aip on its PATH. */
function aipLauncher(): string {
  return fileURLToPath(new URL('../../../bin/aip.js', import.meta.url));
}

// ---- the stdio bridge ----------------------------------------------------------

function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  // The gateway answers with a JSON-RPC error body; relay its message, not the transport's wrapping.
  const body = /\{.*"message"\s*:\s*"((?:[^"\\]|\\.)*)".*\}/s.exec(text);
  if (body) {
    try {
      return JSON.parse(`"${body[1]}"`) as string;
    } catch {
      return body[1]!;
    }
  }
  return text;
}

/**
 * Relays MCP between stdio (the client) and the gateway's Streamable HTTP
 * endpoint, message for message: requests, responses, notifications
 * (progress included) and errors. The token goes only to a loopback URL.
 */
export async function runBridge(): Promise<number> {
  const base = gatewayUrl(process.env.AIP_URL);
  const token = process.env.AIP_TOKEN ?? '';
  if (!TOKEN_PATTERN.test(token)) {
    throw new CliError('Set AIP_TOKEN to an MCP token (aip_...) in the MCP client\'s configuration for this server. aip mcp init writes it for you.', EXIT.usage);
  }
  const upstream = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${token}` } } });
  const downstream = new StdioServerTransport();
  let closing = false;
  const shutdown = async () => {
    if (closing) return;
    closing = true;
    await upstream.terminateSession().catch(() => undefined);
    await upstream.close().catch(() => undefined);
    process.exit(0);
  };
  upstream.onmessage = (message: JSONRPCMessage) => {
    // Follow the protocol version the gateway chose, as a direct client would.
    const result = (message as { result?: { protocolVersion?: unknown } }).result;
    if (result && typeof result.protocolVersion === 'string') upstream.setProtocolVersion(result.protocolVersion);
    void downstream.send(message);
  };
  upstream.onerror = (error) => process.stderr.write(`aip mcp: ${errorText(error)}\n`);
  downstream.onmessage = (message: JSONRPCMessage) => {
    upstream.send(message).catch((error: unknown) => {
      if (!isJSONRPCRequest(message)) return;
      const reachable = !/fetch failed|ECONNREFUSED/i.test(String(error));
      void downstream.send({
        jsonrpc: '2.0',
        id: message.id,
        error: {
          code: -32001,
          message: reachable ? errorText(error) : `No AIPermission gateway answers at ${base}. Ask your operator to start it (aip start).`,
        },
      });
      if (isInitializeRequest(message) && !reachable) process.stderr.write(`aip mcp: no gateway at ${base}\n`);
    });
  };
  downstream.onclose = () => void shutdown();
  process.stdin.on('end', () => void shutdown());
  await upstream.start();
  await downstream.start();
  return new Promise<number>(() => undefined);
}

// ---- client setup ----------------------------------------------------------------

type Client = 'claude-code' | 'codex' | 'cursor' | 'vscode' | 'windsurf' | 'gemini' | 'custom';
const CLIENTS: Client[] = ['claude-code', 'codex', 'cursor', 'vscode', 'windsurf', 'gemini', 'custom'];
const SERVER_NAME = 'aipermission';

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

/** Whether git tracks this file (a token must not land in a repository). */
function trackedByGit(file: string): boolean {
  try {
    execFileSync('git', ['-C', dirname(file), 'ls-files', '--error-unmatch', file], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function ignoredByGit(file: string): boolean | undefined {
  try {
    execFileSync('git', ['-C', dirname(file), 'rev-parse', '--is-inside-work-tree'], { stdio: 'ignore' });
  } catch {
    return undefined; // not in a repository
  }
  try {
    execFileSync('git', ['-C', dirname(file), 'check-ignore', '-q', file], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
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
  if (!client || !CLIENTS.includes(client)) throw new CliError(`--client must be one of ${CLIENTS.join(', ')}.\n\nUsage: ${MCP_USAGE}`, EXIT.usage);
  const url = `${gatewayUrl(values.url)}/mcp`;
  const token = (await passwordSource(values['token-stdin']).read('MCP token (aip_...): ')).trim();
  if (!TOKEN_PATTERN.test(token)) throw new CliError('That is not an MCP token: it starts with aip_ (create one with aip token create).', EXIT.usage);

  const config = configFor(client, process.cwd());
  if (!config) {
    process.stdout.write(customSnippet(url, token));
    return EXIT.ok;
  }
  const file = values.file ? resolve(values.file) : config.file;
  if (values.print) {
    process.stdout.write(config.snippet(url, token));
    return EXIT.ok;
  }
  if (trackedByGit(file) && !values.force) {
    throw new CliError(`${file} is tracked by git: writing a token there would put it in the repository. Use --print and configure it elsewhere, or --force if you really mean it.`, EXIT.error);
  }
  const existing = await readFile(file, 'utf8').catch(() => undefined);
  if (existing && config.alreadyConfigured(existing) && !values.force) {
    throw new CliError(`${file} already has an "${SERVER_NAME}" server; pass --force to replace it.`, EXIT.error);
  }
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, config.render(existing, url, token), { mode: 0o600 });
  say(`Wrote the ${client} MCP configuration to ${file}.`);
  if (ignoredByGit(file) === false) say(`Note: ${file} is not ignored by git; add it to .gitignore so the token is never committed.`);
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
