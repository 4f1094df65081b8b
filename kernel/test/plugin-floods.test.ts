// Floods from a hostile plugin (issue 10 item 5): its log, and requests for
// methods the kernel does not have, with 64 KiB names, from a plugin that
// never reads its stdin. The kernel drops and counts log lines over a rate,
// quotes nothing unbounded back, and stops a plugin that sends too many
// requests or does not read what it is sent, with the reason in its status.
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pluginHarness, type PluginHarness } from './helpers/plugins.js';
import { freePort, waitForLine } from './helpers/cli.js';
import { tempDir } from './helpers/temp.js';
import { detectBwrap } from '../src/plugin-host/index.js';

let h: PluginHarness | undefined;
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
});

const FAST = { idleMs: 60_000, cancelGraceMs: 500, handshakeTimeoutMs: 5_000, restartBudget: { crashes: 3, windowMs: 60_000 } };
const MODES = detectBwrap() !== null ? (['off', 'auto'] as const) : (['off'] as const);
const statusOf = (id: string) => h!.host.list().find((p) => p.id === id)!.status;
/** The reason a stopped plugin's status gives, once its exit was seen. */
async function lastErrorOf(id: string): Promise<string> {
  const started = Date.now();
  while (statusOf(id).lastError === null && Date.now() - started < 5_000) await new Promise((r) => setTimeout(r, 20));
  return String(statusOf(id).lastError);
}
const bytesOf = (lines: readonly string[]) => lines.reduce((sum, line) => sum + line.length, 0);

describe('a plugin flooding its log', () => {
  for (const bwrap of MODES) {
    it(`gets its lines over the rate dropped with a counted marker, and the gateway log grows by a bounded amount (bwrap ${bwrap})`, async () => {
      h = await pluginHarness({ fixtures: ['stderr-flood'], bwrap, supervisor: FAST });
      const t = await h.target('stderr-flood');
      const request = await h.call(t, 'flood', { ms: 2_000 });
      expect(request.status).toBe('completed');
      const poured = (request.output as { bytes: number }).bytes;
      // The attack was real: far more than the log may take.
      expect(poured).toBeGreaterThan(50 * 1024 * 1024);
      await new Promise((r) => setTimeout(r, 1_200));
      const gateway = h.logs.filter((line) => line.includes('[plugin stderr-flood]'));
      const all = gateway.join('\n');
      expect(all).toMatch(/\[kernel\] \d+ log lines dropped: it logged faster than 100 lines a second/);
      const dropped = [...all.matchAll(/(\d+) log lines dropped/g)].reduce((sum, m) => sum + Number(m[1]), 0);
      const kept = gateway.filter((line) => line.includes('flood zzz')).length;
      // Burst (400) plus 100 a second for about two seconds; everything else counted as dropped.
      expect(kept).toBeLessThanOrEqual(400 + 100 * 4);
      expect(dropped).toBeGreaterThan(10_000);
      expect(bytesOf(gateway)).toBeLessThan(2 * 1024 * 1024);
      // The plugin is still usable: a flood of its own log is not a crime, only dropped.
      expect(statusOf('stderr-flood').state).toBe('ready');
    }, 30_000);
  }

  it('drops plugin/log notifications over the rate the same way, and cuts one endless line into bounded pieces', async () => {
    h = await pluginHarness({ fixtures: ['stderr-flood'], supervisor: FAST });
    const t = await h.target('stderr-flood');
    const started = Date.now();
    expect((await h.call(t, 'notify_flood', { ms: 1_000 })).status).toBe('completed');
    await new Promise((r) => setTimeout(r, 1_200));
    const notified = h.logs.filter((line) => line.includes('notified yyy')).length;
    // The burst, then 100 a second for as long as it ran (a loaded machine stretches the call): far below the flood.
    const seconds = Math.ceil((Date.now() - started) / 1000) + 1;
    expect(notified).toBeGreaterThan(0);
    expect(notified).toBeLessThanOrEqual(400 + 100 * seconds);
    expect(h.logs.join('\n')).toMatch(/log lines dropped/);
    const endless = await h.call(t, 'flood', { ms: 1_000, mode: 'endless' });
    expect(endless.status).toBe('completed');
    for (const line of h.logs) expect(line.length).toBeLessThanOrEqual(8 * 1024);
  }, 30_000);
});

describe('a plugin flooding the kernel with requests and not reading its stdin', () => {
  for (const bwrap of MODES) {
    it(`is stopped for its request rate, never has its 64 KiB method names echoed, and the kernel's memory stays bounded (bwrap ${bwrap})`, async () => {
      h = await pluginHarness({ fixtures: ['method-flood'], bwrap, supervisor: FAST });
      const t = await h.target('method-flood');
      const rssBefore = process.memoryUsage().rss;
      let rssPeak = rssBefore;
      const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 20);
      const request = await h.call(t, 'flood');
      clearInterval(sampler);
      expect(request.status).toBe('outcome_unknown');
      expect(rssPeak - rssBefore).toBeLessThan(100 * 1024 * 1024);
      expect(await lastErrorOf('method-flood')).toMatch(/sent more than 200 requests to the kernel at once, or more than 50 a second \(the last: x\/M{62}… \(\d+ characters\)\)/);
      const log = h.host.log('method-flood').join('\n');
      expect(log).toMatch(/\[kernel\] it sent more than 200 requests.*; stopping the plugin/);
      for (const line of [...h.logs, ...h.host.log('method-flood')]) expect(line).not.toMatch(/M{100}/);
    }, 30_000);
  }

  it('is stopped as soon as the answers it does not read pile up, even under a request rate it is allowed', async () => {
    h = await pluginHarness({ fixtures: ['method-flood'], supervisor: { ...FAST, ioLimits: { requestsPerSecond: 1e9, requestBurst: 1e9 } } });
    const t = await h.target('method-flood');
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 20);
    const request = await h.call(t, 'flood');
    clearInterval(sampler);
    expect(request.status).toBe('outcome_unknown');
    expect(rssPeak - rssBefore).toBeLessThan(100 * 1024 * 1024);
    expect(await lastErrorOf('method-flood')).toMatch(/it does not read the answers to its own requests \(\d+ unread, over the limit of 64\)/);
  }, 30_000);
});

/** The resident memory of a process, from /proc. */
const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

describe('a real gateway process under a plugin flood', () => {
  it('keeps answering /api/status, grows its own log (stderr to a file) by a bounded amount with the dropped marker, and its RSS stays bounded', async () => {
    const { dir, cleanup } = await tempDir('aip-floods-gw-');
    const logPath = join(dir, 'gateway.log');
    const logFd = openSync(logPath, 'w');
    const port = await freePort();
    const gateway = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/gateway-fixture-plugins.mjs', import.meta.url)), join(dir, 'data'), String(port), 'auto', 'stderr-flood', 'method-flood'], { stdio: ['pipe', 'pipe', logFd] }) as ChildProcessByStdio<Writable, Readable, null>;
    closeSync(logFd);
    try {
      const ready = JSON.parse((await waitForLine(gateway, /READY (.*)\n/, 30_000))[1]!) as { url: string; pid: number };
      const status = async () => {
        const started = performance.now();
        const response = await fetch(`${ready.url}/api/status`);
        await response.text();
        expect(response.status).toBe(200);
        return performance.now() - started;
      };
      await status();
      const logBefore = statSync(logPath).size;
      const rssBefore = rssOf(ready.pid);
      let rssPeak = rssBefore;

      // 1. A 3-second stderr flood: /api/status is asked ten times a second meanwhile.
      const flooded = waitForLine(gateway, /RESULT (.*)\n/, 30_000);
      gateway.stdin.write('call stderr-flood flood {"ms":3000}\n');
      const latencies: number[] = [];
      let done = false;
      void flooded.finally(() => (done = true));
      while (!done) {
        latencies.push(await status());
        rssPeak = Math.max(rssPeak, rssOf(ready.pid));
        await new Promise((r) => setTimeout(r, 100));
      }
      const result = JSON.parse((await flooded)[1]!) as { status: string; output: { bytes: number } };
      expect(result.status).toBe('completed');
      expect(result.output.bytes).toBeGreaterThan(50 * 1024 * 1024);
      expect(latencies.length).toBeGreaterThan(10);
      // A liveness check, not a performance target: it answered, each time, well within half a second.
      expect(Math.max(...latencies)).toBeLessThan(500);
      await new Promise((r) => setTimeout(r, 1_500));
      const grown = statSync(logPath).size - logBefore;
      expect(grown).toBeLessThan(3 * 1024 * 1024);
      expect(readFileSync(logPath, 'utf8')).toMatch(/\[plugin stderr-flood\] \[kernel\] \d+ log lines dropped: it logged faster than 100 lines a second/);

      // 2. 300 MB of requests with 64 KiB method names, stdin never read: stopped, the gateway barely grows.
      const flood = waitForLine(gateway, /RESULT (.*)\n/, 30_000);
      gateway.stdin.write('call method-flood flood {}\n');
      let finished = false;
      void flood.finally(() => (finished = true));
      while (!finished) {
        rssPeak = Math.max(rssPeak, rssOf(ready.pid));
        latencies.push(await status());
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(JSON.parse((await flood)[1]!).status).toBe('outcome_unknown');
      expect(rssPeak - rssBefore).toBeLessThan(100 * 1024 * 1024);
      const log = readFileSync(logPath, 'utf8');
      expect(log).toMatch(/\[plugin method-flood\] \[kernel\] it sent more than 200 requests to the kernel/);
      expect(log).not.toMatch(/M{100}/);
    } finally {
      const exited = new Promise((resolve) => gateway.once('exit', resolve));
      gateway.kill('SIGTERM');
      await exited;
      await cleanup();
    }
  }, 60_000);
});

describe('the next attacks: deep JSON and open files', () => {
  it('survives JSON nested a million deep in an output, in progress and in requests to the kernel: the call fails or completes, the gateway keeps running', async () => {
    h = await pluginHarness({ fixtures: ['deep-json'], supervisor: FAST });
    const t = await h.target('deep-json');
    // The output is kept only to a bounded depth, said in place.
    const output = await h.call(t, 'deep_output');
    expect(output.status).toBe('completed');
    expect(JSON.stringify(output.output)).toMatch(/^\{"deep":\[+"\[REDACTED: nested too deep\]"\]+\}$/);
    expect(JSON.stringify(output.output).length).toBeLessThan(1024);
    // Deep progress and deep requests (one to kernel/sign, one to an unknown method) are answered or dropped; the call itself completes.
    expect((await h.call(t, 'deep_progress', {}, { onProgress: () => undefined })).status).toBe('completed');
    expect((await h.call(t, 'deep_request')).status).toBe('completed');
    // Still answering, and a well-formed call after all that works.
    expect((await h.call(t, 'many_fds')).status).toBe('completed');
    for (const line of [...h.logs, ...h.host.log('deep-json')]) expect(line.length).toBeLessThanOrEqual(8 * 1024);
  }, 30_000);

  it('is stopped when it streams large messages nobody asked for faster than the kernel should parse them', async () => {
    h = await pluginHarness({ fixtures: ['deep-json'], supervisor: FAST });
    const t = await h.target('deep-json');
    const started = Date.now();
    const request = await h.call(t, 'big_stream');
    expect(request.status).toBe('outcome_unknown');
    // Stopped within seconds, not after its ten.
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(await lastErrorOf('deep-json')).toMatch(/it sent the kernel more than 100663296 bytes at once, or more than 33554432 a second, on its protocol stream/);
  }, 30_000);

  it('cannot hold more than 1024 open files (RLIMIT_NOFILE)', async () => {
    h = await pluginHarness({ fixtures: ['deep-json'], supervisor: FAST });
    const t = await h.target('deep-json');
    const request = await h.call(t, 'many_fds');
    expect(request).toMatchObject({ status: 'completed', output: { refused: 'EMFILE' } });
    expect((request.output as { opened: number }).opened).toBeLessThan(1024);
  }, 30_000);
});
