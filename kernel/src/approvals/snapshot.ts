import { canonicalHash } from '../lib/canonical.mjs';
import type { Clock } from '../lib/clock.js';
import type { SqlQueries } from '../vault/index.js';
import { tokenState, type TokenStore } from '../tokens/index.js';
import type { GrantStore } from '../grants/index.js';
import type { TargetStore } from '../targets/index.js';
import type { ConnectorCatalog } from '../connectors/index.js';

/**
 * What the operator approved, reduced to the facts that must not change
 * between approval and run (invariant 5). Run recomputes it; any difference
 * makes the request `stale` and names what changed.
 */
export interface ApprovalSnapshot {
  token: { id: string; state: string; expiresAt: string | null };
  grant: { id: string | null; rule: string; expiresAt: string | null };
  target: { id: string; configRevision: number } | null;
  profile: { id: string; configRevision: number; secretRevision: number } | null;
  /** `integrity`: the code that would run (invariant 5 and 8: another build of the same version is another connector). */
  connector: { id: string; version: string; manifestHash: string; integrity: string | null } | null;
  action: { name: string; definitionHash: string } | null;
  inputHash: string;
}

export interface SnapshotSubject {
  tokenId: string;
  targetId: string;
  profileId: string;
  connectorId: string;
  action: string;
  inputHash: string;
}

/** What a snapshot is computed from: one method of each store, no more. */
export interface SnapshotSources {
  tokens: Pick<TokenStore, 'get'>;
  grants: Pick<GrantStore, 'evaluate'>;
  targets: Pick<TargetStore, 'revisions'>;
  catalog: Pick<ConnectorCatalog, 'get'>;
  clock: Clock;
}

/** With `q` (a transaction) it sees that transaction's changes; without it, the in-memory mirrors answer. */
export async function computeSnapshot(q: SqlQueries | undefined, sources: SnapshotSources, subject: SnapshotSubject): Promise<ApprovalSnapshot> {
  const token = sources.tokens.get(subject.tokenId);
  const decision = await sources.grants.evaluate(subject.tokenId, subject.targetId, subject.profileId, subject.action, q);
  const revisions = await sources.targets.revisions(q, subject.targetId, subject.profileId);
  const connector = sources.catalog.get(subject.connectorId);
  const action = connector?.actions.get(subject.action);
  return {
    token: token
      ? { id: token.id, state: tokenState(token, sources.clock.now()), expiresAt: token.expiresAt }
      : { id: subject.tokenId, state: 'deleted', expiresAt: null },
    grant: { id: decision.grant?.id ?? null, rule: decision.decision, expiresAt: decision.grant?.expiresAt ?? null },
    target: revisions.target ? { id: subject.targetId, configRevision: revisions.target.configRevision } : null,
    profile: revisions.profile ? { id: subject.profileId, ...revisions.profile } : null,
    connector: connector ? { id: connector.id, version: connector.version, manifestHash: connector.manifestHash, integrity: connector.integrity ?? null } : null,
    action: action ? { name: action.name, definitionHash: action.definitionHash } : null,
    inputHash: subject.inputHash,
  };
}

export function snapshotHash(snapshot: ApprovalSnapshot): string {
  return canonicalHash(snapshot);
}

/** Human sentences naming every part that drifted; empty when nothing did. */
export function describeDrift(before: ApprovalSnapshot, now: ApprovalSnapshot): string[] {
  const reasons: string[] = [];
  if (now.token.state !== 'active') reasons.push(`the token is ${now.token.state}`);
  else if (before.token.expiresAt !== now.token.expiresAt || before.token.state !== now.token.state) reasons.push("the token's expiry changed");
  if (before.grant.rule !== now.grant.rule) {
    reasons.push(`the grant changed (${before.grant.rule} -> ${now.grant.rule === 'denied' ? 'no grant' : now.grant.rule})`);
  } else if (before.grant.id !== now.grant.id || before.grant.expiresAt !== now.grant.expiresAt) {
    reasons.push("the grant's expiry changed");
  }
  if (!now.target) reasons.push('the target was deleted');
  else if (before.target?.configRevision !== now.target.configRevision) reasons.push('the target configuration changed');
  if (!now.profile) reasons.push('the credential profile was deleted');
  else {
    if (before.profile?.configRevision !== now.profile.configRevision) reasons.push('the credential profile changed');
    if (before.profile?.secretRevision !== now.profile.secretRevision) reasons.push("the credential profile's secret changed");
  }
  if (!now.connector) reasons.push('the connector is no longer installed');
  else if (before.connector?.version !== now.connector.version) reasons.push(`the connector was upgraded (${before.connector?.version} -> ${now.connector.version})`);
  else if (before.connector?.manifestHash !== now.connector.manifestHash) reasons.push("the connector's manifest changed");
  // A snapshot from before integrity was recorded counts as another build: stale, never silently run.
  else if ((before.connector?.integrity ?? null) !== now.connector.integrity) reasons.push("the connector's code changed");
  if (!now.action) reasons.push('the action no longer exists');
  else if (before.action?.definitionHash !== now.action.definitionHash) reasons.push("the action's definition changed");
  if (before.inputHash !== now.inputHash) reasons.push('the input changed');
  return reasons;
}
