import { isLoopbackAddress } from '../lib/loopback.js';
import { CliError, EXIT } from './errors.js';
import type { PasswordSource } from './prompt.js';
import { visibleText } from '../lib/visible-text.js';

export const DEFAULT_URL = 'http://127.0.0.1:3210';

/**
 * Where the gateway is: --url, then AIP_URL, then the default. Only
 * loopback URLs are accepted: the CLI is about to send a database password.
 */
export function gatewayUrl(explicit?: string): string {
  const raw = explicit ?? process.env.AIP_URL ?? DEFAULT_URL;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CliError(`"${raw}" is not a URL. Use e.g. --url http://127.0.0.1:3210`, EXIT.usage);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (url.protocol !== 'http:' || !(host === 'localhost' || isLoopbackAddress(host))) {
    throw new CliError(`Refusing to talk to ${raw}: the gateway is local-only, so its URL must be http:// on a loopback address (127.0.0.1, ::1, localhost).`, EXIT.usage);
  }
  return url.origin;
}

/** Longest command shown in a password prompt. */
const MAX_PROMPT_COMMAND_CHARS = 120;

/**
 * The password prompt names the command it authorizes. An agent that runs
 * `aip approvals run req_…` in a terminal the operator is looking at gets a
 * prompt that says exactly that, not a bare "Password:" the operator might
 * answer out of habit (invariant 8). The command line is the agent's to
 * write, so it is shown escaped and cut.
 */
export function passwordPrompt(database: string, argv: readonly string[] = process.argv.slice(2)): string {
  const command = visibleText(['aip', ...argv].join(' '), { maxLength: MAX_PROMPT_COMMAND_CHARS });
  return `Password for database "${visibleText(database)}" (to run: ${command}): `;
}

export interface GatewayStatus {
  version: string;
  dataDir: string;
  locked: boolean;
  databases: Array<{
    name: string;
    unlocked: boolean;
    default: boolean;
    mcpRunning: boolean;
    sizeBytes: number;
    createdAt: string;
    hasSafetyCopy: boolean;
    rollbackWarning: string | null;
  }>;
  process: { pid: number; dumpable: boolean | null; sigusr1Ignored: boolean; inspectorOpen: boolean };
  session: { id: string; client: string; databases: string[] } | null;
}

interface ApiError {
  error?: { code?: string; message?: string };
}

/** A tiny HTTP client holding one operator session (cookies + CSRF), as the UI would. */
export class GatewayClient {
  private readonly cookies = new Map<string, string>();

  constructor(readonly baseUrl: string) {}

  private remember(response: Response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const index = pair!.indexOf('=');
      const name = pair!.slice(0, index).trim();
      const value = pair!.slice(index + 1);
      if (value === '' || /Max-Age=0/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  async raw(method: string, path: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.cookies.size > 0) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    if (method !== 'GET' && this.cookies.has('aip_csrf')) headers['x-csrf-token'] = this.cookies.get('aip_csrf')!;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    } catch {
      throw new CliError(`No gateway is answering at ${this.baseUrl}. Start one with: aip start   (or point --url / AIP_URL at it)`);
    }
    this.remember(response);
    return response;
  }

  async call<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    if (!this.cookies.has('aip_csrf') && method !== 'GET') await this.raw('GET', '/api/status');
    const response = await this.raw(method, path, body);
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? {} : JSON.parse(text);
    } catch {
      throw new CliError(`The gateway at ${this.baseUrl} answered ${response.status} with something that is not JSON. Is --url pointing at AIPermission?`);
    }
    if (!response.ok) {
      const error = (parsed as ApiError).error;
      // A gateway message may quote what an agent or plugin wrote (a name, a plugin's error): shown escaped, on one line (invariant 8).
      throw new CliError(typeof error?.message === 'string' ? visibleText(error.message) : `The gateway answered ${response.status}.`, EXIT.error, error?.code);
    }
    return parsed as T;
  }

  /**
   * The live event stream (SSE) of this session, as parsed events. Ends when
   * the gateway closes it; the caller reconnects if it wants more.
   */
  async *events(signal?: AbortSignal): AsyncGenerator<{ event: string; data: string }> {
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (this.cookies.size > 0) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}/api/events`, { headers, ...(signal ? { signal } : {}) });
    } catch {
      throw new CliError(`No gateway is answering at ${this.baseUrl}.`);
    }
    if (!response.ok || !response.body) {
      throw Object.assign(new CliError(`The gateway refused the event stream (${response.status}).`), { status: response.status });
    }
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
        }
        if (data.length > 0) yield { event, data: data.join('\n') };
      }
    }
  }

  status() {
    return this.call<GatewayStatus>('GET', '/api/status');
  }

  /**
   * Picks the database: --db, then AIP_DB (a name, not a secret), then the
   * only one there is, then the default one (the first created, which an
   * agent cannot pre-date), saying so on stderr. The choice never depends on
   * which databases are unlocked: an agent can unlock one of its own.
   */
  async chooseDatabase(explicit: string | undefined): Promise<string> {
    const chosen = explicit ?? process.env.AIP_DB;
    if (chosen) return chosen;
    const { databases } = await this.status();
    if (databases.length === 0) throw new CliError('There is no database yet. Create one with: aip db create main');
    if (databases.length === 1) return databases[0]!.name;
    const fallback = databases.find((d) => d.default) ?? databases[0]!;
    process.stderr.write(`${visibleText(`aip: using database "${fallback.name}", the first one created (there are ${databases.length}: ${databases.map((d) => d.name).join(', ')}; choose with --db NAME).`)}\n`);
    return fallback.name;
  }

  /** Proves the database password for this process's session (the operator, not the agent, is at the keyboard). */
  async prove(database: string, passwords: PasswordSource): Promise<void> {
    const password = await passwords.read(passwordPrompt(database));
    await this.checkingPassword(() => this.call('POST', `/api/databases/${encodeURIComponent(database)}/session`, { password, client: 'cli' }));
  }

  async unlock(database: string, passwords: PasswordSource): Promise<{ database: { name: string; mcpRunning: boolean; rollbackWarning: string | null } }> {
    const password = await passwords.read(passwordPrompt(database));
    return this.checkingPassword(() => this.call('POST', `/api/databases/${encodeURIComponent(database)}/unlock`, { password, client: 'cli' }));
  }

  /** Password checks wait their turn in the gateway (after someone guessed wrong); say so instead of looking hung. */
  async checkingPassword<T>(request: () => Promise<T>): Promise<T> {
    const notice = setTimeout(() => process.stderr.write('aip: waiting for the gateway to check the password (checks run one at a time after wrong guesses)...\n'), 2_000);
    try {
      return await request();
    } finally {
      clearTimeout(notice);
    }
  }
}
