import { canonicalJson, sha256Hex } from '../lib/canonical.mjs';
import { isoAt, type Clock } from '../lib/clock.js';
import { errors, KernelError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import type { AgentPrincipal, Principal } from '../lib/principal.js';
import { grantRefusal } from '../grants/index.js';
import { KERNEL_LIMITS } from '../connectors/index.js';
import type { AdmittedCall } from '../approvals/index.js';
import type { TokenRecord } from '../tokens/index.js';
import type { PipelineDatabase } from './ports.js';
import { recordRejected, recordStopped, type Attempter } from './refusals.js';
import { truncateUtf8 } from './bound.js';

export interface CallInput {
  /** `<kind>:<target_id>:<profile_id>` */
  targetRef: string;
  action: string;
  input?: unknown;
  reason?: string;
  idempotencyKey?: string;
}

/** A call the grant allows, with everything later stages need and nothing they must look up again. */
export interface AuthorizedCall {
  db: PipelineDatabase;
  /** Who is asking, as audit entries name them. */
  who: Attempter;
  /** The agent's token, or undefined for the operator. */
  token: TokenRecord | undefined;
  rule: 'always_run' | 'approval_required';
  call: AdmittedCall;
  /** The input as the agent sent it (runs from memory for always_run). */
  input: unknown;
}

export type Authorization = { kind: 'stopped'; message: string } | { kind: 'authorized'; authorized: AuthorizedCall };

const TARGET_REF = /^([a-z][a-z0-9_-]{0,63}):(tgt_[0-9a-z]{16}):(prf_[0-9a-z]{16})$/;

export function parseTargetRef(ref: string): { kind: string; targetId: string; profileId: string } {
  const match = TARGET_REF.exec(ref);
  if (!match) {
    throw new KernelError(
      'invalid_target_ref',
      `"${truncateUtf8(ref, 200)}" is not a target_ref. It reads <kind>:<target_id>:<profile_id>; list_connector_targets shows yours.`,
      { status: 400 },
    );
  }
  return { kind: match[1]!, targetId: match[2]!, profileId: match[3]! };
}

/**
 * Stage 1, authorize: the switch, the token, the target and the grant, in
 * that order, all from memory. The grant is decided before anything about
 * the action's schema is looked at, so an unauthorized token learns nothing
 * from validation errors; a refusal is recorded (invariant 4).
 *
 * The operator (an operator principal: a session that proved the database's
 * password, as the UI's and CLI's own actions are) needs no grant and is not
 * held by the MCP switch, which stops agents; everything else is the same.
 */
export function createAuthorize(deps: { clock: Clock; log: Logger; database: (name: string) => PipelineDatabase; currentToken: (principal: AgentPrincipal) => TokenRecord }) {
  const { clock, log } = deps;
  return async function authorize(principal: Principal, input: CallInput): Promise<Authorization> {
    const db = deps.database(principal.database);
    const token = principal.kind === 'agent' ? deps.currentToken(principal) : undefined;
    const who: Attempter = token ? { actor: `token:${token.id}`, subject: { tokenId: token.id } } : { actor: (principal as { actor: string }).actor, subject: {} };
    const reject = async (error: KernelError): Promise<never> => {
      await recordRejected(db, who, input, error.code, error.message, log);
      throw error;
    };

    // The global switch: discovery still works, nothing an agent asks for runs.
    if (token && !db.mcp.isRunning()) {
      await recordStopped(db, who, input, log);
      return { kind: 'stopped', message: 'The operator has switched MCP execution off for now. Nothing was run; ask your operator to switch it on.' };
    }

    let ref: ReturnType<typeof parseTargetRef>;
    try {
      ref = parseTargetRef(String(input.targetRef));
    } catch (error) {
      return reject(error as KernelError);
    }
    const target = db.targets.cachedTarget(ref.targetId);
    const profile = target ? db.targets.cachedProfile(ref.profileId) : undefined;
    if (!target || !profile || target.kind !== ref.kind || profile.targetId !== target.id) {
      return reject(
        new KernelError('unknown_target', `There is no target "${truncateUtf8(input.targetRef, 200)}". list_connector_targets shows the targets this token can use.`, {
          status: 404,
        }),
      );
    }
    if (typeof input.action !== 'string' || input.action.length === 0) return reject(errors.invalid('action_name is required.'));

    const reason = input.reason ?? '';
    if (typeof reason !== 'string' || Buffer.byteLength(reason, 'utf8') > KERNEL_LIMITS.maxReasonBytes) {
      return reject(errors.invalid(`reason must be a string of at most ${KERNEL_LIMITS.maxReasonBytes} bytes.`));
    }
    const rawInput = input.input === undefined ? {} : input.input;
    let inputText: string;
    try {
      inputText = canonicalJson(rawInput);
    } catch {
      return reject(errors.invalid('input must be JSON.'));
    }
    const redactor = db.redaction.current();
    const connector = db.catalog.get(target.kind);
    const call: AdmittedCall = {
      actor: who.actor,
      tokenId: token?.id ?? '',
      tokenName: token?.name ?? '',
      ...(token ? {} : { operatorActor: who.actor }),
      target: { id: target.id, name: target.name, kind: target.kind },
      profile: { id: profile.id, label: profile.label },
      connector: { id: target.kind, version: connector?.version ?? '' },
      action: truncateUtf8(input.action, 100),
      reason: redactor.text(reason),
      inputText,
      inputHash: sha256Hex(inputText),
      inputPreview: canonicalJson(redactor.value(rawInput)),
      createdAt: isoAt(clock.now()),
    };

    if (!token) return { kind: 'authorized', authorized: { db, who, token, rule: 'always_run', call, input: rawInput } };
    const decision = await db.grants.evaluate(token.id, target.id, profile.id, input.action);
    if (decision.decision === 'denied' || decision.decision === 'blocked') {
      try {
        await db.admissions.recordBlocked(call, decision.decision);
      } catch (error) {
        log('could not record a blocked call', error);
      }
      throw grantRefusal();
    }
    return { kind: 'authorized', authorized: { db, who, token, rule: decision.decision, call, input: rawInput } };
  };
}
