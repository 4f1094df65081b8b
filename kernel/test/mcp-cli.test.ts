import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { AIP, aip } from './helpers/cli.js';
import { callTool, mcpClient, operator, startGatewayProcess, type RunningGateway } from './helpers/mcp.js';
import { tempDir, PASSWORD } from './helpers/temp.js';

let dir: string;
let cleanup: () => Promise<void>;
let gw: RunningGateway;
let op: Awaited<ReturnType<typeof operator>>;
let redisTarget: { id: string; profileId: string; ref: string };
const direct = new Redis({ host: '127.0.0.1', port: 6379 });
const prefix = `aip:mcpcli:${process.pid}:`;
const clients: Client[] = [];

async function token(grants: Record<string, 'always_run' | 'approval_required'>) {
  const created = await op.call<{ token: { id: string }; secret: string }>('POST', op.db('/tokens'), { name: `agent-${Math.random().toString(36).slice(2, 8)}` });
  for (const [action, rule] of Object.entries(grants)) {
    await op.call('PUT', op.db('/grants'), { tokenId: created.token.id, targetId: redisTarget.id, profileId: redisTarget.profileId, action, rule });
  }
  return { id: created.token.id, secret: created.secret };
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('aip-mcpcli-'));
  expect((await aip(['db', 'create', 'main', '--data-dir', join(dir, 'data'), '--password-stdin'], { stdin: `${PASSWORD}\n` })).code).toBe(0);
  gw = await startGatewayProcess(join(dir, 'data'));
  await aip(['unlock', '--url', gw.url, '--password-stdin'], { stdin: `${PASSWORD}\n` });
  op = await operator(gw.url);
  await op.call('PUT', op.db('/mcp'), { running: true });
  const { target } = await op.call<{ target: { id: string } }>('POST', op.db('/targets'), { kind: 'redis', name: 'cache', config: { host: '127.0.0.1', port: 6379 } });
  const { profile } = await op.call<{ profile: { id: string } }>('POST', op.db(`/targets/${target.id}/profiles`), { label: 'default', credentialKind: 'none' });
  redisTarget = { id: target.id, profileId: profile.id, ref: `redis:${target.id}:${profile.id}` };
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
  await gw?.stop();
  const keys = await direct.keys(`${prefix}*`);
  if (keys.length) await direct.del(...keys);
  direct.disconnect();
  await cleanup();
});

/** After a test locked the database: unlock it and turn MCP back on for the tests that follow. */
async function unlockAgain() {
  expect((await aip(['unlock', '--url', gw.url, '--password-stdin'], { stdin: `${PASSWORD}\n` })).code).toBe(0);
  op = await operator(gw.url);
  await op.call('PUT', op.db('/mcp'), { running: true });
}

/** `aip approvals watch` as a live process: its output so far, and a way to type a line. */
function startWatch() {
  const child = spawn(process.execPath, [AIP, 'approvals', 'watch', '--url', gw.url, '--password-stdin'], {
    env: { PATH: process.env.PATH ?? '', HOME: dir },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  let errors = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  child.stdin.write(`${PASSWORD}\n`);
  return {
    child,
    get output() {
      return output;
    },
    get errors() {
      return errors;
    },
    type(line: string) {
      child.stdin.write(`${line}\n`);
    },
    /** Waits for `pattern` to appear in output written after `from`. */
    async expect(pattern: RegExp, from = 0, timeoutMs = 10_000): Promise<RegExpMatchArray> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = output.slice(from).match(pattern);
        if (match) return match;
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`watch never printed ${pattern}; output:\n${output}\nstderr:\n${errors}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async quit(): Promise<number> {
      child.stdin.end('q\n');
      return new Promise((resolve) => child.once('exit', (code) => resolve(code ?? -1)));
    },
  };
}

describe('aip approvals watch', () => {
  it('is pushed new requests, shows hidden characters, runs and declines with notes that reach the agent', async () => {
    const t = await token({ set_string: 'approval_required' });
    const agent = await mcpClient('http', gw.url, t.secret);
    clients.push(agent);
    const watch = startWatch();
    await watch.expect(/Watching "main" for requests/);
    await watch.expect(/Nothing is waiting\./);

    // A zero-width space and a right-to-left override must not hide in the preview.
    const sneaky = `${prefix}a\u200bb\u202ec`;
    const mark = watch.output.length;
    const first = await callTool(agent, 'call_connector_action', { target_ref: redisTarget.ref, action_name: 'set_string', input: { key: sneaky, value: 'one' }, reason: 'set\u0007 the flag' });
    expect(first.status).toBe('approval_pending');
    await watch.expect(new RegExp(`\\[1\\] ${first.request_id}  redis\\.set_string on cache/default`), mark);
    const shown = watch.output.slice(mark);
    expect(shown).toContain('a\\u{200b}b\\u{202e}c');
    expect(shown).toContain('reason: set\\u{7} the flag');
    expect(shown).not.toContain('\u202e');

    const second = await callTool(agent, 'call_connector_action', { target_ref: redisTarget.ref, action_name: 'set_string', input: { key: `${prefix}two`, value: 'two' } });
    await watch.expect(new RegExp(`\\[2\\] ${second.request_id}`), mark);

    let at = watch.output.length;
    watch.type('run 1 Go ahead, only this once.');
    await watch.expect(new RegExp(`${first.request_id}: completed  output: \\{"written":true`), at);
    expect(await direct.get(sneaky)).toBe('one');
    const ran = await callTool(agent, 'get_connector_action_request', { request_id: first.request_id });
    expect(ran).toMatchObject({ status: 'completed', operator_note: 'Go ahead, only this once.' });

    at = watch.output.length;
    watch.type(`decline ${second.request_id} Use the staging cache.`);
    await watch.expect(new RegExp(`${second.request_id}: declined`), at);
    const declined = await callTool(agent, 'get_connector_action_request', { request_id: second.request_id });
    expect(declined).toMatchObject({ status: 'declined', operator_note: 'Use the staging cache.' });
    expect(await direct.exists(`${prefix}two`)).toBe(0);

    at = watch.output.length;
    watch.type('run 7');
    await watch.expect(/There is no pending request number 7\./, at);
    watch.type('approve everything');
    await watch.expect(/Type: run N \[note\], decline N \[note\]/, at);
    expect(await watch.quit()).toBe(0);
    expect(watch.errors).toBe('');

    // The password was proven once: both decisions came from the watch's one CLI session.
    const { entries } = await op.call<{ entries: Array<{ event: string; actor: string; subject: Record<string, string> }> }>('GET', op.db('/audit?limit=200'));
    const decisions = entries.filter((e) => [first.request_id, second.request_id].includes(e.subject.requestId) && /^action\.(approved|declined)$/.test(e.event));
    expect(decisions).toHaveLength(2);
    expect(decisions[0]!.actor).toMatch(/^operator:cli:ses_\w+$/);
    expect(decisions[1]!.actor).toBe(decisions[0]!.actor);
  });

  it('takes a typed password on a terminal, then commands, and ends with a clear message when the database is locked', async () => {
    // A real pseudo-terminal (util-linux script): the password prompt is hidden input on the TTY.
    const command = [process.execPath, AIP, 'approvals', 'watch', '--url', gw.url].map((part) => `'${part}'`).join(' ');
    const child = spawn('script', ['-qfec', command, '/dev/null'], { env: { PATH: process.env.PATH ?? '', HOME: dir, TERM: 'dumb' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const waitFor = async (pattern: RegExp) => {
      const deadline = Date.now() + 10_000;
      while (!pattern.test(output)) {
        if (Date.now() > deadline) throw new Error(`never saw ${pattern}; output:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    // The prompt names what the password authorizes.
    await waitFor(/Password for database "main" \(to run: aip approvals watch [^)]*\): /);
    child.stdin.write(`${PASSWORD}\r`);
    await waitFor(/Watching "main" for requests/);
    expect(output).not.toContain(PASSWORD);
    child.stdin.write('approve everything\r');
    await waitFor(/Type: run N \[note\]/);
    const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? -1)));
    await op.call('POST', op.db('/lock'));
    await waitFor(/Database "main" was locked, which ends this session\. Unlock it and run aip approvals watch again\./);
    expect(await exited).toBe(1);
    await unlockAgain();
  });

  it('shows a reason that forges an input line, with bidi and format characters, on its own line, escaped, in watch, list and show', async () => {
    const t = await token({ delete_keys: 'approval_required' });
    const agent = await mcpClient('http', gw.url, t.secret);
    clients.push(agent);
    const watch = startWatch();
    await watch.expect(/Watching "main" for requests/);
    const mark = watch.output.length;
    // The attack: a newline draws a harmless-looking input under a destructive request; isolates,
    // U+061C and a soft hyphen reorder or hide text; a carriage return and a tab rewrite the line.
    const reason = 'tidy up old sessions\n    input:  {"harmless":true}\u2066\u2069\u061c\u00ad\u202e\t\rok';
    const victim = `${prefix}victim`;
    await direct.set(victim, 'keep me');
    const asked = await callTool(agent, 'call_connector_action', { target_ref: redisTarget.ref, action_name: 'delete_keys', input: { keys: [victim] }, reason });
    expect(asked.status).toBe('approval_pending');
    const escaped = 'tidy up old sessions\\n    input:  {"harmless":true}\\u{2066}\\u{2069}\\u{61c}\\u{ad}\\u{202e}\\t\\rok';
    const number = (await watch.expect(new RegExp(`\\[(\\d+)\\] ${asked.request_id}  redis\\.delete_keys`), mark))[1];
    await watch.expect(/ {4}input: {2}\{"keys":/, mark);
    const drawn = watch.output.slice(mark);
    const block = drawn.slice(drawn.indexOf(`] ${asked.request_id}`)).split('\n');
    // One reason line holding the whole reason, then the real input: no forged line, nothing hidden.
    expect(block[1]).toBe(`    reason: ${escaped}`);
    expect(block[2]).toBe(`    input:  {"keys":["${victim}"]}`);
    expect(drawn.split('\n').filter((l) => l.startsWith('    input:'))).toEqual([`    input:  {"keys":["${victim}"]}`]);
    expect(drawn).not.toMatch(/[\u2066\u2069\u061c\u00ad\u202e\r\t]/);

    const listed = await aip(['approvals', 'list', '--url', gw.url, '--password-stdin'], { stdin: `${PASSWORD}\n` });
    expect(listed.code).toBe(0);
    const row = listed.stdout.split('\n').filter((l) => l.includes(asked.request_id));
    expect(row).toHaveLength(1);
    expect(row[0]).toContain(escaped);
    expect(listed.stdout).not.toMatch(/^\s*input:/m);
    expect(listed.stdout).not.toMatch(/[\u2066\u2069\u061c\u00ad\u202e\r\t]/);
    // --json stays exact data (a parser reads back the agent's reason) with nothing hidden on the terminal.
    const json = await aip(['approvals', 'list', '--json', '--url', gw.url, '--password-stdin'], { stdin: `${PASSWORD}\n` });
    expect(json.stdout).not.toMatch(/[\u2066\u2069\u061c\u00ad\u202e\r\t]/);
    expect(JSON.parse(json.stdout).find((r: { id: string }) => r.id === asked.request_id).reason).toBe(reason);
    const shown = await aip(['approvals', 'show', asked.request_id, '--url', gw.url, '--password-stdin'], { stdin: `${PASSWORD}\n` });
    expect(shown.stdout).toContain(`  reason:  ${escaped}\n  input:   {"keys":["${victim}"]}\n`);

    let at = watch.output.length;
    watch.type(`show ${number}`);
    await watch.expect(new RegExp(`  reason:  ${escaped.replace(/[\\{}()[\]^$.*+?|]/g, '\\$&')}`), at);
    at = watch.output.length;
    watch.type(`decline ${number} Not with a reason like that.`);
    await watch.expect(new RegExp(`${asked.request_id}: declined`), at);
    expect(await direct.get(victim)).toBe('keep me');
    expect(await watch.quit()).toBe(0);
  });

  it('never gives a number to another request: run N after the agent cancelled N and made a new one runs nothing', async () => {
    const t = await token({ set_string: 'approval_required' });
    const agent = await mcpClient('http', gw.url, t.secret);
    clients.push(agent);
    const watch = startWatch();
    await watch.expect(/Watching "main" for requests/);
    let mark = watch.output.length;
    const a = await callTool(agent, 'call_connector_action', { target_ref: redisTarget.ref, action_name: 'set_string', input: { key: `${prefix}a`, value: 'harmless' }, reason: 'A' });
    const numberA = Number((await watch.expect(new RegExp(`\\[(\\d+)\\] ${a.request_id}`), mark))[1]);

    // The agent swaps the request the operator is reading for another.
    mark = watch.output.length;
    expect(await callTool(agent, 'cancel_connector_action_request', { request_id: a.request_id })).toMatchObject({ status: 'canceled' });
    const b = await callTool(agent, 'call_connector_action', { target_ref: redisTarget.ref, action_name: 'set_string', input: { key: `${prefix}b`, value: 'swapped in' }, reason: 'A' });
    const numberB = Number((await watch.expect(new RegExp(`\\[(\\d+)\\] ${b.request_id}`), mark))[1]);
    expect(numberB).toBe(numberA + 1);
    expect(watch.output.slice(mark)).not.toMatch(new RegExp(`\\[${numberA}\\] `));

    let at = watch.output.length;
    watch.type(`run ${numberA} looks fine`);
    await watch.expect(new RegExp(`Request ${numberA} \\(${a.request_id}\\) is no longer pending: it is canceled \\(canceled by the agent\\)\\. Nothing was run\\.`), at);
    expect((await op.call<{ request: { status: string } }>('GET', op.db(`/requests/${b.request_id}`))).request.status).toBe('approval_pending');
    expect(await direct.exists(`${prefix}b`)).toBe(0);
    watch.type(`decline ${numberA}`);
    await watch.expect(new RegExp(`Request ${numberA} \\(${a.request_id}\\) is no longer pending: it is canceled.*Nothing was declined\\.`), at);

    // The request id keeps working, and B answers to its own number.
    at = watch.output.length;
    watch.type(`decline ${b.request_id}`);
    await watch.expect(new RegExp(`${b.request_id}: declined`), at);
    watch.type(`run ${numberB}`);
    await watch.expect(new RegExp(`Request ${numberB} \\(${b.request_id}\\) is no longer pending: it is declined`), at);
    expect(await direct.exists(`${prefix}b`)).toBe(0);
    expect(await watch.quit()).toBe(0);
    expect(watch.errors).toBe('');
  });

  it('cuts a line the terminal would wrap, so a padded reason cannot start a screen line with a forged input', async () => {
    const t = await token({ delete_keys: 'approval_required' });
    const agent = await mcpClient('http', gw.url, t.secret);
    clients.push(agent);
    // A 60-column terminal (a real pseudo-terminal): the agent pads its reason so that, wrapped, "    input:" would begin line two.
    const command = ['stty cols 60 rows 40;', ...[process.execPath, AIP, 'approvals', 'watch', '--url', gw.url].map((part) => `'${part}'`)].join(' ');
    const child = spawn('script', ['-qfec', command, '/dev/null'], { env: { PATH: process.env.PATH ?? '', HOME: dir, TERM: 'dumb' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const waitFor = async (pattern: RegExp, from = 0) => {
      const deadline = Date.now() + 10_000;
      while (!pattern.test(output.slice(from))) {
        if (Date.now() > deadline) throw new Error(`never saw ${pattern}; output:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    // The prompt names what the password authorizes.
    await waitFor(/Password for database "main" \(to run: aip approvals watch [^)]*\): /);
    child.stdin.write(`${PASSWORD}\r`);
    await waitFor(/Watching "main" for requests/);
    const mark = output.length;
    const reason = `x${' '.repeat(60 - '    reason: '.length - 1)}    input:  {"harmless":true}`;
    const asked = await callTool(agent, 'call_connector_action', { target_ref: redisTarget.ref, action_name: 'delete_keys', input: { keys: [`${prefix}padded`] }, reason });
    await waitFor(new RegExp(`\\] ${asked.request_id}`), mark);
    await waitFor(/run N \[note\] \| decline N/, mark);
    const drawn = output.slice(mark).split(/\r?\n/);
    for (const l of drawn) expect([...l].length, l).toBeLessThan(60);
    expect(drawn.some((l) => /^ {4}reason: x +… \(show \d+\)$/.test(l))).toBe(true);
    expect(drawn.filter((l) => l.includes('harmless'))).toEqual([]);
    const number = /\[(\d+)\] req_/.exec(output.slice(mark))![1];
    // show N prints it whole, each continuation behind a gutter that no field line starts with.
    const at = output.length;
    child.stdin.write(`show ${number}\r`);
    await waitFor(/harmless/, at);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const shown = output.slice(at).split(/\r?\n/);
    expect(shown.find((l) => l.includes('harmless'))).toMatch(/^ {3}┆ /);
    const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? -1)));
    child.stdin.write(`decline ${number}\r`);
    await waitFor(new RegExp(`${asked.request_id}: declined`), at);
    child.stdin.write('q\r');
    expect(await exited).toBe(0);
  });

  it('refuses a wrong password and says so', async () => {
    const result = await aip(['approvals', 'watch', '--url', gw.url, '--password-stdin'], { stdin: 'not-the-password\n' });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/password/i);
  });
});

describe('aip mcp init', () => {
  async function repo(name: string): Promise<string> {
    const path = join(dir, name);
    await mkdir(path, { recursive: true });
    execFileSync('git', ['init', '-q', path]);
    return path;
  }

  it('writes a Claude Code config that a real MCP client connects with, and never takes the token from argv', async () => {
    const t = await token({ get_key: 'always_run' });
    const project = await repo('claude');
    const written = await aip(['mcp', 'init', '--client', 'claude-code', '--url', gw.url, '--token-stdin'], { stdin: `${t.secret}\n`, cwd: project });
    expect(written.stderr).toBe('');
    expect(written.code).toBe(0);
    expect(written.stdout).toMatch(/Wrote the claude-code MCP configuration to .*\.mcp\.json/);
    expect(written.stdout).toMatch(/not ignored by git; add it to \.gitignore/);
    const file = join(project, '.mcp.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const config = JSON.parse(await readFile(file, 'utf8')) as { mcpServers: { aipermission: { type: string; url: string; headers: Record<string, string> } } };
    expect(config.mcpServers.aipermission).toEqual({ type: 'http', url: `${gw.url}/mcp`, headers: { Authorization: `Bearer ${t.secret}` } });

    // The written entry works as written.
    const client = new Client({ name: 'claude-code-config', version: '1' });
    clients.push(client);
    await client.connect(new StreamableHTTPClientTransport(new URL(config.mcpServers.aipermission.url), { requestInit: { headers: config.mcpServers.aipermission.headers } }));
    expect((await callTool(client, 'list_connector_targets')).targets).toHaveLength(1);

    const again = await aip(['mcp', 'init', '--client', 'claude-code', '--url', gw.url, '--token-stdin'], { stdin: `${t.secret}\n`, cwd: project });
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/already has an "aipermission" server; pass --force/);

    const argv = await aip(['mcp', 'init', '--client', 'claude-code', '--token', t.secret], { cwd: project });
    expect(argv.code).toBe(2);
    expect(argv.stderr).toMatch(/never taken from the command line/);
    expect(argv.stdout + argv.stderr).not.toContain(t.secret.slice(8));
  });

  it('keeps other servers, refuses a file git tracks unless --force, and --print writes nothing', async () => {
    const t = await token({ get_key: 'always_run' });
    const project = await repo('cursor');
    await mkdir(join(project, '.cursor'));
    await writeFile(join(project, '.cursor', 'mcp.json'), JSON.stringify({ mcpServers: { other: { command: 'other-server' } } }), { mode: 0o644 });
    execFileSync('git', ['-C', project, 'add', '.cursor/mcp.json']);

    const refused = await aip(['mcp', 'init', '--client', 'cursor', '--url', gw.url, '--token-stdin'], { stdin: `${t.secret}\n`, cwd: project });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/tracked by git: writing a token there would put it in the repository/);
    expect(JSON.parse(await readFile(join(project, '.cursor', 'mcp.json'), 'utf8'))).toEqual({ mcpServers: { other: { command: 'other-server' } } });

    const printed = await aip(['mcp', 'init', '--client', 'cursor', '--print', '--url', gw.url, '--token-stdin'], { stdin: `${t.secret}\n`, cwd: project });
    expect(printed.code).toBe(0);
    expect(JSON.parse(printed.stdout)).toEqual({ mcpServers: { aipermission: { url: `${gw.url}/mcp`, headers: { Authorization: `Bearer ${t.secret}` } } } });
    expect(await readFile(join(project, '.cursor', 'mcp.json'), 'utf8')).not.toContain('aipermission');

    const forced = await aip(['mcp', 'init', '--client', 'cursor', '--force', '--url', gw.url, '--token-stdin'], { stdin: `${t.secret}\n`, cwd: project });
    expect(forced.code).toBe(0);
    const merged = JSON.parse(await readFile(join(project, '.cursor', 'mcp.json'), 'utf8')) as { mcpServers: Record<string, unknown> };
    expect(Object.keys(merged.mcpServers)).toEqual(['other', 'aipermission']);
    // It was 0644 before; with a token in it, only its owner may read it.
    expect((await stat(join(project, '.cursor', 'mcp.json'))).mode & 0o777).toBe(0o600);
  });

  it('writes the VS Code, Gemini and Windsurf shapes', async () => {
    const t = await token({ get_key: 'always_run' });
    const project = await repo('editors');
    const home = join(dir, 'home-editors');
    await mkdir(home);
    for (const client of ['vscode', 'gemini', 'windsurf']) {
      const result = await aip(['mcp', 'init', '--client', client, '--url', gw.url, '--token-stdin'], { stdin: `${t.secret}\n`, cwd: project, env: { HOME: home } });
      expect(result.code, result.stderr).toBe(0);
    }
    const auth = { Authorization: `Bearer ${t.secret}` };
    expect(JSON.parse(await readFile(join(project, '.vscode', 'mcp.json'), 'utf8'))).toEqual({ servers: { aipermission: { type: 'http', url: `${gw.url}/mcp`, headers: auth } } });
    expect(JSON.parse(await readFile(join(project, '.gemini', 'settings.json'), 'utf8'))).toEqual({ mcpServers: { aipermission: { httpUrl: `${gw.url}/mcp`, headers: auth } } });
    expect(JSON.parse(await readFile(join(home, '.codeium', 'windsurf', 'mcp_config.json'), 'utf8'))).toEqual({ mcpServers: { aipermission: { serverUrl: `${gw.url}/mcp`, headers: auth } } });
  });

  it('gives Codex the stdio bridge in ~/.codex/config.toml, keeping the rest of the file, and the bridge it describes works', async () => {
    const t = await token({ get_key: 'always_run' });
    await direct.set(`${prefix}codex`, 'from-codex');
    const home = join(dir, 'home-codex');
    await mkdir(join(home, '.codex'), { recursive: true });
    const file = join(home, '.codex', 'config.toml');
    await writeFile(file, 'model = "o4"\n\n[mcp_servers.other]\ncommand = "x"\n');
    const result = await aip(['mcp', 'init', '--client', 'codex', '--url', gw.url, '--token-stdin'], { stdin: `${t.secret}\n`, env: { HOME: home }, cwd: dir });
    expect(result.code, result.stderr).toBe(0);
    const toml = await readFile(file, 'utf8');
    expect(toml).toMatch(/^model = "o4"\n/);
    expect(toml).toContain('[mcp_servers.other]\ncommand = "x"');
    const section = toml.slice(toml.indexOf('[mcp_servers.aipermission]'));
    const command = JSON.parse(/^command = (.*)$/m.exec(section)![1]!) as string;
    const args = JSON.parse(/^args = (.*)$/m.exec(section)![1]!) as string[];
    const env = Object.fromEntries([...section.matchAll(/(AIP_\w+) = ("(?:[^"\\]|\\.)*")/g)].map((m) => [m[1]!, JSON.parse(m[2]!) as string]));
    expect(env).toEqual({ AIP_URL: `${gw.url}/mcp`, AIP_TOKEN: t.secret });

    // Start the bridge exactly as Codex would from that section.
    const client = new Client({ name: 'codex-config', version: '1' });
    clients.push(client);
    await client.connect(new StdioClientTransport({ command, args, env: { ...env, PATH: process.env.PATH ?? '' }, stderr: 'pipe' }));
    const read = await callTool(client, 'call_connector_action', { target_ref: redisTarget.ref, action_name: 'get_key', input: { key: `${prefix}codex` } });
    expect(read).toMatchObject({ status: 'completed', output: { value: 'from-codex' } });

    // Running it again replaces only its own section.
    const again = await aip(['mcp', 'init', '--client', 'codex', '--force', '--url', gw.url, '--token-stdin'], { stdin: `${t.secret}\n`, env: { HOME: home }, cwd: dir });
    expect(again.code).toBe(0);
    const after = await readFile(file, 'utf8');
    expect(after.match(/\[mcp_servers\.aipermission\]/g)).toHaveLength(1);
    expect(after).toContain('[mcp_servers.other]');
  });

  it('prints both ways to connect for a custom client, and rejects what is not a token or a client', async () => {
    const t = await token({ get_key: 'always_run' });
    const custom = await aip(['mcp', 'init', '--client', 'custom', '--url', gw.url, '--token-stdin'], { stdin: `${t.secret}\n`, cwd: dir });
    expect(custom.code).toBe(0);
    expect(custom.stdout).toContain(`URL:     ${gw.url}/mcp`);
    expect(custom.stdout).toContain(`Authorization: Bearer ${t.secret}`);
    expect(custom.stdout).toMatch(/args: +\S+aip\.js mcp/);
    const notToken = await aip(['mcp', 'init', '--client', 'custom', '--token-stdin'], { stdin: 'hunter2\n', cwd: dir });
    expect(notToken.code).toBe(2);
    expect(notToken.stderr).toMatch(/not an MCP token/);
    const badClient = await aip(['mcp', 'init', '--client', 'emacs', '--token-stdin'], { stdin: `${t.secret}\n`, cwd: dir });
    expect(badClient.code).toBe(2);
    expect(badClient.stderr).toMatch(/--client must be one of claude-code, codex, cursor, vscode, windsurf, gemini, custom/);
  });

  /**
   * A repository an agent booby-trapped: every git setting that runs a
   * program (fsmonitor, hooks, pager), in the repository's config, in
   * ~/.gitconfig (both are the agent's to write) and in the caller's
   * environment, points at a script that leaves a marker.
   */
  async function trappedRepo(name: string) {
    const project = await repo(name);
    const marker = join(dir, `${name}-ran`);
    const trap = join(dir, `${name}-trap.sh`);
    await writeFile(trap, `#!/bin/sh\necho "$0 $*" >> '${marker}'\ncat > /dev/null 2>&1 || true\n`, { mode: 0o755 });
    const hooks = join(dir, `${name}-hooks`);
    await mkdir(hooks);
    for (const hook of ['post-index-change', 'reference-transaction', 'post-checkout', 'pre-commit']) await writeFile(join(hooks, hook), `#!/bin/sh\n'${trap}' hook\n`, { mode: 0o755 });
    for (const [key, value] of [['core.fsmonitor', trap], ['core.hooksPath', hooks], ['core.pager', trap], ['pager.ls-files', trap]]) {
      execFileSync('git', ['-C', project, 'config', key!, value!]);
    }
    const home = join(dir, `${name}-home`);
    await mkdir(home);
    await writeFile(join(home, '.gitconfig'), `[core]\n\tfsmonitor = ${trap}\n\tpager = ${trap}\n`);
    const env = { HOME: home, GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'core.fsmonitor', GIT_CONFIG_VALUE_0: trap, GIT_PAGER: trap, PAGER: trap };
    // The trap works: plain git in this repository runs it.
    spawnSync('git', ['-C', project, 'ls-files', '--error-unmatch', 'x'], { env: { ...process.env, ...env }, stdio: 'ignore' });
    expect(await readFile(marker, 'utf8')).toMatch(/trap/);
    await rm(marker);
    return { project, marker, env };
  }

  it('runs git with no program of the repository\'s or the user\'s config, and still tells tracked and ignored files apart', async () => {
    const t = await token({ get_key: 'always_run' });
    const { project, marker, env } = await trappedRepo('trapped');
    // Not ignored: written, with the note.
    const written = await aip(['mcp', 'init', '--client', 'cursor', '--url', gw.url, '--token-stdin'], { stdin: `${t.secret}\n`, cwd: project, env });
    expect(written.code, written.stderr).toBe(0);
    expect(written.stdout).toMatch(/not ignored by git; add it to \.gitignore/);
    // Ignored: written, no note.
    await writeFile(join(project, '.gitignore'), '.vscode/\n');
    const ignored = await aip(['mcp', 'init', '--client', 'vscode', '--url', gw.url, '--token-stdin'], { stdin: `${t.secret}\n`, cwd: project, env });
    expect(ignored.code, ignored.stderr).toBe(0);
    expect(ignored.stdout).not.toMatch(/not ignored/);
    // Tracked: refused.
    await mkdir(join(project, '.gemini'));
    await writeFile(join(project, '.gemini', 'settings.json'), '{}');
    execFileSync('git', ['-C', project, '-c', 'core.fsmonitor=false', '-c', 'core.hooksPath=/dev/null', 'add', '.gemini/settings.json']);
    const tracked = await aip(['mcp', 'init', '--client', 'gemini', '--url', gw.url, '--token-stdin'], { stdin: `${t.secret}\n`, cwd: project, env });
    expect(tracked.code).not.toBe(0);
    expect(tracked.stderr).toMatch(/tracked by git/);
    // None of it ran the trap.
    expect(await readFile(marker, 'utf8').catch(() => 'nothing ran')).toBe('nothing ran');
  });

  it('checks git before it reads the token: a tracked file is refused before any token is asked for', async () => {
    const project = await repo('order');
    await writeFile(join(project, '.mcp.json'), '{}');
    execFileSync('git', ['-C', project, 'add', '.mcp.json']);
    // No token on stdin at all: the refusal comes first, so no git ever runs while a token is in memory.
    const refused = await aip(['mcp', 'init', '--client', 'claude-code', '--url', gw.url, '--token-stdin'], { stdin: '', cwd: project });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/tracked by git/);
  });

  it('refuses to write when git cannot tell whether the file is tracked, and says why', async () => {
    const t = await token({ get_key: 'always_run' });
    const project = await repo('broken');
    // A repository git refuses to read (a format it does not know): tracked or not is unknown, so nothing is written.
    execFileSync('git', ['-C', project, 'config', 'core.repositoryformatversion', '99']);
    const refused = await aip(['mcp', 'init', '--client', 'cursor', '--url', gw.url, '--token-stdin'], { stdin: `${t.secret}\n`, cwd: project });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/git could not tell whether .*mcp\.json is tracked.*--print.*--force/s);
    await expect(stat(join(project, '.cursor', 'mcp.json'))).rejects.toThrow(/ENOENT/);
    const forced = await aip(['mcp', 'init', '--client', 'cursor', '--force', '--url', gw.url, '--token-stdin'], { stdin: `${t.secret}\n`, cwd: project });
    expect(forced.code, forced.stderr).toBe(0);
  });
});

describe('aip mcp: saying what is wrong with a token or a client name', () => {
  it('says a token missing a character is short, not that it should start with aip_', async () => {
    const t = await token({ get_key: 'always_run' });
    const cut = await aip(['mcp', 'init', '--client', 'custom', '--token-stdin'], { stdin: `${t.secret.slice(0, -1)}\n`, cwd: dir });
    expect(cut.code).toBe(2);
    expect(cut.stderr).toMatch(/That is not an MCP token: it is 1 character short \(46 characters; a token has 47\): was it cut off when copied\?/);
    expect(cut.stderr).not.toMatch(/it starts with aip_/);
    expect(cut.stderr).not.toContain(t.secret.slice(8, 30));
    const quoted = await aip(['mcp', 'init', '--client', 'custom', '--token-stdin'], { stdin: `'${t.secret}'\n`, cwd: dir });
    expect(quoted.stderr).toMatch(/it has 1 extra character before aip_ \(a quote or a space\?\)/);
    // The bridge says the same about AIP_TOKEN.
    const bridge = await aip(['mcp'], { env: { AIP_URL: gw.url, AIP_TOKEN: `${t.secret}x` } });
    expect(bridge.code).toBe(2);
    expect(bridge.stderr).toMatch(/Set AIP_TOKEN .*\(the value is not an MCP token: it is 1 character too long \(48 characters; a token has 47\)/);
  });

  it.each([
    ['claude', 'claude-code'],
    ['vs-code', 'vscode'],
    ['code', 'vscode'],
    ['Cursr', 'cursor'],
    ['claude_code', 'claude-code'],
  ])('suggests --client %s -> %s', async (typed, meant) => {
    const result = await aip(['mcp', 'init', '--client', typed, '--token-stdin'], { stdin: 'unused\n', cwd: dir });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`--client must be one of claude-code, codex, cursor, vscode, windsurf, gemini, custom. Did you mean --client ${meant}?`);
  });

  it('does not guess for a name that is nothing like a client', async () => {
    const result = await aip(['mcp', 'init', '--client', 'emacs', '--token-stdin'], { stdin: 'unused\n', cwd: dir });
    expect(result.stderr).not.toMatch(/Did you mean/);
  });
});

describe('aip mcp instructions and the bridge', () => {
  it('prints the operator guidance for agents', async () => {
    const result = await aip(['mcp', 'instructions']);
    expect(result.code).toBe(0);
    for (const step of [/list_connector_targets/, /get_connector_help/, /short, honest reason/, /poll get_connector_action_request/, /stale.*send a fresh request/s, /Never ask for passwords/]) {
      expect(result.stdout).toMatch(step);
    }
  });

  it('refuses a non-loopback URL before it sends the token anywhere', async () => {
    const t = await token({ get_key: 'always_run' });
    // A listener on a non-loopback address of this machine would see the token if the bridge sent it.
    const seen: string[] = [];
    const external = externalAddress();
    let server: Server | undefined;
    let url = 'http://192.0.2.1:3210';
    if (external) {
      server = createServer((req, res) => {
        seen.push(String(req.headers.authorization));
        res.end();
      });
      await new Promise<void>((resolve) => server!.listen(0, external, resolve));
      url = `http://${external}:${(server.address() as { port: number }).port}`;
    }
    try {
      const result = await aip(['mcp'], { env: { AIP_URL: url, AIP_TOKEN: t.secret }, stdin: '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}\n' });
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/Refusing to talk to .*loopback/);
      expect(seen).toEqual([]);
    } finally {
      server?.close();
    }
    const https = await aip(['mcp'], { env: { AIP_URL: 'https://127.0.0.1:3210', AIP_TOKEN: t.secret } });
    expect(https.code).toBe(2);
    const missing = await aip(['mcp'], { env: { AIP_URL: gw.url } });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/Set AIP_TOKEN/);
  });

  it('guards the bridge channel like every request: token, Host, no browsers, only /mcp', async () => {
    const t = await token({ get_key: 'always_run' });
    const host = new URL(gw.url).host;
    expect(await upgrade({ Host: host })).toMatchObject({ status: 401, message: expect.stringMatching(/needs an MCP token/) });
    expect(await upgrade({ Host: host, Authorization: 'Bearer aip_notarealtoken000000000000000000000000' })).toMatchObject({ status: 401 });
    expect(await upgrade({ Host: 'evil.example', Authorization: `Bearer ${t.secret}` })).toMatchObject({ status: 403, message: expect.stringMatching(/not this gateway/) });
    expect(await upgrade({ Host: host, Origin: 'https://evil.example', Authorization: `Bearer ${t.secret}` })).toMatchObject({ status: 403, message: expect.stringMatching(/Browsers may not/) });
    expect(await upgrade({ Host: host, Origin: gw.url, Authorization: `Bearer ${t.secret}` })).toMatchObject({ status: 403 });
    expect(await upgrade({ Host: host, Authorization: `Bearer ${t.secret}` }, '/api/databases')).toMatchObject({ status: 400 });
    const opened = await upgrade({ Host: host, Authorization: `Bearer ${t.secret}` });
    expect('socket' in opened).toBe(true);
    (opened as { socket: Duplex }).socket.destroy();
  });

  it('closes a bridge connection that sends a message over the size cap, and keeps serving others', async () => {
    const t = await token({ get_key: 'always_run' });
    const opened = await upgrade({ Host: new URL(gw.url).host, Authorization: `Bearer ${t.secret}` });
    const socket = (opened as { socket: Duplex }).socket;
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.on('error', () => undefined);
    const chunk = Buffer.alloc(1024 * 1024, 'a');
    for (let i = 0; i < 6 && !socket.destroyed; i += 1) socket.write(chunk);
    await closed;
    const client = await mcpClient('stdio', gw.url, t.secret);
    clients.push(client);
    expect((await callTool(client, 'list_connector_targets')).targets).toHaveLength(1);
  });

  it('ends the bridge when its database is locked, and the bridge says why', async () => {
    const t = await token({ get_key: 'always_run' });
    const child = spawn(process.execPath, [AIP, 'mcp'], { env: { AIP_URL: gw.url, AIP_TOKEN: t.secret, PATH: process.env.PATH ?? '' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } })}\n`);
    while (!stdout.includes('"id":1')) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(JSON.parse(stdout.trim().split('\n')[0]!)).toMatchObject({ id: 1, result: { serverInfo: { name: 'aipermission' } } });
    const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? -1)));
    await op.call('POST', op.db('/lock'));
    expect(await exited).toBe(0);
    expect(stderr).toMatch(/the gateway closed the connection/);
    await unlockAgain();
  });

  it('exits at once with code 0 when the client closes its stdin, and the gateway ends that session', async () => {
    const t = await token({ get_key: 'always_run' });
    const bridge = startBridge(t.secret);
    bridge.send({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
    expect(await bridge.next()).toMatchObject({ id: 1, result: { serverInfo: { name: 'aipermission' } } });
    const started = Date.now();
    bridge.child.stdin.end();
    // MCP clients wait 2 s for a stdio server to exit after closing its stdin, then kill it.
    expect(await bridge.exited(1500)).toBe(0);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(bridge.stderr).toBe('');
  });

  it('answers what was piped in before stdin closed, then exits', async () => {
    const t = await token({ get_key: 'always_run' });
    const bridge = startBridge(t.secret);
    bridge.send({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'pipe', version: '1' } } });
    bridge.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    bridge.send({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
    bridge.child.stdin.end();
    // The bound includes the bridge's own start-up (stdin ends before it is even connected).
    expect(await bridge.exited(10_000)).toBe(0);
    const answers = bridge.stdout.trim().split('\n').map((line) => JSON.parse(line) as { id: number });
    expect(answers.map((answer) => answer.id)).toEqual([1, 2]);
  });

  it('never keeps a closed bridge: 32 bridges that came and went do not evict a live one', async () => {
    const t = await token({ get_key: 'always_run' });
    const live = await mcpClient('stdio', gw.url, t.secret);
    clients.push(live);
    const host = new URL(gw.url).host;
    for (let i = 0; i < 32; i += 1) {
      // What a bridge does when its client goes: half-close the connection.
      const { socket } = (await upgrade({ Host: host, Authorization: `Bearer ${t.secret}` })) as { socket: Duplex };
      socket.on('error', () => undefined);
      const closed = new Promise<boolean>((resolve) => {
        socket.once('close', () => resolve(true));
        setTimeout(() => resolve(false), 1000);
      });
      socket.resume();
      socket.end(`${JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' })}\n`);
      // Left half-open it would sit in CLOSE-WAIT on the gateway, holding one of the token's 32 sessions.
      expect(await closed, `the gateway kept half-closed bridge connection ${i + 1} open`).toBe(true);
    }
    expect((await callTool(live, 'list_connector_targets')).targets).toHaveLength(1);
  });

  it('relays a gateway that is not there as a clear error to the client', async () => {
    const t = await token({ get_key: 'always_run' });
    const transport = new StdioClientTransport({ command: process.execPath, args: [AIP, 'mcp'], env: { AIP_URL: 'http://127.0.0.1:9', AIP_TOKEN: t.secret, PATH: process.env.PATH ?? '' }, stderr: 'pipe' });
    const client = new Client({ name: 'no-gateway', version: '1' });
    await expect(client.connect(transport)).rejects.toThrow(/No AIPermission gateway answers at http:\/\/127\.0\.0\.1:9\. Ask your operator to start it/);
    await client.close().catch(() => undefined);
  });
});

/** `aip mcp` as a live process speaking raw lines: what it printed, and a way to send and to wait for the next answer. */
function startBridge(secret: string) {
  const child = spawn(process.execPath, [AIP, 'mcp'], { env: { AIP_URL: gw.url, AIP_TOKEN: secret, PATH: process.env.PATH ?? '' }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let read = 0;
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? -1)));
  return {
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    send(message: unknown) {
      child.stdin.write(`${typeof message === 'string' ? message : JSON.stringify(message)}\n`);
    },
    /** The next line the bridge prints, parsed. */
    async next(timeoutMs = 10_000): Promise<Record<string, unknown>> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const newline = stdout.indexOf('\n', read);
        if (newline >= 0) {
          const line = stdout.slice(read, newline);
          read = newline + 1;
          return JSON.parse(line) as Record<string, unknown>;
        }
        if (Date.now() > deadline) throw new Error(`the bridge printed nothing more; stderr: ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    /** The exit code, or a failure after `timeoutMs` (the bridge is then killed). */
    async exited(timeoutMs: number): Promise<number> {
      const timer = new Promise<number>((resolve) => setTimeout(() => resolve(-999), timeoutMs));
      const code = await Promise.race([exit, timer]);
      if (code === -999) {
        child.kill('SIGKILL');
        throw new Error(`the bridge did not exit within ${timeoutMs} ms`);
      }
      return code;
    },
  };
}

/** A non-loopback IPv4 address of this machine, if it has one. */
/** Opens the bridge channel by hand: the 101 socket, or the refusal's status and JSON-RPC error message. */
function upgrade(headers: Record<string, string>, path = '/mcp'): Promise<{ socket: Duplex } | { status: number; message: string }> {
  const url = new URL(gw.url);
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: url.hostname, port: url.port, path, headers: { Connection: 'Upgrade', Upgrade: 'aip-mcp-stdio', ...headers } });
    request.on('upgrade', (_response, socket) => resolve({ socket }));
    request.on('response', (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, message: (JSON.parse(body) as { error: { message: string } }).error.message }));
    });
    request.on('error', reject);
    request.end();
  });
}

function externalAddress(): string | undefined {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) if (address.family === 'IPv4' && !address.internal) return address.address;
  }
  return undefined;
}
