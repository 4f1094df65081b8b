import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHarness, type Fixture, type Harness } from './helpers/kernel.js';

let h: Harness;
let f: Fixture;
beforeEach(async () => {
  h = await createHarness();
  f = await h.setup('always_run', 'echo');
});
afterEach(async () => h.cleanup());

const set = (action: string, rule: 'always_run' | 'approval_required' | 'blocked', expiresAt?: string) =>
  h.ws.grants.set({ tokenId: f.tokenId, targetId: f.targetId, profileId: f.profileId, action, rule, ...(expiresAt ? { expiresAt } : {}) }, 'operator:test');
const decide = (action: string) => h.ws.grants.evaluate(f.tokenId, f.targetId, f.profileId, action).then((d) => d.decision);

describe('grant evaluation', () => {
  it('denies when no row applies', async () => {
    expect(await decide('write_thing')).toBe('denied');
    const other = await h.setup('always_run');
    expect(await h.ws.grants.evaluate(f.tokenId, other.targetId, other.profileId, 'echo').then((d) => d.decision)).toBe('denied');
  });

  it('applies the row for the action', async () => {
    expect(await decide('echo')).toBe('always_run');
    await set('echo', 'approval_required');
    expect(await decide('echo')).toBe('approval_required');
  });

  it('lets the stricter of a specific and a wildcard row win (deny wins)', async () => {
    await set('*', 'blocked');
    expect(await decide('echo')).toBe('blocked');
    await set('*', 'approval_required');
    expect(await decide('echo')).toBe('approval_required');
    expect(await decide('write_thing')).toBe('approval_required');
    await set('*', 'always_run');
    await set('echo', 'blocked');
    expect(await decide('echo')).toBe('blocked');
    expect(await decide('write_thing')).toBe('always_run');
  });

  it('ignores an expired grant', async () => {
    await set('write_thing', 'always_run', new Date(h.clock.now() + 3_600_000).toISOString());
    expect(await decide('write_thing')).toBe('always_run');
    h.clock.advance(3_600_001);
    expect(await decide('write_thing')).toBe('denied');
  });

  it('lets an expired blocking row stop blocking', async () => {
    await set('*', 'approval_required');
    await set('echo', 'blocked', new Date(h.clock.now() + 60_000).toISOString());
    expect(await decide('echo')).toBe('blocked');
    h.clock.advance(60_001);
    expect(await decide('echo')).toBe('approval_required');
  });

  it('refuses grants that do not fit together, with a clear message', async () => {
    const other = await h.setup('always_run');
    await expect(h.ws.grants.set({ tokenId: f.tokenId, targetId: f.targetId, profileId: other.profileId, action: 'echo', rule: 'always_run' }, 'operator:test')).rejects.toMatchObject({
      message: expect.stringContaining('belongs to another target'),
    });
    await expect(set('no_such_action', 'always_run')).rejects.toMatchObject({ message: expect.stringContaining('has no action "no_such_action"') });
    await expect(set('echo', 'sometimes' as 'always_run')).rejects.toMatchObject({ code: 'invalid_input' });
    await expect(set('echo', 'always_run', new Date(h.clock.now() - 1).toISOString())).rejects.toMatchObject({ message: expect.stringContaining('in the past') });
  });

  it('records every change in the audit log', async () => {
    const grant = await set('write_thing', 'approval_required');
    await set('write_thing', 'blocked');
    await h.ws.grants.remove(grant.id, 'operator:test');
    const events = (await h.ws.audit.search({ event: 'grant' })).entries.map((e) => e.event).reverse();
    expect(events).toEqual(['grant.created', 'grant.created', 'grant.updated', 'grant.deleted']);
  });
});

describe('effective rules', () => {
  it("says a looser action row under a stricter '*' row gets the stricter rule, and names the row that decides", async () => {
    const star = await set('*', 'approval_required');
    const echo = (await h.ws.grants.list({ tokenId: f.tokenId })).find((g) => g.action === 'echo')!;
    // echo -> always_run was set first; the '*' row overrides it.
    expect(h.ws.grants.effective(echo)).toEqual({ rule: 'approval_required', overriddenBy: { id: star.id, action: '*', rule: 'approval_required' }, expired: false });
    expect(h.ws.grants.effective(star)).toEqual({ rule: 'approval_required', overriddenBy: null, expired: false });
    // A stricter action row is its own rule; an equally strict one is no override.
    const blocked = await set('echo', 'blocked');
    expect(h.ws.grants.effective(blocked)).toEqual({ rule: 'blocked', overriddenBy: null, expired: false });
    const same = await set('echo', 'approval_required');
    expect(h.ws.grants.effective(same).overriddenBy).toBeNull();
    // The answer is what evaluation decides, for every row.
    for (const grant of await h.ws.grants.list({ tokenId: f.tokenId })) {
      expect(h.ws.grants.effective(grant).rule).toBe(await decide(grant.action === '*' ? 'write_thing' : grant.action));
    }
  });

  it('says an expired row counts for nothing and which row applies instead', async () => {
    const star = await set('*', 'blocked');
    const soon = await set('echo', 'always_run', new Date(h.clock.now() + 60_000).toISOString());
    h.clock.advance(61_000);
    expect(h.ws.grants.effective(soon)).toEqual({ rule: 'blocked', overriddenBy: { id: star.id, action: '*', rule: 'blocked' }, expired: true });
    await h.ws.grants.remove(star.id, 'operator:test');
    expect(h.ws.grants.effective(soon)).toEqual({ rule: 'denied', overriddenBy: null, expired: true });
  });
});
