/**
 * The grants editor's logic: one token x target x profile as a matrix of
 * actions x {none, blocked, ask, always}, grouped by risk.
 */
import type { ActionInfo, Grant, Risk, Rule } from './types';

export type CellState = 'none' | 'blocked' | 'ask' | 'always';
export const CELL_STATES: readonly CellState[] = ['none', 'blocked', 'ask', 'always'];
export const RISKS: readonly Risk[] = ['read', 'write', 'destructive'];

const RULE_OF: Record<Exclude<CellState, 'none'>, Rule> = { blocked: 'blocked', ask: 'approval_required', always: 'always_run' };
const STATE_OF: Record<Rule, CellState> = { blocked: 'blocked', approval_required: 'ask', always_run: 'always' };

export const ruleOf = (state: Exclude<CellState, 'none'>): Rule => RULE_OF[state];
export const stateOf = (rule: Rule): CellState => STATE_OF[rule];

export interface MatrixRow {
  action: ActionInfo;
  state: CellState;
  grant: Grant | undefined;
}

export interface MatrixGroup {
  risk: Risk;
  rows: MatrixRow[];
  /** The state every row of the group has, or `mixed`. */
  state: CellState | 'mixed';
}

/** The matrix of one token x target x profile: its connector's actions with the grant rows that name them. */
export function buildMatrix(actions: ActionInfo[], grants: Grant[]): MatrixGroup[] {
  const byAction = new Map(grants.filter((g) => g.action !== '*').map((g) => [g.action, g]));
  return RISKS.map((risk) => {
    const rows = actions
      .filter((a) => a.risk === risk)
      .map((action) => {
        const grant = byAction.get(action.name);
        return { action, grant, state: grant && !grant.expired ? stateOf(grant.rule) : 'none' } satisfies MatrixRow;
      });
    const states = new Set(rows.map((r) => r.state));
    return { risk, rows, state: states.size === 1 ? [...states][0]! : 'mixed' } satisfies MatrixGroup;
  }).filter((group) => group.rows.length > 0);
}

/** One change to send: PUT the row for the action, or DELETE the row that is there. */
export type GrantChange =
  | { op: 'put'; action: string; rule: Rule; expiresIn?: string }
  | { op: 'delete'; action: string; grantId: string };

/** What setting one cell (or, for a group, every cell) to `state` sends; unchanged cells send nothing. */
export function changesFor(rows: MatrixRow[], state: CellState, expiresIn?: string): GrantChange[] {
  const changes: GrantChange[] = [];
  for (const row of rows) {
    if (state === 'none') {
      if (row.grant) changes.push({ op: 'delete', action: row.action.name, grantId: row.grant.id });
      continue;
    }
    const rule = ruleOf(state);
    if (row.grant && !row.grant.expired && row.grant.rule === rule && !expiresIn && row.grant.expiresAt === null) continue;
    changes.push({ op: 'put', action: row.action.name, rule, ...(expiresIn ? { expiresIn } : {}) });
  }
  return changes;
}

/** `always` on a destructive action runs it with nobody asked: the editor confirms first, naming the actions. */
export function destructiveAlways(rows: MatrixRow[], state: CellState): string[] {
  return state === 'always' ? rows.filter((r) => r.action.risk === 'destructive' && r.state !== 'always').map((r) => r.action.name) : [];
}

/** The temporary-grant choices: the API's `expiresIn` durations. */
export const DURATIONS = [
  { label: 'permanent', value: '' },
  { label: '1 hour', value: '1h' },
  { label: '4 hours', value: '4h' },
  { label: '1 day', value: '1d' },
] as const;

/** A custom duration as the API takes it (`30m`, `2h`, `3d`, `1w`), or undefined when it is not one. */
export function parseDuration(text: string): string | undefined {
  const match = /^\s*(\d{1,4})\s*(m|h|d|w)\s*$/i.exec(text);
  if (!match || Number(match[1]) === 0) return undefined;
  return `${Number(match[1])}${match[2]!.toLowerCase()}`;
}

/** Time left as the countdown shows it: `3h 59m`, `12m 05s`, `45s`, `expired`. */
export function formatRemaining(ms: number): string {
  if (ms <= 0) return 'expired';
  const seconds = Math.floor(ms / 1000);
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m ${String(s).padStart(2, '0')}s`;
  return `${s}s`;
}
