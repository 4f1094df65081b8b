import { isoAt, type Clock } from '../lib/clock.js';
import { errors, KernelError } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import { Where } from '../lib/where.js';
import type { SqlDb, SqlQueries, SqlTx } from '../vault/index.js';
import type { Audit } from '../audit/index.js';

export type GrantRule = 'always_run' | 'approval_required' | 'blocked';
export const GRANT_RULES: readonly GrantRule[] = ['always_run', 'approval_required', 'blocked'];
/** A grant row for every action of the target's connector. A specific row and a wildcard row combine; the stricter wins. */
export const ANY_ACTION = '*';

export interface Grant {
  id: string;
  tokenId: string;
  targetId: string;
  profileId: string;
  action: string;
  rule: GrantRule;
  expiresAt: string | null;
  createdAt: string;
  updatedAt: string;
}

/**
 * The outcome of evaluating the grants for one call (invariant 4):
 * `denied` when no unexpired row applies, otherwise the strictest rule of the
 * rows that apply (blocked > approval_required > always_run: deny wins).
 */
export interface GrantDecision {
  decision: GrantRule | 'denied';
  /** The row that decided, when one did. */
  grant: Grant | undefined;
}

interface Row {
  id: string;
  token_id: string;
  target_id: string;
  profile_id: string;
  action: string;
  rule: GrantRule;
  expires_at: string | null;
  created_at: string;
  updated_at: string;
}

const toGrant = (row: Row): Grant => ({
  id: row.id,
  tokenId: row.token_id,
  targetId: row.target_id,
  profileId: row.profile_id,
  action: row.action,
  rule: row.rule,
  expiresAt: row.expires_at,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

const STRICTNESS: Record<GrantRule, number> = { always_run: 0, approval_required: 1, blocked: 2 };

export interface GrantSetInput {
  tokenId: string;
  targetId: string;
  profileId: string;
  action: string;
  rule: GrantRule;
  expiresAt?: string | null;
}

export interface GrantChange {
  tokenId: string;
  targetId: string;
  profileId: string;
}

export interface GrantStore {
  /** Creates or replaces the rule for token x target x profile x action. */
  set(input: GrantSetInput, actor: string): Promise<Grant>;
  remove(id: string, actor: string): Promise<void>;
  list(filter?: { tokenId?: string; targetId?: string; profileId?: string }): Promise<Grant[]>;
  /** A token's grants from the in-memory mirror (what committed last). */
  cachedForToken(tokenId: string): Grant[];
  /**
   * Invariant 4, the one decision: what token x target x profile x action
   * gets now (the strictest unexpired row among the action's own and `*`;
   * no row is denied), from the mirror. Enforcement (`evaluate`) and what
   * discovery shows the agent (`decideFor`) both come from here, so they
   * cannot drift apart.
   */
  decide(tokenId: string, targetId: string, profileId: string, action: string): GrantDecision;
  /**
   * Discovery: every target x profile the token holds any row on, with the
   * decision for each of `actions(targetId)` (a connector's action names;
   * undefined when no connector is installed for the target).
   */
  decideFor(tokenId: string, actions: (targetId: string) => readonly string[] | undefined): Array<{ targetId: string; profileId: string; decisions: Map<string, GrantDecision> }>;
  /**
   * Pass `q` (a transaction) when evaluating inside a write, to see that
   * transaction's changes; without it the in-memory mirror answers (decide).
   */
  evaluate(tokenId: string, targetId: string, profileId: string, action: string, q?: SqlQueries): Promise<GrantDecision>;
  /** Re-reads the grants inside a transaction whose cascade removed some (target or profile deleted). */
  reload(tx: SqlTx): Promise<void>;
  /**
   * What a row decides now, with every row it combines with (from the mirror):
   * its action's effective rule, and the stricter row that overrides it, if
   * one does. A `*` row's rule is what the actions without a row of their own get.
   */
  effective(grant: Grant): EffectiveGrant;
}

/** A grant row's effect: `overriddenBy` names the row whose rule applies instead of this row's (stricter wins), or null. */
export interface EffectiveGrant {
  rule: GrantRule | 'denied';
  overriddenBy: { id: string; action: string; rule: GrantRule } | null;
  /** This row has expired, so it counts for nothing. */
  expired: boolean;
}

export async function createGrantStore(deps: {
  db: SqlDb;
  clock: Clock;
  audit: Pick<Audit, 'record'>;
  /** Checks that the token, target and profile exist and belong together; throws a clear error if not. */
  checkRefs: (input: GrantSetInput) => Promise<void>;
  /** Called inside the change's transaction: pending approvals the change affects are re-checked. */
  onChanged: (tx: SqlTx, change: GrantChange) => Promise<void>;
}): Promise<GrantStore> {
  const { db, clock, audit } = deps;
  // Every grant, by token|target|profile, mirrored in memory: evaluating a
  // call's grant is a map lookup. Rebuilt from the table inside each changing
  // transaction and swapped in when it commits.
  const key = (tokenId: string, targetId: string, profileId: string) => `${tokenId}|${targetId}|${profileId}`;
  let mirror = new Map<string, Row[]>();
  let byToken = new Map<string, Grant[]>();
  const build = (rows: Row[]) => {
    const next = new Map<string, Row[]>();
    const tokens = new Map<string, Grant[]>();
    for (const row of rows) {
      const k = key(row.token_id, row.target_id, row.profile_id);
      const list = next.get(k);
      if (list) list.push(row);
      else next.set(k, [row]);
      const grants = tokens.get(row.token_id);
      if (grants) grants.push(toGrant(row));
      else tokens.set(row.token_id, [toGrant(row)]);
    }
    return { next, tokens };
  };
  ({ next: mirror, tokens: byToken } = build(await db.all<Row>('SELECT * FROM grants ORDER BY token_id, target_id, profile_id, action')));
  const reload = async (tx: SqlTx) => {
    const built = build(await tx.all<Row>('SELECT * FROM grants ORDER BY token_id, target_id, profile_id, action'));
    tx.afterCommit(() => {
      mirror = built.next;
      byToken = built.tokens;
    });
  };

  const evaluateRows = (rows: Row[], nowMs: number): GrantDecision => {
    let best: Row | undefined;
    for (const row of rows) {
      if (row.expires_at && Date.parse(row.expires_at) <= nowMs) continue; // an expired grant is no grant
      if (!best || STRICTNESS[row.rule] > STRICTNESS[best.rule]) best = row;
    }
    return best ? { decision: best.rule, grant: toGrant(best) } : { decision: 'denied', grant: undefined };
  };

  const store: GrantStore = {
    async set(input, actor) {
      if (!GRANT_RULES.includes(input.rule)) {
        throw errors.invalid(`rule must be one of ${GRANT_RULES.join(', ')}.`);
      }
      if (!/^(\*|[a-z][a-z0-9_]{0,63})$/.test(input.action)) {
        throw errors.invalid(`"${input.action}" is not an action name (snake_case) or "*" for every action.`);
      }
      const nowMs = clock.now();
      let expiresAt: string | null = null;
      if (input.expiresAt) {
        const at = Date.parse(input.expiresAt);
        if (Number.isNaN(at)) throw errors.invalid(`expiresAt "${input.expiresAt}" is not an ISO-8601 time.`);
        if (at <= nowMs) throw errors.invalid('expiresAt is in the past; a temporary grant must end in the future.');
        expiresAt = isoAt(at);
      }
      await deps.checkRefs(input);
      const now = isoAt(nowMs);
      return db.write(async (tx) => {
        const existing = await tx.get<Row>('SELECT * FROM grants WHERE token_id = ? AND target_id = ? AND profile_id = ? AND action = ?', [
          input.tokenId,
          input.targetId,
          input.profileId,
          input.action,
        ]);
        const row: Row = existing
          ? { ...existing, rule: input.rule, expires_at: expiresAt, updated_at: now }
          : {
              id: newId('grt'),
              token_id: input.tokenId,
              target_id: input.targetId,
              profile_id: input.profileId,
              action: input.action,
              rule: input.rule,
              expires_at: expiresAt,
              created_at: now,
              updated_at: now,
            };
        if (existing) {
          await tx.run('UPDATE grants SET rule = ?, expires_at = ?, updated_at = ? WHERE id = ?', [row.rule, row.expires_at, now, row.id]);
        } else {
          await tx.run(
            'INSERT INTO grants (id, token_id, target_id, profile_id, action, rule, expires_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
            [row.id, row.token_id, row.target_id, row.profile_id, row.action, row.rule, row.expires_at, now, now],
          );
        }
        await audit.record(tx, {
          actor,
          event: existing ? 'grant.updated' : 'grant.created',
          subject: { grantId: row.id, tokenId: row.token_id, targetId: row.target_id, profileId: row.profile_id },
          payload: { action: row.action, rule: row.rule, expiresAt: row.expires_at, ...(existing ? { previousRule: existing.rule, previousExpiresAt: existing.expires_at } : {}) },
        });
        await deps.onChanged(tx, { tokenId: row.token_id, targetId: row.target_id, profileId: row.profile_id });
        await reload(tx);
        return toGrant(row);
      });
    },
    reload,
    async remove(id, actor) {
      await db.write(async (tx) => {
        const row = await tx.get<Row>('SELECT * FROM grants WHERE id = ?', [id]);
        if (!row) throw errors.notFound('Grant', id);
        await tx.run('DELETE FROM grants WHERE id = ?', [id]);
        await audit.record(tx, {
          actor,
          event: 'grant.deleted',
          subject: { grantId: id, tokenId: row.token_id, targetId: row.target_id, profileId: row.profile_id },
          payload: { action: row.action, rule: row.rule },
        });
        await deps.onChanged(tx, { tokenId: row.token_id, targetId: row.target_id, profileId: row.profile_id });
        await reload(tx);
      });
    },
    async list(filter = {}) {
      const where = new Where().add('token_id = ?', filter.tokenId).add('target_id = ?', filter.targetId).add('profile_id = ?', filter.profileId);
      const rows = await db.all<Row>(`SELECT * FROM grants ${where} ORDER BY token_id, target_id, profile_id, action`, where.params);
      return rows.map(toGrant);
    },
    cachedForToken(tokenId) {
      return byToken.get(tokenId) ?? [];
    },
    effective(grant) {
      const nowMs = clock.now();
      const expired = grant.expiresAt !== null && Date.parse(grant.expiresAt) <= nowMs;
      const rows = (mirror.get(key(grant.tokenId, grant.targetId, grant.profileId)) ?? []).filter((row) => row.action === grant.action || row.action === ANY_ACTION);
      const decision = evaluateRows(rows, nowMs);
      // An equally strict row is no override: this row's rule is the rule either way.
      const overridden = decision.grant !== undefined && decision.grant.id !== grant.id && (expired || STRICTNESS[decision.grant.rule] > STRICTNESS[grant.rule]);
      return {
        rule: decision.decision,
        overriddenBy: overridden ? { id: decision.grant!.id, action: decision.grant!.action, rule: decision.grant!.rule } : null,
        expired,
      };
    },
    decide(tokenId, targetId, profileId, action) {
      const rows = (mirror.get(key(tokenId, targetId, profileId)) ?? []).filter((row) => row.action === action || row.action === ANY_ACTION);
      return evaluateRows(rows, clock.now());
    },
    decideFor(tokenId, actions) {
      const pairs = new Map<string, { targetId: string; profileId: string; names: Set<string> }>();
      for (const grant of byToken.get(tokenId) ?? []) {
        const k = `${grant.targetId}|${grant.profileId}`;
        const pair = pairs.get(k) ?? { targetId: grant.targetId, profileId: grant.profileId, names: new Set<string>() };
        pair.names.add(grant.action);
        pairs.set(k, pair);
      }
      return [...pairs.values()].map((pair) => {
        // With a connector: its actions. Without one: the rows' own action names (`*` included), so a target keeps its place.
        const names = actions(pair.targetId) ?? [...pair.names];
        const decisions = new Map<string, GrantDecision>();
        for (const name of names) decisions.set(name, store.decide(tokenId, pair.targetId, pair.profileId, name));
        return { targetId: pair.targetId, profileId: pair.profileId, decisions };
      });
    },
    async evaluate(tokenId, targetId, profileId, action, q) {
      if (!q) return store.decide(tokenId, targetId, profileId, action);
      const rows = await q.all<Row>('SELECT * FROM grants WHERE token_id = ? AND target_id = ? AND profile_id = ? AND action IN (?, ?)', [
        tokenId,
        targetId,
        profileId,
        action,
        ANY_ACTION,
      ]);
      return evaluateRows(rows, clock.now());
    },
  };
  return store;
}

/** The refusal an agent sees for both "blocked" and "no grant": it learns nothing it could use to get around the rule. */
export function grantRefusal(): KernelError {
  return new KernelError(
    'not_permitted',
    'This token is not permitted to run that action on that target. Ask your operator to grant it if you need it.',
    { status: 403 },
  );
}
