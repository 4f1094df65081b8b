import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { existsSync, watch } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { createVault } from '../src/vault/index.js';
import { createKernel } from '../src/kernel.js';
import { PASSWORD, OTHER_PASSWORD } from './helpers/temp.js';

const CHILD = fileURLToPath(new URL('./fixtures/rekey-child.mjs', import.meta.url));
const clock = { now: () => Date.now() };

let base: string;
let source: string;

/** A database with enough in it (about 16 MB) that a rekey takes a while to kill in the middle of. */
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'aip-rekey-crash-'));
  source = join(base, 'source');
  const vault = createVault({ dataDir: source, clock });
  await vault.create('main', PASSWORD);
  const db = await vault.open('main', PASSWORD);
  await db.db.run("INSERT INTO meta (key, value) VALUES ('padding', hex(randomblob(8000000)))");
  await db.db.run("INSERT INTO meta (key, value) VALUES ('marker', 'still here')");
  await db.close();
}, 60_000);

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

/** Runs a password change in a child and SIGKILLs it when `when` resolves (or lets it finish). */
async function interruptedChange(dataDir: string, when: (databasesDir: string) => Promise<void>): Promise<{ finished: boolean }> {
  const child = spawn(process.execPath, [CHILD, dataDir, PASSWORD, OTHER_PASSWORD], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk) => (out += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (let i = 0; i < 400 && !out.includes('READY'); i += 1) await new Promise((resolve) => setTimeout(resolve, 10));
  await Promise.race([when(join(dataDir, 'databases')), exited]);
  child.kill('SIGKILL');
  await exited;
  return { finished: out.includes('DONE') };
}

/** Which passwords open the database now, each tried on its own copy of the data directory. */
async function whoOpens(dataDir: string): Promise<Record<'old' | 'new', { opened: boolean; recovered?: string; marker?: string }>> {
  const result = {} as Record<'old' | 'new', { opened: boolean; recovered?: string; marker?: string }>;
  for (const [label, password] of [
    ['old', PASSWORD],
    ['new', OTHER_PASSWORD],
  ] as const) {
    const copy = await mkdtemp(join(base, `try-${label}-`));
    await cp(dataDir, copy, { recursive: true });
    const vault = createVault({ dataDir: copy, clock });
    try {
      const db = await vault.open('main', password);
      const marker = (await db.db.get<{ value: string }>("SELECT value FROM meta WHERE key = 'marker'"))?.value;
      result[label] = { opened: true, ...(db.recovered ? { recovered: db.recovered } : {}), ...(marker ? { marker } : {}) };
      await db.close();
      // Whatever was recovered, nothing is left behind: no copy under either password.
      expect((await readdir(join(copy, 'databases'))).filter((f) => f.includes('rekey')), `left after opening with the ${label} password`).toEqual([]);
    } catch (error) {
      expect(error).toMatchObject({ code: 'wrong_password' });
      result[label] = { opened: false };
    }
  }
  return result;
}

const waitFor = (predicate: () => boolean) =>
  new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      if (predicate()) {
        clearInterval(tick);
        resolve();
      }
    }, 1);
  });

describe('a password change killed with SIGKILL', () => {
  it('once its new-password copy exists, opens with either password: the new completes the change, the old abandons or reverts it, and nothing is lost', async () => {
    const dataDir = join(base, 'at-new-copy');
    await cp(source, dataDir, { recursive: true });
    const { finished } = await interruptedChange(dataDir, async (dir) => {
      const file = join(dir, 'main.aipdb.rekey-new');
      await waitFor(() => existsSync(file));
    });
    expect(finished).toBe(false);
    const opens = await whoOpens(dataDir);
    expect(opens.new).toEqual({ opened: true, recovered: 'completed', marker: 'still here' });
    expect(opens.old.opened).toBe(true);
    expect(['abandoned', 'reverted']).toContain(opens.old.recovered);
    expect(opens.old.marker).toBe('still here');
  }, 60_000);

  it('at any moment, leaves a database that opens with the old or the new password, all of it there, and says which happened', async () => {
    // How long an uninterrupted change takes here, so the kills land across it.
    const timing = join(base, 'timing');
    await cp(source, timing, { recursive: true });
    const started = Date.now();
    const { finished: completes } = await interruptedChange(timing, () => new Promise(() => undefined));
    const tookMs = Date.now() - started;
    expect(completes).toBe(true);
    const outcomes = new Set<string>();
    for (const fraction of [0, 0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 1.5]) {
      const delayMs = Math.round(tookMs * fraction);
      const dataDir = join(base, `at-${delayMs}ms`);
      await cp(source, dataDir, { recursive: true });
      let sawNewCopy = false;
      const { finished } = await interruptedChange(dataDir, async (dir) => {
        const watcher = watch(dir, () => {
          if (existsSync(join(dir, 'main.aipdb.rekey-new'))) sawNewCopy = true;
        });
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        if (existsSync(join(dir, 'main.aipdb.rekey-new'))) sawNewCopy = true;
        watcher.close();
      });
      const opens = await whoOpens(dataDir);
      // Never locked out, never anything lost.
      expect(opens.old.opened || opens.new.opened, `after ${delayMs} ms`).toBe(true);
      for (const side of [opens.old, opens.new]) if (side.opened) expect(side.marker).toBe('still here');
      // Once the copy under the new password existed, the new password works whatever came after.
      if (sawNewCopy || finished) expect(opens.new.opened, `after ${delayMs} ms`).toBe(true);
      outcomes.add(`${opens.old.opened ? 'old' : '-'}/${opens.new.opened ? 'new' : '-'}`);
    }
    // The trials really did land before, during and after the change.
    expect(outcomes.size, [...outcomes].join(' ')).toBeGreaterThan(1);
  }, 120_000);

  it('audits the recovery at unlock', async () => {
    const dataDir = join(base, 'audited');
    await cp(source, dataDir, { recursive: true });
    await interruptedChange(dataDir, async (dir) => waitFor(() => existsSync(join(dir, 'main.aipdb.rekey-new'))));
    const kernel = createKernel({ dataDir, log: () => undefined });
    try {
      const ws = await kernel.unlock('main', OTHER_PASSWORD, 'operator:test');
      const entries = (await ws.audit.search({ event: 'database.password_change_recovered', limit: 5 })).entries;
      expect(entries.map((e) => e.payload)).toEqual([{ outcome: 'completed' }]);
    } finally {
      await kernel.close();
    }
  }, 60_000);
});
