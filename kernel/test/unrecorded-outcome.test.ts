import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTools } from '../src/mcp/tools.js';
import { createHarness, type Fixture, type Harness } from './helpers/kernel.js';
import { TestClient, httpApp } from './helpers/http.js';
import { fillableDisk, type FillableDisk } from './helpers/disk.js';
import { PASSWORD } from './helpers/temp.js';

/**
 * Issue 16 item 2: the action ran, its completion entry could not be
 * written (the disk filled up between the intent entry and the end), and the
 * request must read `outcome_unknown` at once everywhere, not `running` until
 * the next unlock; once space is back the state is written and audited.
 */
describe('a run whose completion could not be written (issue 16 item 2)', () => {
  let disk: FillableDisk;
  let h: Harness;
  let f: Fixture;
  let client: TestClient;
  let tools: ReturnType<typeof createTools>;
  const logged: string[] = [];

  /** The disk is full for real: the filler takes the last byte, then writes are made until SQLite itself refuses one. */
  const fillTheDisk = async () => {
    await disk.fill();
    if (disk.kind === 'unmountable') {
      const pages = (await h.ws.db.get<{ page_count: number }>('PRAGMA page_count'))!.page_count;
      await h.ws.db.get(`PRAGMA max_page_count = ${pages}`);
    }
    for (let i = 0; i < 2000; i += 1) {
      try {
        await h.ws.audit.append({ actor: 'system', event: 'test.filler', payload: { i } });
      } catch {
        return;
      }
    }
    throw new Error('the disk never filled up');
  };
  const freeTheDisk = async () => {
    await disk.free();
    if (disk.kind === 'unmountable') await h.ws.db.get('PRAGMA max_page_count = 1073741823');
  };

  beforeAll(async () => {
    disk = await fillableDisk(48);
    if (disk.kind === 'unmountable') console.warn('tmpfs could not be mounted here: the disk is filled with PRAGMA max_page_count instead');
    h = await createHarness({ manualClock: false, dir: disk.dir, log: (message) => logged.push(message) });
    f = await h.setup('always_run');
    client = new TestClient(httpApp(h.kernel).app);
    await client.get('/api/status');
    await client.json('POST', '/api/databases/main/unlock', { password: PASSWORD });
    tools = createTools({ pipeline: h.kernel.pipeline, database: (name) => h.kernel.workspace(name), currentToken: (p) => h.kernel.tokens.current(p), log: () => undefined });
  });
  afterAll(async () => {
    await freeTheDisk().catch(() => undefined);
    await h?.cleanup();
    await disk?.cleanup();
  });

  it(`reads outcome_unknown at once over REST and MCP, and is written and audited as soon as space is back (a real full tmpfs, or max_page_count where mounting is refused)`, async () => {
    // The intent entry is committed before the executor is called; the disk fills while the plugin works.
    h.executor.onInvoke = async (invocation) => {
      if (invocation.action.name === 'write_thing') await fillTheDisk();
    };
    const principal = h.kernel.authenticateToken(f.token);
    const answer = await tools.call('call_connector_action', { target_ref: f.targetRef, action_name: 'write_thing', input: { value: 'v' }, reason: 'disk fills mid-run' }, { principal });
    h.executor.onInvoke = undefined;
    const structured = answer.structured as { error?: { code: string; message: string } };
    expect(answer.isError).toBe(true);
    expect(structured.error?.code).toBe('audit_unavailable');
    const id = /request (req_[a-z0-9]+)/.exec(structured.error!.message)?.[1];
    expect(id, structured.error!.message).toBeDefined();

    // Still `running` on disk (nothing could be written), yet nobody reads that.
    expect((await h.ws.db.get<{ status: string }>('SELECT status FROM requests WHERE id = ?', [id]))!.status).toBe('running');
    const rest = await client.json<{ request: { status: string; statusReason: string } }>('GET', `/api/databases/main/requests/${id}`);
    expect(rest.request.status).toBe('outcome_unknown');
    expect(rest.request.statusReason).toMatch(/could not be written .* whether it took effect is unknown/);
    const listed = await client.json<{ requests: Array<{ id: string; status: string }> }>('GET', '/api/databases/main/requests?status=outcome_unknown');
    expect(listed.requests.map((r) => r.id)).toContain(id);
    const stillRunning = await client.json<{ requests: Array<{ id: string }> }>('GET', '/api/databases/main/requests?status=running');
    expect(stillRunning.requests.map((r) => r.id)).not.toContain(id);
    const polled = (await tools.call('get_connector_action_request', { request_id: id }, { principal })).structured as Record<string, unknown>;
    expect(polled.status).toBe('outcome_unknown');
    expect(polled.retry_after_seconds).toBeUndefined();
    expect(String(polled.assistant_hint)).not.toMatch(/still running|poll/i);

    // Space comes back: the retry writes the row and its audit entry within a second.
    const freedAt = Date.now();
    await freeTheDisk();
    let stored = '';
    while (Date.now() - freedAt < 5_000) {
      stored = (await h.ws.db.get<{ status: string }>('SELECT status FROM requests WHERE id = ?', [id]))!.status;
      if (stored === 'outcome_unknown') break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(stored).toBe('outcome_unknown');
    expect(Date.now() - freedAt).toBeLessThan(1_000);
    const entries = await h.ws.db.all<{ event: string; payload: string }>("SELECT event, payload FROM audit_log WHERE json_extract(subject, '$.requestId') = ? ORDER BY seq", [id]);
    expect(entries.map((e) => e.event)).toEqual(['action.started', 'action.outcome_unknown']);
    expect(JSON.parse(entries[1]!.payload)).toMatchObject({ reason: expect.stringMatching(/completion could not be recorded/), unrecorded: { event: 'action.completed' } });
    expect(h.ws.approvals.unrecordedCount()).toBe(0);
    expect(logged.some((line) => /written as outcome_unknown after the disk took writes again/.test(line))).toBe(true);
    expect((await h.ws.audit.verify()).ok).toBe(true);
  });
});
