/**
 * Issue 10, item 4: every string a plugin sends (output, error message,
 * progress, connection-check message and details, log lines) goes through one
 * central bound and redaction (connectors/plugin-text.ts) before anyone sees
 * or stores it. The attacks come from a hostile connector,
 * fixtures/plugins/loud.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectBwrap } from '../src/plugin-host/index.js';
import { PLUGIN_TEXT_LIMITS, pluginText, type ProgressUpdate } from '../src/connectors/index.js';
import { createRedactor } from '../src/redaction/index.js';
import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { startGateway } from '../src/main.js';
import { installedHarness, type InstalledHarness, type InstalledTarget } from './helpers/installed.js';
import { mcpClient, operator } from './helpers/mcp.js';
import { FIXTURES } from './helpers/plugins.js';
import { PASSWORD, tempDir } from './helpers/temp.js';

const HAS_BWRAP = detectBwrap() !== null;
const FAST = { idleMs: 60_000, cancelGraceMs: 500, handshakeTimeoutMs: 5_000, restartBudget: { crashes: 3, windowMs: 60_000 } };
const SECRET = 'Loud-Password-4242-zz';
/** A raw terminal or bidi control: what must never reach a display or a log as it is. */
// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
const bytes = (text: string) => Buffer.byteLength(text, 'utf8');

for (const bwrap of HAS_BWRAP ? (['auto', 'off'] as const) : (['off'] as const)) {
  describe(`what an installed plugin sends is bounded and redacted centrally (bwrap ${bwrap})`, () => {
    let h: InstalledHarness;
    let t: InstalledTarget;
    beforeAll(async () => {
      h = await installedHarness({ bwrap, supervisor: FAST });
      await h.install('loud');
      t = await h.target('loud', SECRET);
    }, 60_000);
    afterAll(async () => {
      await h?.cleanup();
    });

    it('a 3.5 MB error message is cut to the error cap in the answer, the request and the audit', async () => {
      const request = await h.call(t, 'huge_error');
      expect(request.status).toBe('failed');
      expect(bytes(request.error!.message)).toBeLessThanOrEqual(PLUGIN_TEXT_LIMITS.errorMessageBytes);
      expect(request.error!.message).toMatch(/^E+… \(cut: 3500008 bytes, at most 4096 are kept\)$/);
      expect(bytes(request.statusReason!)).toBeLessThanOrEqual(PLUGIN_TEXT_LIMITS.errorMessageBytes);
      const { request: stored } = await h.client.json('GET', `/api/databases/main/requests/${request.id}`);
      expect(bytes(JSON.stringify(stored))).toBeLessThan(16 * 1024);
      const audit = await h.audit();
      expect(audit.some((entry) => entry.event === 'action.failed')).toBe(true);
      for (const entry of audit) expect(bytes(JSON.stringify(entry))).toBeLessThan(16 * 1024);
    });

    it('an error carrying the lease and terminal escapes is redacted; the status line beside it is one visible line', async () => {
      const request = await h.call(t, 'secret_error');
      expect(request.status).toBe('failed');
      // The message itself stays as the plugin wrote it, redacted (displays escape it: pipeline.test.ts, "as it came").
      const message = request.error!.message;
      expect(message).not.toContain(SECRET);
      expect(message).toMatch(/^Redis said WRONGPASS for \[REDACTED\] /);
      const reason = request.statusReason!;
      expect(reason).not.toContain(SECRET);
      expect(reason).not.toMatch(RAW_CONTROL);
      expect(reason).not.toMatch(/[\r\n]/);
      expect(reason).toContain('\\u{1b}[31mRED');
      expect(JSON.stringify(await h.audit())).not.toContain(SECRET);
    });

    it('progress is redacted, bounded and escaped before it reaches the agent', async () => {
      const updates: ProgressUpdate[] = [];
      const request = await h.call(t, 'secret_progress', {}, (update) => updates.push(update));
      expect(request.status).toBe('completed');
      expect(updates).toHaveLength(2);
      for (const update of updates) {
        expect(update.message).not.toContain(SECRET);
        expect(update.message).not.toMatch(RAW_CONTROL);
        expect(bytes(update.message!)).toBeLessThanOrEqual(PLUGIN_TEXT_LIMITS.progressMessageBytes);
      }
      expect(updates[0]!.message).toMatch(/^connecting with \[REDACTED\] \\u\{1b\}\[31mRED/);
    });

    it('progress values that are not finite, non-negative numbers, or not objects at all, never reach the agent as they are', async () => {
      const updates: ProgressUpdate[] = [];
      const request = await h.call(t, 'bad_progress', {}, (update) => updates.push(update));
      expect(request.status).toBe('completed');
      for (const update of updates) {
        expect(Object.keys(update).every((key) => ['message', 'completed', 'total'].includes(key))).toBe(true);
        for (const key of ['completed', 'total'] as const) {
          const value = update[key];
          if (value === undefined) continue;
          expect(Number.isFinite(value)).toBe(true);
          expect(value).toBeGreaterThanOrEqual(0);
          expect(value).toBeLessThanOrEqual(PLUGIN_TEXT_LIMITS.progressNumberMax);
        }
        if (update.message !== undefined) expect(typeof update.message).toBe('string');
      }
      expect(updates.map((update) => update.message)).toEqual(['infinite', 'negative', 'too big to count', 'strings', undefined, 'extra', 'fine']);
      expect(updates.at(-1)).toEqual({ message: 'fine', completed: 3, total: 4 });
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });

    it('a progress flood is rate-limited: the agent gets a bounded number of notifications and the gateway stays responsive', async () => {
      const updates: ProgressUpdate[] = [];
      const started = Date.now();
      const request = await h.call(t, 'progress_flood', { count: 20_000, holdMs: 300 }, (update) => updates.push(update));
      const elapsed = Date.now() - started;
      expect(request).toMatchObject({ status: 'completed', output: { sent: 20_000 } });
      const allowed = PLUGIN_TEXT_LIMITS.progressBurst + Math.ceil((elapsed / 1000) * PLUGIN_TEXT_LIMITS.progressPerSecond) + 1;
      expect(updates.length).toBeGreaterThan(0);
      expect(updates.length).toBeLessThanOrEqual(allowed);
      // What got through is in order, and the last one shown is a late one (the newest is kept, not the oldest).
      const counts = updates.map((update) => update.completed!);
      expect([...counts].sort((x, y) => x - y)).toEqual(counts);
      expect(counts.at(-1)).toBeGreaterThan(10_000);
      const status = Date.now();
      await h.client.json('GET', '/api/status');
      expect(Date.now() - status).toBeLessThan(500);
    }, 30_000);

    it('an output with the lease as a value or as an object key is stored redacted; escapes stay data, JSON-escaped', async () => {
      const request = await h.call(t, 'nasty_output');
      expect(request.status).toBe('completed');
      const text = JSON.stringify(request.output);
      expect(text).not.toContain(SECRET);
      expect(Object.keys(request.output as object)).toContain('[REDACTED]');
      // Data stays data (a Redis value may hold any character); JSON escapes its controls, displays escape the rest (visibleJson).
      expect((request.output as { text: string }).text).toBe('value \u001b[31mRED\u001b[0m\u001b[2J\u001b[1;1H\u202eevil\u202c\u0007\r\nforged line');
      // eslint-disable-next-line no-control-regex
      expect(text).not.toMatch(/[\u0000-\u001f]/);
      const { request: stored } = await h.client.json('GET', `/api/databases/main/requests/${request.id}`);
      expect(JSON.stringify(stored)).not.toContain(SECRET);
    });

    it('a password of digits sent back as a JSON number is redacted in the output and dropped from progress', async () => {
      const digits = await h.target('loud', '738291046655');
      const updates: ProgressUpdate[] = [];
      const request = await h.call(digits, 'numeric_leak', {}, (update) => updates.push(update));
      expect(request.status).toBe('completed');
      expect(JSON.stringify({ request, updates })).not.toContain('738291046655');
      expect(request.output).toEqual({ n: '[REDACTED]', nested: ['[REDACTED]'] });
      expect(updates).toEqual([{ message: 'digits' }]);
    });

    it('log lines are redacted before they are cut, and escaped, in the plugin log and the gateway log', async () => {
      expect((await h.call(t, 'nasty_log')).status).toBe('completed');
      await new Promise((resolve) => setTimeout(resolve, 150));
      const lines = [...h.host.log('loud'), ...h.logs];
      const joined = lines.join('\n');
      // Not even the part of the password before the cut.
      expect(joined).not.toContain(SECRET.slice(0, 6));
      expect(joined).toContain('a log line \\u{1b}[31mRED');
      for (const line of lines) {
        expect(line).not.toMatch(RAW_CONTROL);
        expect(bytes(line)).toBeLessThanOrEqual(PLUGIN_TEXT_LIMITS.logLineBytes + 64);
      }
    });

    it('a connection check: message and details redacted (keys too), escaped and bounded, in the answer and the audit', async () => {
      const result = await h.check(t);
      expect(result.ok).toBe(false);
      expect(result.problem).toBe('auth_failed');
      expect(bytes(result.message)).toBeLessThanOrEqual(PLUGIN_TEXT_LIMITS.checkMessageBytes);
      expect(result.message).not.toMatch(RAW_CONTROL);
      expect(bytes(JSON.stringify(result.details))).toBeLessThanOrEqual(PLUGIN_TEXT_LIMITS.checkDetailsBytes + 512);
      const everything = JSON.stringify({ result, audit: await h.audit() });
      expect(everything).not.toContain(SECRET);
      const entry = (await h.audit()).find((e) => e.event === 'target.checked');
      expect(bytes(JSON.stringify(entry))).toBeLessThan(16 * 1024);
    });

    it('a connection check answer that is not the protocol’s shape is not believed', async () => {
      const weird = await h.target('loud', SECRET, { host: '127.0.0.1', note: 'weird' });
      const result = await h.check(weird);
      expect(result.ok).toBe(false);
      expect(result.problem).toBe('unknown');
      expect(typeof result.message).toBe('string');
      expect(JSON.stringify(result)).not.toContain(SECRET);
    });
  });
}

describe('progress at the MCP edge (a real gateway, the MCP SDK client over Streamable HTTP)', () => {
  it('what reaches the agent as notifications/progress is redacted, one visible line, bounded, numeric and rate-limited', async () => {
    const { dir, cleanup } = await tempDir('aip-text-mcp-');
    const gateway = await startGateway({ dataDir: dir, port: 0, log: () => undefined });
    try {
      await gateway.kernel.createDatabase('main', PASSWORD);
      const ws = await gateway.kernel.unlock('main', PASSWORD, 'operator:test');
      await ws.mcp.set(true, 'operator:test');
      const op = await operator(gateway.url);
      const pkg = join(dir, 'loud-package');
      await cp(join(FIXTURES, 'loud'), pkg, { recursive: true, filter: (path) => !path.endsWith('.ts') });
      const inspected = await op.call<{ inspection: string; integrity: string }>('POST', op.db('/plugins/inspect'), { source: pkg });
      await op.call('POST', op.db('/plugins'), { inspection: inspected.inspection, integrity: inspected.integrity });
      const target = await ws.targets.createTarget({ kind: 'loud', name: 'loud', config: { host: '127.0.0.1' } }, 'operator:test');
      const profile = await ws.targets.createProfile(target.id, { label: 'p', credentialKind: 'password', secret: { password: SECRET } }, 'operator:test');
      const token = await ws.tokens.create({ name: 'agent' }, 'operator:test');
      await ws.grants.set({ tokenId: token.token.id, targetId: target.id, profileId: profile.id, action: '*', rule: 'always_run' }, 'operator:test');
      const client = await mcpClient('http', gateway.url, token.secret);
      try {
        const run = async (action: string, input: Record<string, unknown> = {}) => {
          const seen: Array<{ progress: number; total?: number; message?: string }> = [];
          const result = await client.callTool({ name: 'call_connector_action', arguments: { target_ref: `loud:${target.id}:${profile.id}`, action_name: action, input } }, undefined, {
            onprogress: (p) => seen.push(p),
            timeout: 30_000,
          });
          expect([action, (result.structuredContent as { status: string }).status]).toEqual([action, 'completed']);
          return seen;
        };
        const secret = await run('secret_progress');
        expect(secret).toHaveLength(2);
        for (const p of secret) {
          expect(p.message).not.toContain(SECRET);
          expect(p.message).not.toMatch(RAW_CONTROL);
          expect(bytes(p.message!)).toBeLessThanOrEqual(PLUGIN_TEXT_LIMITS.progressMessageBytes);
        }
        const bad = await run('bad_progress');
        for (const p of bad) {
          expect(Number.isFinite(p.progress)).toBe(true);
          if (p.total !== undefined) expect(p.total).toBeLessThanOrEqual(PLUGIN_TEXT_LIMITS.progressNumberMax);
        }
        // MCP progress must increase; it did, whatever the plugin sent.
        expect(bad.map((p) => p.progress)).toEqual([...bad.map((p) => p.progress)].sort((x, y) => x - y));
        expect(new Set(bad.map((p) => p.progress)).size).toBe(bad.length);
        const started = Date.now();
        const flood = await run('progress_flood', { count: 20_000, holdMs: 300 });
        const allowed = PLUGIN_TEXT_LIMITS.progressBurst + Math.ceil(((Date.now() - started) / 1000) * PLUGIN_TEXT_LIMITS.progressPerSecond) + 1;
        expect(flood.length).toBeLessThanOrEqual(allowed);
      } finally {
        await client.close();
      }
    } finally {
      await gateway.close();
      await cleanup();
    }
  }, 60_000);
});

describe('the central bound, on its own (connectors/plugin-text.ts)', () => {
  const text = pluginText(createRedactor({ builtin: true, secrets: ['Cut-Secret-777'] }));

  it('cuts a visible line only between pieces: never inside an escape or a character, within the cap', () => {
    for (const [unit, name] of [['\u001b', 'escape'], ['é', 'two bytes'], ['😀', 'astral'], ['\\', 'backslash'], ['a\u0301', 'combining']] as const) {
      const line = text.logLine(`${'x'.repeat(4090)}${unit.repeat(2000)}`);
      expect([name, bytes(line) <= PLUGIN_TEXT_LIMITS.logLineBytes]).toEqual([name, true]);
      const body = line.slice(0, line.indexOf('… (cut: '));
      // What is kept renders back to itself: it ends on a whole piece.
      expect([name, /\\u\{[0-9a-f]*$|\\$/.test(body.replace(/\\\\/g, ''))]).toEqual([name, false]);
      expect(line).toMatch(/… \(cut: \d+ bytes, at most 4096 are kept\)$/);
    }
  });

  it('redacts before it cuts: no prefix of a secret is left at the cut', () => {
    for (let offset = 4060; offset < 4100; offset += 1) {
      const line = text.logLine(`${'L'.repeat(offset)}Cut-Secret-777 tail`);
      expect(line).not.toMatch(/Cut-S/);
      const message = text.message(`${'M'.repeat(offset)}Cut-Secret-777 tail`);
      expect(message).not.toMatch(/Cut-S/);
    }
  });

  it('keeps a short error message exactly as it came (redacted only)', () => {
    expect(text.message('line one\nline two \u202e Cut-Secret-777')).toBe('line one\nline two \u202e [REDACTED]');
    expect(text.line('line one\nline two')).toBe('line one\\nline two');
  });
});
