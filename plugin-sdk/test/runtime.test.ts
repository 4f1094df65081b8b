import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { createHarness, describeConformance, runConformance } from '../src/testing/index.js';
import { createPool, truncateText, takeWithinBudget, encodeBytes } from '../src/index.js';
import { plugin } from './fixtures/good.js';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/dist/${name}.mjs`, import.meta.url));

describe('the in-process harness', () => {
  it('runs a handler with schema checks on both sides', async () => {
    const harness = createHarness(plugin);
    expect(await harness.invoke('greet', { name: 'Ada' }, { target: { greeting: 'Hi' } })).toEqual({ greeting: 'Hi, Ada!' });
    await expect(harness.invoke('greet', { nom: 'x' })).rejects.toThrow(/invalid input/);
  });
});

describeConformance({ entry: fixture('good'), name: 'conformance of a good plugin' });

describe('the conformance suite catches problems', () => {
  it('flags output on stdout before serve()', async () => {
    const report = await runConformance({ entry: fixture('chatty') });
    expect(report.passed).toBe(false);
    const failed = report.results.filter((r) => !r.ok).map((r) => r.name);
    expect(failed).toEqual(expect.arrayContaining(['completes the handshake with protocol version 2 and a manifest']));
  });
});

describe('helpers', () => {
  it('truncates text on a character boundary', () => {
    expect(truncateText('héllo', 2)).toEqual({ text: 'h', truncated: true, bytes: 6 });
    expect(truncateText('abc', 10)).toEqual({ text: 'abc', truncated: false, bytes: 3 });
  });
  it('spends a byte budget across items', () => {
    expect(takeWithinBudget(['aaaa', 'bbbb', 'cccc'], 16)).toEqual({ items: ['aaaa', 'bbbb'], truncated: true });
  });
  it('encodes bytes as utf8 or base64', () => {
    expect(encodeBytes(Buffer.from('hi'))).toEqual({ encoding: 'utf8', data: 'hi' });
    expect(encodeBytes(Buffer.from([0xff, 0xfe]))).toEqual({ encoding: 'base64', data: '//4=' });
  });
  it('pools resources per lease and endpoint, closing idle ones', async () => {
    const closed: number[] = [];
    let made = 0;
    const pool = createPool<number>({ create: async () => ++made, close: (n) => void closed.push(n), idleMs: 20 });
    const ctx = (password: string) => ({ endpoint: { type: 'tcp', host: '127.0.0.1', port: 1, transport: 'direct' }, target: {}, credentials: { kind: 'p', fields: { password } } }) as never;
    expect(await pool.use(ctx('a'), async (n) => n)).toBe(1);
    expect(await pool.use(ctx('a'), async (n) => n)).toBe(1);
    expect(await pool.use(ctx('b'), async (n) => n)).toBe(2);
    await new Promise((r) => setTimeout(r, 60));
    expect(closed.sort()).toEqual([1, 2]);
    expect(pool.size).toBe(0);
  });
});
