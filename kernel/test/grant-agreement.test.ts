import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTools } from '../src/mcp/tools.js';
import { createHarness, type Harness } from './helpers/kernel.js';

/**
 * Invariant 4 has one implementation: what discovery shows an agent
 * (list_connector_targets, get_connector_actions) and what the pipeline
 * enforces come from the same grants/ decision. A grid of `*` and per-action
 * rows, with expiries, checked both ways for every action.
 */

type Cell = 'none' | 'always_run' | 'approval_required' | 'blocked' | 'expired_always_run' | 'expired_blocked';
const CELLS: Cell[] = ['none', 'always_run', 'approval_required', 'blocked', 'expired_always_run', 'expired_blocked'];
/** The fake connector's actions the grid looks at, with an input each accepts. */
const ACTIONS: Record<string, Record<string, unknown>> = { echo: { text: 'hi' }, write_thing: { value: 'v' } };

let h: Harness;
let tools: ReturnType<typeof createTools>;
const cases: Array<{ star: Cell; echo: Cell; token: string; targetRef: string }> = [];

beforeAll(async () => {
  h = await createHarness();
  tools = createTools({ pipeline: h.kernel.pipeline, database: (name) => h.kernel.workspace(name), currentToken: (p) => h.kernel.tokens.current(p), log: () => undefined });
  let n = 0;
  for (const star of CELLS) {
    for (const echo of CELLS) {
      n += 1;
      const target = await h.ws.targets.createTarget({ kind: 'fake', name: `grid-${n}`, config: { host: 'db.internal' } }, 'operator:test');
      const profile = await h.ws.targets.createProfile(
        target.id,
        { label: 'default', credentialKind: 'password', config: { username: 'app' }, secret: { password: 'S3cret-Value-123' } },
        'operator:test',
      );
      const created = await h.ws.tokens.create({ name: `grid-${n}` }, 'operator:test');
      for (const [action, cell] of [['*', star], ['echo', echo]] as const) {
        if (cell === 'none') continue;
        const rule = cell.replace('expired_', '') as 'always_run' | 'blocked' | 'approval_required';
        const expiresAt = cell.startsWith('expired_') ? new Date(h.clock.now() + 1_000).toISOString() : null;
        await h.ws.grants.set({ tokenId: created.token.id, targetId: target.id, profileId: profile.id, action, rule, expiresAt }, 'operator:test');
      }
      cases.push({ star, echo, token: created.secret, targetRef: `fake:${target.id}:${profile.id}` });
    }
  }
  // Every temporary row ends now.
  h.clock.advance(5_000);
});

afterAll(async () => {
  await h?.cleanup();
});

/** What discovery shows for each action: its rule, or undefined when the action (or the whole target) is not shown. */
async function shown(token: string, targetRef: string): Promise<Record<string, string | undefined>> {
  const listed = (await tools.call('list_connector_targets', {}, { principal: h.kernel.authenticateToken(token) })).structured as { targets: Array<{ target_ref: string; actions: Array<{ name: string; rule: string }> }> };
  const target = listed.targets.find((t) => t.target_ref === targetRef);
  const out: Record<string, string | undefined> = {};
  for (const name of Object.keys(ACTIONS)) out[name] = target?.actions.find((a) => a.name === name)?.rule;
  if (target) {
    const detailed = (await tools.call('get_connector_actions', { target_ref: targetRef }, { principal: h.kernel.authenticateToken(token) })).structured as { actions: Array<{ name: string; rule: string }> };
    for (const name of Object.keys(ACTIONS)) expect(detailed.actions.find((a) => a.name === name)?.rule, `get_connector_actions ${name}`).toBe(out[name]);
  }
  return out;
}

/** What the pipeline does with a call: the rule it ran under, or undefined when it was refused. */
async function enforced(token: string, targetRef: string, action: string): Promise<string | undefined> {
  const answer = (await tools.call('call_connector_action', { target_ref: targetRef, action_name: action, input: ACTIONS[action], reason: 'grid' }, { principal: h.kernel.authenticateToken(token) })).structured as {
    status: string;
  };
  if (answer.status === 'completed') return 'always_run';
  if (answer.status === 'approval_pending') return 'approval_required';
  expect(answer.status, JSON.stringify(answer)).toBe('blocked');
  return undefined;
}

describe('discovery and enforcement agree', () => {
  it(`on every combination of a * row and an action's own row (${CELLS.length * CELLS.length} targets, with expiries)`, async () => {
    const disagreements: string[] = [];
    for (const c of cases) {
      const view = await shown(c.token, c.targetRef);
      for (const action of Object.keys(ACTIONS)) {
        const ran = await enforced(c.token, c.targetRef, action);
        if (view[action] !== ran) disagreements.push(`* ${c.star}, echo ${c.echo}: ${action} shown as ${view[action] ?? 'absent'}, enforced as ${ran ?? 'refused'}`);
      }
    }
    expect(disagreements).toEqual([]);
  });

  it('follows the strictest-wins rule the grants module documents', async () => {
    const strictest = (cells: Cell[]) => {
      const live = cells.filter((cell) => cell !== 'none' && !cell.startsWith('expired_'));
      if (live.includes('blocked')) return undefined;
      if (live.includes('approval_required')) return 'approval_required';
      return live.includes('always_run') ? 'always_run' : undefined;
    };
    for (const c of cases.slice(0, 12)) {
      expect(await enforced(c.token, c.targetRef, 'echo'), `* ${c.star}, echo ${c.echo}`).toBe(strictest([c.star, c.echo]));
      expect(await enforced(c.token, c.targetRef, 'write_thing'), `* ${c.star}`).toBe(strictest([c.star]));
    }
  });
});
