import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { request as httpRequest } from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import { CallToolResultSchema, ListToolsResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { aip } from './helpers/cli.js';
import { callTool, mcpClient, operator, rawSession, startGatewayProcess, type RunningGateway, type TransportKind } from './helpers/mcp.js';
import { FIXTURES } from './helpers/plugins.js';
import { tempDir, PASSWORD } from './helpers/temp.js';

let dir: string;
let cleanup: () => Promise<void>;
let gw: RunningGateway;
let op: Awaited<ReturnType<typeof operator>>;
let redisTarget: { id: string; profileId: string; ref: string };
let otherTarget: { id: string; profileId: string; ref: string };
const direct = new Redis({ host: '127.0.0.1', port: 6379 });
const basePrefix = `aip:mcp:${process.pid}:`;
const clients: Client[] = [];

async function target(name: string, config: Record<string, unknown> = { host: '127.0.0.1', port: 6379 }, kind = 'redis') {
  const { target: t } = await op.call<{ target: { id: string } }>('POST', op.db('/targets'), { kind, name, config });
  const { profile } = await op.call<{ profile: { id: string } }>('POST', op.db(`/targets/${t.id}/profiles`), {
    label: 'default',
    ...(kind === 'redis' ? { credentialKind: 'none' } : { secret: { password: 'Echo-Secret-1' } }),
  });
  return { id: t.id, profileId: profile.id, ref: `${kind}:${t.id}:${profile.id}` };
}

/** A token with grants: action -> rule on the given target. */
async function token(grants: Record<string, 'always_run' | 'approval_required' | 'blocked'>, on = redisTarget, options: { expiresIn?: string } = {}) {
  const created = await op.call<{ token: { id: string }; secret: string }>('POST', op.db('/tokens'), { name: `agent-${Math.random().toString(36).slice(2, 8)}`, ...options });
  for (const [action, rule] of Object.entries(grants)) {
    await op.call('PUT', op.db('/grants'), { tokenId: created.token.id, targetId: on.id, profileId: on.profileId, action, rule });
  }
  return { id: created.token.id, secret: created.secret };
}

async function connect(kind: TransportKind, secret: string): Promise<Client> {
  const client = await mcpClient(kind, gw.url, secret);
  clients.push(client);
  return client;
}

async function pendingInGateway(requestId: string) {
  return (await op.call<{ request: { status: string; statusReason: string | null } }>('GET', op.db(`/requests/${requestId}`))).request;
}

async function installEcho(version: string) {
  const pkg = join(dir, `echo-${version}`);
  await cp(join(FIXTURES, 'echo'), pkg, { recursive: true, filter: (p) => !p.endsWith('.ts') });
  if (version !== '1.0.0') {
    for (const file of ['dist/plugin.mjs', 'dist/manifest.json', 'package.json']) {
      const path = join(pkg, file);
      await writeFile(path, (await readFile(path, 'utf8')).replace(/(version["']?: ?")1\.0\.0"/, `$1${version}"`));
    }
  }
  const inspected = await op.call<{ inspection: string; integrity: string }>('POST', op.db('/plugins/inspect'), { source: pkg });
  await op.call('POST', op.db('/plugins'), { inspection: inspected.inspection, integrity: inspected.integrity });
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('aip-mcp-'));
  const created = await aip(['db', 'create', 'main', '--data-dir', join(dir, 'data'), '--password-stdin'], { stdin: `${PASSWORD}\n` });
  expect(created.code).toBe(0);
  gw = await startGatewayProcess(join(dir, 'data'));
  await aip(['unlock', '--url', gw.url, '--password-stdin'], { stdin: `${PASSWORD}\n` });
  op = await operator(gw.url);
  await op.call('PUT', op.db('/mcp'), { running: true });
  redisTarget = await target('cache');
  otherTarget = await target('other-cache');
  await direct.set(`${basePrefix}hello`, 'world');
  // The echo fixture plugin (progress, upgrades), installed as an operator would.
  await installEcho('1.0.0');
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
  await gw?.stop();
  const keys = await direct.keys(`${basePrefix}*`);
  if (keys.length) await direct.del(...keys);
  direct.disconnect();
  await cleanup();
});

describe.each(['http', 'stdio'] as const)('MCP over %s', (kind) => {
  /** Keys per transport: both runs share one Redis. */
  const prefix = `${basePrefix}${kind}:`;
  it('lists the seven tools with annotations that reflect what they do', async () => {
    const t = await token({ get_key: 'always_run' });
    const client = await connect(kind, t.secret);
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name)).toEqual([
      'list_connector_targets',
      'get_connector_help',
      'get_connector_actions',
      'call_connector_action',
      'get_connector_action_request',
      'cancel_connector_action_request',
      'send_operator_message',
    ]);
    const byName = Object.fromEntries(tools.map((tool) => [tool.name, tool.annotations]));
    expect(byName.list_connector_targets).toMatchObject({ readOnlyHint: true });
    expect(byName.call_connector_action).toMatchObject({ destructiveHint: true, readOnlyHint: false });
    expect(client.getInstructions()).toMatch(/list_connector_targets/);
  });

  it('scopes discovery to the token', async () => {
    const t = await token({ get_key: 'always_run', set_string: 'approval_required', delete_keys: 'blocked' });
    const client = await connect(kind, t.secret);
    const listed = await callTool(client, 'list_connector_targets');
    expect(listed.targets).toHaveLength(1);
    expect(listed.targets[0]).toMatchObject({ target_ref: redisTarget.ref, kind: 'redis', name: 'cache', profile: 'default' });
    expect(listed.targets[0].actions).toEqual([
      { name: 'get_key', risk: 'read', rule: 'always_run' },
      { name: 'set_string', risk: 'write', rule: 'approval_required' },
    ]);
    const actions = await callTool(client, 'get_connector_actions', { target_ref: redisTarget.ref });
    expect(actions.actions.map((a: { name: string }) => a.name)).toEqual(['get_key', 'set_string']);
    expect(actions.actions[0]).toMatchObject({ risk: 'read', annotations: { readOnlyHint: true, destructiveHint: false }, limits: { max_output_bytes: 786432 } });
    expect(actions.actions[0].input_schema.required).toEqual(['key']);
    const help = await callTool(client, 'get_connector_help', { target_ref: redisTarget.ref });
    expect(help.summary).toMatch(/Redis/);
    const hidden = await callTool(client, 'get_connector_actions', { target_ref: otherTarget.ref });
    expect(hidden).toMatchObject({ isError: true, error: { code: 'unknown_target' } });
  });

  it('always_run: runs at once, audited before and after', async () => {
    const t = await token({ get_key: 'always_run' });
    const client = await connect(kind, t.secret);
    const result = await callTool(client, 'call_connector_action', { target_ref: redisTarget.ref, action_name: 'get_key', input: { key: `${basePrefix}hello` }, reason: 'read the greeting' });
    expect(result).toMatchObject({ status: 'completed', isError: false, output: { type: 'string', value: 'world' } });
    expect(result.text).toMatch(/get_key completed/);
    const audit = await op.call<{ entries: Array<{ event: string; actor: string }> }>('GET', op.db(`/audit?subject=${result.request_id}`));
    expect(audit.entries.map((e) => e.event).reverse()).toEqual(['action.started', 'action.completed']);
    // The audit names the token that acted (not redacted), and can be searched by it.
    expect(audit.entries.map((e) => e.actor)).toEqual([`token:${t.id}`, `token:${t.id}`]);
    const mine = await op.call<{ entries: Array<{ subject: Record<string, string> }> }>('GET', op.db(`/audit?actor=${encodeURIComponent(`token:${t.id}`)}`));
    expect(mine.entries.filter((e) => e.subject.requestId === result.request_id)).toHaveLength(2);
  });

  it('sends a large result once: a 512 KiB read is one message of about its size, with a preview in the text', async () => {
    const t = await token({ get_key: 'always_run' });
    const value = 'v'.repeat(512 * 1024);
    await direct.set(`${prefix}big`, value);
    if (kind !== 'http') {
      // Over stdio the same result crosses the bridge unchanged; the size is measured on HTTP.
      const client = await connect(kind, t.secret);
      const result = await callTool(client, 'call_connector_action', { target_ref: redisTarget.ref, action_name: 'get_key', input: { key: `${prefix}big`, max_bytes: 512 * 1024 } });
      expect(result.output.value).toBe(value);
      expect(result.text.length).toBeLessThan(16 * 1024);
      return;
    }
    // The SDK's own client, with a fetch that counts the bytes each answer has.
    const received: number[] = [];
    const counting: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      const body = await response.clone().arrayBuffer();
      received.push(body.byteLength);
      return response;
    };
    const client = new Client({ name: 'size-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${t.secret}` } }, fetch: counting }));
    clients.push(client);
    received.length = 0;
    const result = await client.callTool({ name: 'call_connector_action', arguments: { target_ref: redisTarget.ref, action_name: 'get_key', input: { key: `${prefix}big`, max_bytes: 512 * 1024 } } });
    expect((result.structuredContent as { output: { value: string } }).output.value).toBe(value);
    const text = (result.content as Array<{ type: string; text: string }>)[0]!.text;
    expect(text).toMatch(/get_key completed/);
    expect(text).toMatch(/structuredContent/);
    expect(text).toContain('v'.repeat(1000));
    expect(text.length).toBeLessThan(16 * 1024);
    const largest = Math.max(...received);
    expect(largest).toBeGreaterThan(value.length);
    expect(largest).toBeLessThan(value.length * 1.1);
    // A small result still carries its whole JSON in the text, for text-only clients.
    const small = await callTool(client, 'call_connector_action', { target_ref: redisTarget.ref, action_name: 'get_key', input: { key: `${basePrefix}hello` } });
    expect(small.text).toContain('"value": "world"');
  });

  it('approval_pending -> run -> completed, with polling hints', async () => {
    const t = await token({ set_string: 'approval_required' });
    const client = await connect(kind, t.secret);
    const pending = await callTool(client, 'call_connector_action', { target_ref: redisTarget.ref, action_name: 'set_string', input: { key: `${prefix}approved`, value: 'yes' }, reason: 'test' });
    expect(pending).toMatchObject({ status: 'approval_pending', retry_after_seconds: 10, assistant_hint: expect.stringMatching(/get_connector_action_request/) });
    expect(await direct.exists(`${prefix}approved`)).toBe(0);
    await op.call('POST', op.db(`/requests/${pending.request_id}/run`), {});
    const done = await callTool(client, 'get_connector_action_request', { request_id: pending.request_id });
    expect(done).toMatchObject({ status: 'completed', output: { written: true } });
    expect(done.retry_after_seconds).toBeUndefined();
    expect(await direct.get(`${prefix}approved`)).toBe('yes');
  });

  it('decline with a note that reaches the agent, once', async () => {
    const t = await token({ set_string: 'approval_required', get_key: 'always_run' });
    const client = await connect(kind, t.secret);
    const pending = await callTool(client, 'call_connector_action', { target_ref: redisTarget.ref, action_name: 'set_string', input: { key: `${prefix}declined`, value: 'no' } });
    await op.call('POST', op.db(`/requests/${pending.request_id}/decline`), { note: 'Not on the cache used by production, please.' });
    const declined = await callTool(client, 'get_connector_action_request', { request_id: pending.request_id });
    expect(declined).toMatchObject({ status: 'declined', operator_note: 'Not on the cache used by production, please.' });
    expect(declined.operator_messages).toEqual([expect.objectContaining({ text: 'Not on the cache used by production, please.', request_id: pending.request_id })]);
    expect(declined.text).toMatch(/Message from your operator:\n- Not on the cache/);
    const next = await callTool(client, 'list_connector_targets');
    expect(next.operator_messages).toBeUndefined();
  });

  it('delivers a note the operator sends at any time, and takes the agent\'s notes', async () => {
    const t = await token({ get_key: 'always_run' });
    const client = await connect(kind, t.secret);
    await op.call('POST', op.db('/messages'), { tokenId: t.id, text: 'Please use the staging cache from now on. token=abc123def' });
    const any = await callTool(client, 'list_connector_targets');
    expect(any.operator_messages[0].text).toBe('Please use the staging cache from now on. token=[REDACTED]');
    const sent = await callTool(client, 'send_operator_message', { text: 'I need set_string on cache to fix the session flag.' });
    expect(sent).toMatchObject({ delivered_to: 'operator' });
    const inbox = await op.call<{ messages: Array<{ body: string; tokenId: string }> }>('GET', op.db('/messages?direction=to_operator'));
    expect(inbox.messages[0]).toMatchObject({ body: 'I need set_string on cache to fix the session flag.', tokenId: t.id });
    const tooLong = await callTool(client, 'send_operator_message', { text: 'x'.repeat(5000) });
    expect(tooLong.isError).toBe(true);
  });

  it('stale after a grant change: send a fresh request', async () => {
    const t = await token({ set_string: 'approval_required' });
    const client = await connect(kind, t.secret);
    const pending = await callTool(client, 'call_connector_action', { target_ref: redisTarget.ref, action_name: 'set_string', input: { key: `${prefix}stale`, value: '1' } });
    await op.call('PUT', op.db('/grants'), { tokenId: t.id, targetId: redisTarget.id, profileId: redisTarget.profileId, action: 'set_string', rule: 'always_run' });
    const stale = await callTool(client, 'get_connector_action_request', { request_id: pending.request_id });
    expect(stale).toMatchObject({ status: 'stale', status_reason: expect.stringMatching(/the grant changed/), assistant_hint: expect.stringMatching(/Send a fresh request/) });
    expect(await direct.exists(`${prefix}stale`)).toBe(0);
  });

  it('expired: a pending request nobody approves in time', async () => {
    const t = await token({ set_string: 'approval_required' });
    const client = await connect(kind, t.secret);
    const pending = await callTool(client, 'call_connector_action', { target_ref: redisTarget.ref, action_name: 'set_string', input: { key: `${prefix}expired`, value: '1' } });
    await gw.advance(16 * 60_000);
    const expired = await callTool(client, 'get_connector_action_request', { request_id: pending.request_id });
    expect(expired).toMatchObject({ status: 'expired', assistant_hint: expect.stringMatching(/fresh request/) });
  });

  it('blocked, and no grant, give the same refusal without schema detail', async () => {
    const t = await token({ get_key: 'always_run', delete_keys: 'blocked' });
    const client = await connect(kind, t.secret);
    const blocked = await callTool(client, 'call_connector_action', { target_ref: redisTarget.ref, action_name: 'delete_keys', input: { keys: [`${basePrefix}hello`] } });
    const noGrant = await callTool(client, 'call_connector_action', { target_ref: redisTarget.ref, action_name: 'set_string', input: { wrong: 'shape' } });
    expect(blocked).toMatchObject({ status: 'blocked', assistant_hint: expect.stringMatching(/Ask your operator/) });
    expect(noGrant.message).toBe(blocked.message);
    expect(noGrant.text).not.toMatch(/value|required|wrong/);
    expect(await direct.get(`${basePrefix}hello`)).toBe('world');
  });

  it('stopped while the switch is off; discovery still works', async () => {
    const t = await token({ get_key: 'always_run' });
    const client = await connect(kind, t.secret);
    await op.call('PUT', op.db('/mcp'), { running: false });
    try {
      const stopped = await callTool(client, 'call_connector_action', { target_ref: redisTarget.ref, action_name: 'get_key', input: { key: `${basePrefix}hello` } });
      expect(stopped).toMatchObject({ status: 'stopped', assistant_hint: expect.stringMatching(/Ask your operator/) });
      expect((await callTool(client, 'list_connector_targets')).targets).toHaveLength(1);
    } finally {
      await op.call('PUT', op.db('/mcp'), { running: true });
    }
  });

  it('idempotency: the same key replays, a different request with it is a conflict', async () => {
    const t = await token({ set_string: 'approval_required' });
    const client = await connect(kind, t.secret);
    const args = { target_ref: redisTarget.ref, action_name: 'set_string', input: { key: `${prefix}idem`, value: '1' }, idempotency_key: `deploy-${kind}` };
    const first = await callTool(client, 'call_connector_action', args);
    const again = await callTool(client, 'call_connector_action', args);
    expect(again).toMatchObject({ request_id: first.request_id, replayed: true, status: 'approval_pending' });
    const conflict = await callTool(client, 'call_connector_action', { ...args, input: { key: `${prefix}idem`, value: '2' } });
    expect(conflict).toMatchObject({ isError: true, error: { code: 'idempotency_conflict' } });
  });

  it("the agent cancels its own pending request, and only its own", async () => {
    const t = await token({ set_string: 'approval_required' });
    const other = await token({ set_string: 'approval_required' });
    const client = await connect(kind, t.secret);
    const otherClient = await connect(kind, other.secret);
    const pending = await callTool(client, 'call_connector_action', { target_ref: redisTarget.ref, action_name: 'set_string', input: { key: `${prefix}cancel`, value: '1' } });
    const notYours = await callTool(otherClient, 'cancel_connector_action_request', { request_id: pending.request_id });
    expect(notYours).toMatchObject({ isError: true, error: { code: 'not_found' } });
    const canceled = await callTool(client, 'cancel_connector_action_request', { request_id: pending.request_id });
    expect(canceled).toMatchObject({ status: 'canceled' });
    expect((await pendingInGateway(pending.request_id)).status).toBe('canceled');
    // Idempotent, as its annotation says: cancelling again answers the same, and audits nothing new.
    const audited = async () => (await op.call<{ entries: Array<{ subject: Record<string, string> }> }>('GET', op.db('/audit?event=action.canceled&limit=500'))).entries.filter((e) => e.subject.requestId === pending.request_id).length;
    expect(await audited()).toBe(1);
    expect(await callTool(client, 'cancel_connector_action_request', { request_id: pending.request_id })).toMatchObject({ status: 'canceled' });
    expect(await audited()).toBe(1);
    const lookAtOthers = await callTool(otherClient, 'get_connector_action_request', { request_id: pending.request_id });
    expect(lookAtOthers).toMatchObject({ isError: true, error: { code: 'not_found' } });
  });

  it('refuses a bad token, and stops answering an expired or revoked one', async () => {
    await expect(connect(kind, `aip_${'x'.repeat(43)}`)).rejects.toThrow(/not valid|unknown/i);
    const expiring = await token({ get_key: 'always_run' }, redisTarget, { expiresIn: '1m' });
    const expiringClient = await connect(kind, expiring.secret);
    expect((await callTool(expiringClient, 'list_connector_targets')).targets).toHaveLength(1);
    await gw.advance(2 * 60_000);
    await expect(callTool(expiringClient, 'list_connector_targets')).rejects.toThrow(/expired/);
    const revoked = await token({ get_key: 'always_run' });
    const revokedClient = await connect(kind, revoked.secret);
    await op.call('POST', op.db(`/tokens/${revoked.id}/revoke`));
    await expect(callTool(revokedClient, 'list_connector_targets')).rejects.toThrow(/revoked/);
  });

  it('oversize input, schema-invalid input and an unknown target: clear errors, nothing run, every attempt audited', async () => {
    const t = await token({ set_string: 'always_run' });
    const client = await connect(kind, t.secret);
    const before = (await op.call<{ entries: unknown[] }>('GET', op.db(`/audit?event=action.rejected&limit=500`))).entries.length;
    const huge = await callTool(client, 'call_connector_action', { target_ref: redisTarget.ref, action_name: 'set_string', input: { key: `${prefix}huge`, value: 'v'.repeat(1_100_000) } });
    expect(huge).toMatchObject({ isError: true, error: { code: 'invalid_input', message: expect.stringMatching(/1048576 bytes/) } });
    const invalid = await callTool(client, 'call_connector_action', { target_ref: redisTarget.ref, action_name: 'set_string', input: { key: `${prefix}bad`, value: 42 } });
    expect(invalid).toMatchObject({ isError: true, error: { code: 'invalid_input', message: expect.stringMatching(/input\.value: must be string/) } });
    const unknown = await callTool(client, 'call_connector_action', { target_ref: `redis:tgt_0000000000000000:prf_0000000000000000`, action_name: 'set_string', input: {} });
    expect(unknown).toMatchObject({ isError: true, error: { code: 'unknown_target' } });
    // The tool's own arguments malformed (no action_name, input not an object): refused and audited too.
    const malformed = await callTool(client, 'call_connector_action', { target_ref: redisTarget.ref, input: 'SET x y' });
    expect(malformed).toMatchObject({ isError: true, error: { code: 'invalid_input', message: expect.stringMatching(/^Invalid arguments for call_connector_action: .*the arguments object is missing the field "action_name"/) } });
    expect(await direct.exists(`${prefix}huge`, `${prefix}bad`)).toBe(0);
    const after = (await op.call<{ entries: unknown[] }>('GET', op.db(`/audit?event=action.rejected&limit=500`))).entries.length;
    expect(after - before).toBe(4);
  });

  it('answers text that is not JSON with -32700 and id null, and JSON that is not JSON-RPC with -32600 and its id', async () => {
    const t = await token({ get_key: 'always_run' });
    const raw = await rawSession(kind, gw.url, t.secret);
    try {
      const error = (code: number, id: string | number | null, message: RegExp) => ({ jsonrpc: '2.0', id, error: { code, message: expect.stringMatching(message) } });
      expect((await raw.exchange('{"jsonrpc":"2.0","id":1,"method":')).answers).toEqual([error(-32700, null, /^Parse error/)]);
      expect((await raw.exchange('{"jsonrpc":"2.0","id":7}')).answers).toEqual([error(-32600, 7, /^Invalid Request: .*no "method"/)]);
      expect((await raw.exchange('{"jsonrpc":"2.0","id":"x8","method":42}')).answers).toEqual([error(-32600, 'x8', /"method" member must be a string/)]);
      expect((await raw.exchange('{"jsonrpc":"1.0","id":9,"method":"ping"}')).answers).toEqual([error(-32600, 9, /"jsonrpc" member must be the string "2\.0"/)]);
      expect((await raw.exchange('{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}')).answers).toEqual([error(-32600, null, /"id" member must be a string or an integer/)]);
      expect((await raw.exchange('{"jsonrpc":"2.0","id":10,"method":"ping","params":"x"}')).answers).toEqual([error(-32600, 10, /"params" member must be an object/)]);
      expect((await raw.exchange('"hello"')).answers).toEqual([error(-32600, null, /a JSON-RPC message is a JSON object/)]);
      // A valid notification gets no answer, even one this server does not know.
      expect((await raw.exchange('{"jsonrpc":"2.0","method":"notifications/whatever"}')).answers).toEqual([]);
      // An unknown method still gets the SDK's -32601, and the session goes on.
      expect((await raw.exchange('{"jsonrpc":"2.0","id":11,"method":"no/such"}')).answers).toEqual([error(-32601, 11, /not found/i)]);
      expect((await raw.exchange('{"jsonrpc":"2.0","id":12,"method":"ping"}')).answers).toEqual([{ jsonrpc: '2.0', id: 12, result: {} }]);
    } finally {
      await raw.close();
    }
  });

  it('answers bad tools/call params with -32602 and a sentence, never an internal error with a schema dump', async () => {
    const t = await token({ get_key: 'always_run' });
    const client = await connect(kind, t.secret);
    const call = (params: unknown) => client.request({ method: 'tools/call', params } as never, CallToolResultSchema);
    const invalid = (message: RegExp) => ({ code: -32602, message: expect.stringMatching(message) });
    await expect(call({ arguments: {} })).rejects.toMatchObject(invalid(/Invalid params for tools\/call: params\.name is missing; it names the tool to call/));
    await expect(call({ name: 42 })).rejects.toMatchObject(invalid(/params\.name must be a string, the name of the tool to call \(it is a number\)/));
    await expect(call({ name: 'list_connector_targets', arguments: 'SET x y' })).rejects.toMatchObject(invalid(/params\.arguments must be an object of the tool's arguments, or left out \(it is a string\)/));
    await expect(call({ name: 'list_connector_targets', arguments: [1] })).rejects.toMatchObject(invalid(/it is an array/));
    await expect(call({ name: 'list_connector_targets', _meta: { progressToken: { x: 1 } } })).rejects.toMatchObject(invalid(/progressToken must be a string or an integer/));
    for (const params of [{ arguments: {} }, { name: 42 }]) {
      const error = (await call(params).catch((e: unknown) => e)) as Error;
      expect(error.message).not.toMatch(/invalid_type|"expected"|"path"/);
    }
    // The well-formed call still works on the same session.
    expect((await callTool(client, 'list_connector_targets')).targets).toHaveLength(1);
  });

  it('refuses a tools/list cursor with -32602: the server lists every tool at once and never hands one out', async () => {
    const t = await token({ get_key: 'always_run' });
    const client = await connect(kind, t.secret);
    await expect(client.request({ method: 'tools/list', params: { cursor: 'page-2' } }, ListToolsResultSchema)).rejects.toMatchObject({
      code: -32602,
      message: expect.stringMatching(/invalid cursor: this server lists every tool in one page and never hands out a cursor/),
    });
    const { tools, nextCursor } = await client.listTools();
    expect(tools).toHaveLength(7);
    expect(nextCursor).toBeUndefined();
  });

  it('serves several clients with their own tokens at once', async () => {
    const tokens = await Promise.all(Array.from({ length: 5 }, () => token({ get_key: 'always_run' })));
    for (let i = 0; i < tokens.length; i += 1) await direct.set(`${prefix}c${i}`, `value-${i}`);
    const connected = await Promise.all(tokens.map((t) => connect(kind, t.secret)));
    const results = await Promise.all(
      connected.flatMap((client, i) =>
        Array.from({ length: 10 }, () => callTool(client, 'call_connector_action', { target_ref: redisTarget.ref, action_name: 'get_key', input: { key: `${prefix}c${i}` } }).then((r) => [i, r] as const)),
      ),
    );
    for (const [i, result] of results) expect(result).toMatchObject({ status: 'completed', output: { value: `value-${i}` } });
  });
});

describe('MCP: the boundary', () => {
  it('refuses a foreign Origin with 403', async () => {
    const t = await token({ get_key: 'always_run' });
    const response = await fetch(`${gw.url}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.secret}`, origin: 'https://evil.example', 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }),
    });
    expect(response.status).toBe(403);
  });

  it('keeps a session to the token that opened it: another valid token on it is 403', async () => {
    const owner = await token({ get_key: 'always_run' });
    const intruder = await token({ get_key: 'always_run' });
    const headers = (secret: string) => ({ authorization: `Bearer ${secret}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' });
    const init = await fetch(`${gw.url}/mcp`, {
      method: 'POST',
      headers: headers(owner.secret),
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }),
    });
    const session = init.headers.get('mcp-session-id')!;
    await init.body?.cancel();
    expect(session).toBeTruthy();
    const list = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
    const stolen = await fetch(`${gw.url}/mcp`, { method: 'POST', headers: { ...headers(intruder.secret), 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' }, body: list });
    expect(stolen.status).toBe(403);
    expect(((await stolen.json()) as { error: { message: string } }).error.message).toMatch(/belongs to another token/);
    const own = await fetch(`${gw.url}/mcp`, { method: 'POST', headers: { ...headers(owner.secret), 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' }, body: list });
    expect(own.status).toBe(200);
    await own.body?.cancel();
  });

  it('never accepts the operator session on /mcp, nor an MCP token on the REST API', async () => {
    const t = await token({ get_key: 'always_run' });
    const cookie = await fetch(`${gw.url}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json', cookie: 'aip_session=anything' }, body: '{}' });
    expect(cookie.status).toBe(401);
    const rest = await fetch(`${gw.url}/api/databases/main/targets`, { headers: { authorization: `Bearer ${t.secret}` } });
    expect(rest.status).toBe(401);
  });

  it('sends connector progress as MCP progress notifications when asked, over both transports', async () => {
    const echo = await target('echo-progress', { host: '127.0.0.1' }, 'echo-fixture');
    const t = await token({ progress: 'always_run' }, echo);
    for (const kind of ['http', 'stdio'] as const) {
      const client = await connect(kind, t.secret);
      const seen: Array<{ progress: number; total?: number; message?: string }> = [];
      const result = await client.callTool({ name: 'call_connector_action', arguments: { target_ref: echo.ref, action_name: 'progress', input: { steps: 3 } } }, undefined, {
        onprogress: (p) => seen.push(p),
      });
      expect((result.structuredContent as { status: string }).status).toBe('completed');
      expect(seen.map((p) => p.message)).toEqual(['step 1', 'step 2', 'step 3']);
      expect(seen.map((p) => p.progress)).toEqual([1, 2, 3]);
    }
  });

  it('stale after a plugin upgrade, for an agent waiting on approval, over both transports', async () => {
    const echo = await target('echo-upgrade', { host: '127.0.0.1' }, 'echo-fixture');
    const t = await token({ echo: 'approval_required' }, echo);
    for (const [kind, from, to] of [['http', '1.0.0', '1.1.0'], ['stdio', '1.1.0', '1.2.0']] as const) {
      const client = await connect(kind, t.secret);
      const pending = await callTool(client, 'call_connector_action', { target_ref: echo.ref, action_name: 'echo', input: { text: 'hi' } });
      expect(pending.status).toBe('approval_pending');
      await installEcho(to);
      const stale = await callTool(client, 'get_connector_action_request', { request_id: pending.request_id });
      expect(stale).toMatchObject({ status: 'stale', status_reason: expect.stringContaining(`upgraded (${from} -> ${to})`), assistant_hint: expect.stringMatching(/fresh request/) });
    }
  });

  it('a token valid in two unlocked databases is a conflict, never a guess', async () => {
    const t = await token({ get_key: 'always_run' });
    const client = await connect('http', t.secret);
    expect((await callTool(client, 'list_connector_targets')).targets).toHaveLength(1);
    // A restored copy of the database holds the same token.
    const exported = await aip(['db', 'export', 'main', join(dir, 'copy.aipdb'), '--data-dir', join(dir, 'data'), '--password-stdin'], { stdin: `${PASSWORD}\n` });
    expect(exported.code).toBe(0);
    await aip(['db', 'import', join(dir, 'copy.aipdb'), '--name', 'copy', '--data-dir', join(dir, 'data'), '--password-stdin'], { stdin: `${PASSWORD}\n` });
    await aip(['unlock', '--db', 'copy', '--url', gw.url, '--password-stdin'], { stdin: `${PASSWORD}\n` });
    try {
      await expect(callTool(client, 'list_connector_targets')).rejects.toThrow(/more than one unlocked database/);
      const bridged = mcpClient('stdio', gw.url, t.secret);
      await expect(bridged).rejects.toThrow(/more than one unlocked database/);
    } finally {
      await aip(['lock', '--db', 'copy', '--url', gw.url, '--password-stdin'], { stdin: `${PASSWORD}\n` });
    }
    expect((await callTool(client, 'list_connector_targets')).targets).toHaveLength(1);
  });
});

describe('MCP: JSON-RPC edges', () => {
  it('still answers a JSON-RPC batch over HTTP, and refuses a batch with an invalid member, naming it', async () => {
    const t = await token({ get_key: 'always_run' });
    const raw = await rawSession('http', gw.url, t.secret);
    try {
      const both = await raw.exchange(JSON.stringify([{ jsonrpc: '2.0', id: 'a', method: 'ping' }, { jsonrpc: '2.0', id: 'b', method: 'ping' }]));
      expect(both.answers.map((answer: { id: string }) => answer.id).sort()).toEqual(['a', 'b']);
      const mixed = await raw.exchange(JSON.stringify([{ jsonrpc: '2.0', id: 'c', method: 'ping' }, { jsonrpc: '2.0', id: 'd' }]));
      expect(mixed.status).toBe(400);
      expect(mixed.answers).toEqual([{ jsonrpc: '2.0', id: 'd', error: { code: -32600, message: expect.stringMatching(/no "method"/) } }]);
      const empty = await raw.exchange('[]');
      expect(empty.answers).toEqual([{ jsonrpc: '2.0', id: null, error: { code: -32600, message: expect.stringMatching(/empty batch/) } }]);
    } finally {
      await raw.close();
    }
  });

  it('tells an initialize with bad params what is wrong (-32602), instead of "send initialize first"', async () => {
    const t = await token({ get_key: 'always_run' });
    const response = await fetch(`${gw.url}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.secret}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 'i1', method: 'initialize', params: { capabilities: {}, clientInfo: { name: 'x', version: '1' } } }),
    });
    expect(response.headers.get('mcp-session-id')).toBeNull();
    expect(await response.json()).toEqual({ jsonrpc: '2.0', id: 'i1', error: { code: -32602, message: expect.stringMatching(/^Invalid params for initialize: params\.protocolVersion must be/) } });
  });

  it('says over the stdio bridge that batches are one message per line there', async () => {
    const t = await token({ get_key: 'always_run' });
    const raw = await rawSession('stdio', gw.url, t.secret);
    try {
      const batch = await raw.exchange(JSON.stringify([{ jsonrpc: '2.0', id: 'a', method: 'ping' }]));
      expect(batch.answers).toEqual([{ jsonrpc: '2.0', id: null, error: { code: -32600, message: expect.stringMatching(/batches .* are not supported on this channel; send one message per line/) } }]);
    } finally {
      await raw.close();
    }
  });
});

describe('MCP: clients meet a bad token (there is no OAuth)', () => {
  const BAD = `aip_${'x'.repeat(43)}`;

  it('answers the OAuth discovery and registration paths with a plain "no OAuth here", behind the same boundary', async () => {
    for (const path of [
      '/.well-known/oauth-protected-resource',
      '/.well-known/oauth-protected-resource/mcp',
      '/.well-known/oauth-authorization-server',
      '/.well-known/oauth-authorization-server/mcp',
      '/.well-known/openid-configuration',
      '/.well-known/openid-configuration/mcp',
      '/mcp/.well-known/openid-configuration',
    ]) {
      const response = await fetch(`${gw.url}${path}`, { headers: { 'mcp-protocol-version': '2025-06-18' } });
      expect(response.status, path).toBe(404);
      expect(await response.json()).toEqual({ error: 'oauth_not_supported', error_description: expect.stringMatching(/^AIPermission does not use OAuth: .*Authorization: Bearer aip_/) });
    }
    // RFC 7591: a refused registration is a 400 with an error code the client shows with its description.
    const register = await fetch(`${gw.url}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_name: 'x', redirect_uris: ['http://127.0.0.1:1/cb'] }) });
    expect(register.status).toBe(400);
    expect(await register.json()).toEqual({ error: 'invalid_client_metadata', error_description: expect.stringMatching(/^AIPermission does not use OAuth/) });
    const authorize = await fetch(`${gw.url}/authorize?response_type=code&client_id=x`);
    expect(authorize.status).toBe(400);
    expect(await authorize.json()).toMatchObject({ error: 'invalid_request' });
    const tokenEndpoint = await fetch(`${gw.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=authorization_code&code=x' });
    expect(tokenEndpoint.status).toBe(400);
    expect(await tokenEndpoint.json()).toMatchObject({ error: 'unsupported_grant_type' });
    // Invariant 7 holds on these paths too: a foreign Origin or Host is refused before any answer.
    expect((await fetch(`${gw.url}/.well-known/oauth-protected-resource`, { headers: { origin: 'https://evil.example' } })).status).toBe(403);
    expect(await statusWithHost('/register', 'evil.example')).toBe(403);
  });

  it('names the cause in the 401 challenge, and offers nothing to discover', async () => {
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } });
    const bad = await fetch(`${gw.url}/mcp`, { method: 'POST', headers: { ...headers, authorization: `Bearer ${BAD}` }, body });
    expect(bad.status).toBe(401);
    const challenge = bad.headers.get('www-authenticate')!;
    expect(challenge).toMatch(/^Bearer realm="aipermission", error="invalid_token", error_description="The MCP token is not valid [^"]*AIPermission does not use OAuth[^"]*"$/);
    expect(challenge).not.toMatch(/resource_metadata|scope=/);
    const none = await fetch(`${gw.url}/mcp`, { method: 'POST', headers, body });
    expect(none.status).toBe(401);
    // No credentials at all: no error code (RFC 6750 section 3.1), still the reason.
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer realm="aipermission", error_description="This endpoint needs an MCP token[^"]*"$/);
  });

  it('ends a bad token in a clear error for the SDK client, with or without an OAuth provider, never in a registration or a browser', async () => {
    const url = new URL(`${gw.url}/mcp`);
    const plain = new Client({ name: 'no-auth', version: '1' });
    await expect(plain.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers: { Authorization: `Bearer ${BAD}` } } }))).rejects.toThrow(/The MCP token is not valid/);

    const seen: string[] = [];
    const redirected: URL[] = [];
    let registered = false;
    const provider: OAuthClientProvider = {
      redirectUrl: 'http://127.0.0.1:1/callback',
      clientMetadata: { client_name: 'test-oauth', redirect_uris: ['http://127.0.0.1:1/callback'] },
      clientInformation: () => undefined,
      saveClientInformation: () => {
        registered = true;
      },
      tokens: () => undefined,
      saveTokens: () => undefined,
      redirectToAuthorization: (authorizationUrl) => {
        redirected.push(authorizationUrl);
      },
      saveCodeVerifier: () => undefined,
      codeVerifier: () => 'verifier',
    };
    const recording: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      seen.push(`${init?.method ?? 'GET'} ${new URL(String(input instanceof Request ? input.url : input)).pathname} ${response.status}`);
      return response;
    };
    const oauth = new Client({ name: 'with-auth', version: '1' });
    const failure = (await oauth
      .connect(new StreamableHTTPClientTransport(url, { authProvider: provider, fetch: recording, requestInit: { headers: { Authorization: `Bearer ${BAD}` } } }))
      .catch((error: unknown) => error)) as Error;
    expect(failure).toBeInstanceOf(Error);
    expect(failure.message).toMatch(/^AIPermission does not use OAuth: an MCP client sends a static MCP token/);
    expect(registered).toBe(false);
    expect(redirected).toEqual([]);
    // Every OAuth probe got the plain answer: nothing was found to follow.
    expect(seen).toContain('POST /register 400');
    expect(seen.filter((line) => line.includes('/.well-known/')).every((line) => line.endsWith(' 404'))).toBe(true);
  });
});

/** A GET with a chosen Host header (fetch sends the URL's own). */
function statusWithHost(path: string, host: string): Promise<number> {
  const url = new URL(gw.url);
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: url.hostname, port: url.port, path, headers: { host } }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on('error', reject);
    request.end();
  });
}
