import { operatorPrincipal } from '../src/lib/principal.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ActionError } from '@aipermission/plugin-sdk';
import { createHarness, type Harness } from './helpers/kernel.js';

let h: Harness;
beforeEach(async () => {
  h = await createHarness();
});
afterEach(async () => h.cleanup());

const events = async (h: Harness, requestId: string) =>
  (await h.ws.audit.search({ subjectId: requestId, limit: 50 })).entries.map((e) => e.event).reverse();

describe('the action pipeline', () => {
  it('runs an always_run action and records intent before and completion after', async () => {
    const f = await h.setup('always_run');
    let intentSeenByExecutor: string[] = [];
    h.executor.onInvoke = async (invocation) => {
      // The write-ahead entry must already be committed when the connector is called.
      intentSeenByExecutor = await events(h, invocation.invocationId);
    };
    const outcome = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'echo', input: { text: 'hello' }, reason: 'testing' });
    expect(outcome.kind).toBe('request');
    if (outcome.kind !== 'request') return;
    expect(outcome.request.status).toBe('completed');
    expect(outcome.request.output).toEqual({ text: 'hello', host: 'db.internal' });
    expect(intentSeenByExecutor).toEqual(['action.started']);
    expect(await events(h, outcome.request.id)).toEqual(['action.started', 'action.completed']);
  });

  it('hands the executor only the one target config and the one profile lease', async () => {
    const f = await h.setup('always_run');
    const leases: unknown[] = [];
    h.executor.onInvoke = (invocation) => void leases.push(invocation.scope.lease());
    await h.ws.targets.createTarget({ kind: 'fake', name: 'other', config: { host: 'other.internal' } }, 'operator:test');
    await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'echo', input: { text: 'x' } });
    const call = h.executor.calls[0]!;
    expect(call.target).toEqual({ id: f.targetId, kind: 'fake', config: { host: 'db.internal' } });
    // The lease was handed out while the call ran (recorded by the fake executor below); the scope is disposed now.
    expect(leases[0]).toEqual({ kind: 'password', fields: { username: 'app', password: 'S3cret-Value-123' } });
    // The profile's id names the endpoint the kernel opens for the call (with the target's); it is not a credential.
    expect(call.scope.profileId).toBe(f.profileId);
    expect(call.scope.live).toBe(false);
    expect(() => call.scope.lease()).toThrow(/has ended/);
    expect(Object.keys(call).sort()).toEqual(['action', 'connector', 'input', 'invocationId', 'onProgress', 'policy', 'scope', 'signal', 'target']);
  });

  it('queues an approval_required action and runs the sealed input on Run', async () => {
    const f = await h.setup('approval_required');
    const outcome = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'write_thing', input: { value: 'v1' } });
    if (outcome.kind !== 'request') throw new Error('expected a request');
    expect(outcome.request.status).toBe('approval_pending');
    expect(outcome.request.expiresAt).not.toBeNull();
    expect(h.executor.calls).toHaveLength(0);
    const done = await h.kernel.pipeline.runApproved(operatorPrincipal(h.ws.name, 'test-session', 'operator:test'), outcome.request.id, 'go ahead');
    expect(done.status).toBe('completed');
    expect(done.output).toEqual({ written: 'v1' });
    expect(done.operatorNote).toBe('go ahead');
    expect(h.executor.calls[0]!.input).toEqual({ value: 'v1' });
    expect(await events(h, outcome.request.id)).toEqual(['action.requested', 'action.approved', 'action.started', 'message.sent', 'action.completed']);
    // The note waits for the agent's next response.
    const notes = await h.ws.messages.takeUndelivered(f.tokenId);
    expect(notes.map((n) => n.body)).toEqual(['go ahead']);
    expect(await h.ws.messages.takeUndelivered(f.tokenId)).toEqual([]);
  });

  it('runs what was approved even when the preview was redacted', async () => {
    const f = await h.setup('approval_required');
    const outcome = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'write_thing', input: { value: 'password=hunter2-is-here' } });
    if (outcome.kind !== 'request') throw new Error('expected a request');
    expect(outcome.request.inputPreview).toEqual({ value: 'password=[REDACTED]' });
    const done = await h.kernel.pipeline.runApproved(operatorPrincipal(h.ws.name, 'test-session', 'operator:test'), outcome.request.id);
    expect(done.status).toBe('completed');
    expect(h.executor.calls[0]!.input).toEqual({ value: 'password=hunter2-is-here' });
  });

  it('gives blocked and no-grant the same refusal and records both', async () => {
    const blocked = await h.setup('blocked');
    const noGrant = await h.setup('always_run', 'echo');
    const a = await h.kernel.pipeline.call(h.kernel.authenticateToken(blocked.token), { targetRef: blocked.targetRef, action: 'echo', input: { text: 'x' } }).catch((e) => e);
    const b = await h.kernel.pipeline.call(h.kernel.authenticateToken(noGrant.token), { targetRef: noGrant.targetRef, action: 'write_thing', input: { value: 'x' } }).catch((e) => e);
    expect(a.code).toBe('not_permitted');
    expect(b.code).toBe('not_permitted');
    expect(a.message).toBe(b.message);
    expect(a.message).toMatch(/Ask your operator/);
    const history = await h.ws.approvals.list({ status: 'blocked' });
    expect(history.requests.map((r) => r.statusReason).sort()).toEqual(['blocked by a grant', 'no grant']);
    expect(h.executor.calls).toHaveLength(0);
  });

  it('checks the grant before the input, so an unauthorized token learns nothing about the schema', async () => {
    const f = await h.setup('always_run', 'echo');
    const refused = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'write_thing', input: { nope: 1 } }).catch((e) => e);
    expect(refused.code).toBe('not_permitted');
    expect(refused.message).not.toMatch(/value|required|nope/);
    const invalid = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'echo', input: { nope: 1 } }).catch((e) => e);
    expect(invalid.code).toBe('invalid_input');
    expect(invalid.message).toMatch(/unknown field "nope"/);
    expect(invalid.message).toMatch(/missing the field "text"/);
    expect((await h.ws.audit.search({ event: 'action.rejected' })).entries).toHaveLength(1);
  });

  it('answers stopped while the MCP switch is off and runs nothing', async () => {
    const f = await h.setup('always_run');
    await h.ws.mcp.set(false, 'operator:test');
    const outcome = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'echo', input: { text: 'x' } });
    expect(outcome.kind).toBe('stopped');
    expect(h.executor.calls).toHaveLength(0);
    expect((await h.ws.audit.search({ event: 'action.refused' })).entries[0]!.payload).toMatchObject({ reason: 'stopped' });
  });

  it('starts stopped after unlock unless the auto-start setting says otherwise', async () => {
    await h.kernel.lock('main', 'operator:test');
    let ws = await h.kernel.unlock('main', 'Correct-Horse-42-Battery', 'operator:test');
    expect(ws.mcp.isRunning()).toBe(false);
    await ws.settings.update({ mcpAutostart: true }, 'operator:test');
    await h.kernel.lock('main', 'operator:test');
    ws = await h.kernel.unlock('main', 'Correct-Horse-42-Battery', 'operator:test');
    expect(ws.mcp.isRunning()).toBe(true);
    h.ws = ws;
  });

  it('rejects an unknown target, a malformed target_ref and an oversize input clearly, and audits each', async () => {
    const f = await h.setup('always_run');
    const unknown = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: `fake:tgt_0000000000000000:${f.profileId}`, action: 'echo', input: { text: 'x' } }).catch((e) => e);
    expect(unknown.code).toBe('unknown_target');
    const malformed = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: 'nonsense', action: 'echo' }).catch((e) => e);
    expect(malformed.code).toBe('invalid_target_ref');
    const huge = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'echo', input: { text: 'x'.repeat(1_100_000) } }).catch((e) => e);
    expect(huge.code).toBe('invalid_input');
    expect(huge.message).toMatch(/most an action accepts is 1048576 bytes/);
    const longReason = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'echo', input: { text: 'x' }, reason: 'r'.repeat(3000) }).catch((e) => e);
    expect(longReason.code).toBe('invalid_input');
    expect((await h.ws.audit.search({ event: 'action.rejected' })).entries).toHaveLength(4);
    expect(h.executor.calls).toHaveLength(0);
  });

  it("stores a failure's statusReason as one visible line, whatever the connector echoed, and its error message as it came", async () => {
    const f = await h.setup('always_run');
    // A connector error that echoes the agent's input: a newline and a bidi override aimed at whoever reads the status.
    const message = 'ERR unknown key "a\n    input:  {"harmless":true}\u202e"';
    h.executor.onInvoke = () => {
      throw new ActionError('config', message);
    };
    const failed = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'echo', input: { text: 'x' } });
    if (failed.kind !== 'request') throw new Error();
    expect(failed.request.status).toBe('failed');
    expect(failed.request.statusReason).toBe('ERR unknown key "a\\n    input:  {"harmless":true}\\u{202e}"');
    expect(failed.request.error!.message).toBe(message);
    expect((await h.ws.approvals.require(failed.request.id)).statusReason).not.toMatch(/[\n\u202e]/);
  });

  it('reports an action failure with its kind and user message, and hides unexpected internals', async () => {
    const f = await h.setup('always_run');
    const failed = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'fail', input: {} });
    if (failed.kind !== 'request') throw new Error();
    expect(failed.request.status).toBe('failed');
    expect(failed.request.error).toEqual({ kind: 'config', retryable: false, message: 'Authentication failed: check the password of the profile.' });
    const crashed = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'crash', input: {} });
    if (crashed.kind !== 'request') throw new Error();
    expect(crashed.request.status).toBe('failed');
    expect(crashed.request.error!.kind).toBe('system');
    expect(JSON.stringify(crashed.request)).not.toMatch(/deadbeef|home\/secret/);
  });

  it('enforces the output bound in the kernel', async () => {
    const f = await h.setup('always_run');
    const outcome = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'big', input: { bytes: 100_000 } });
    if (outcome.kind !== 'request') throw new Error();
    expect(outcome.request.status).toBe('completed');
    expect(outcome.request.outputTruncated).toBe(true);
    const output = outcome.request.output as { truncated: boolean; originalBytes: number; preview: string };
    expect(output.truncated).toBe(true);
    expect(output.originalBytes).toBeGreaterThan(100_000);
    expect(Buffer.byteLength(JSON.stringify(output))).toBeLessThanOrEqual(4096);
  });

  it('redacts the lease secrets out of outputs and audit entries', async () => {
    const f = await h.setup('always_run');
    const outcome = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'leak', input: {} });
    if (outcome.kind !== 'request') throw new Error();
    expect(outcome.request.output).toEqual({ message: 'the password is [REDACTED]' });
    const rows = await h.ws.db.all<{ payload: string }>('SELECT payload FROM audit_log');
    expect(rows.map((r) => r.payload).join('\n')).not.toContain('S3cret-Value-123');
    const requests = await h.ws.db.all<{ output_preview: string }>('SELECT output_preview FROM requests');
    expect(requests.map((r) => r.output_preview).join('\n')).not.toContain('S3cret-Value-123');
  });

  it('validates outputs against the action output schema', async () => {
    const f = await h.setup('always_run');
    const outcome = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'typed', input: {} });
    if (outcome.kind !== 'request') throw new Error();
    expect(outcome.request.status).toBe('failed');
    expect(outcome.request.error!.message).toMatch(/does not match the action's output schema/);
  });

  it('cancels at the deadline and reports a timeout', async () => {
    const f = await h.setup('always_run');
    const outcome = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'hang', input: {} });
    if (outcome.kind !== 'request') throw new Error();
    expect(outcome.request.status).toBe('failed');
    expect(outcome.request.error!.message).toMatch(/did not finish within its 100 ms deadline/);
    expect(h.executor.calls[0]!.signal.aborted).toBe(true);
  });

  it('returns running after waitMs and completes in the background', async () => {
    const f = await h.setup('always_run');
    const outcome = await h.kernel.pipeline.call(h.kernel.authenticateToken(f.token), { targetRef: f.targetRef, action: 'wait', input: {} }, { waitMs: 20 });
    if (outcome.kind !== 'request') throw new Error();
    expect(outcome.request.status).toBe('running');
    h.executor.release();
    await h.ws.inflight.drain(2000);
    expect((await h.ws.approvals.require(outcome.request.id)).status).toBe('completed');
  });
});
