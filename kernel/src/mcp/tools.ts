import { storageRefusal } from '../lib/storage-errors.js';
import { isKernelError, KernelError } from '../lib/errors.js';
import { compileValidator } from '../lib/schema.js';
import type { Logger } from '../lib/log.js';
import type { AgentPrincipal } from '../lib/principal.js';
import type { TokenRecord } from '../tokens/index.js';
import { parseTargetRef, type Pipeline } from '../pipeline/index.js';
import type { ActionDescriptor, ConnectorCatalog, ConnectorDescriptor, ProgressUpdate } from '../connectors/index.js';
import type { TargetStore } from '../targets/index.js';
import type { GrantStore } from '../grants/index.js';
import type { ApprovalStore } from '../approvals/index.js';
import type { MessageStore } from '../messages/index.js';
import { MAX_MESSAGE_BYTES } from '../messages/index.js';
import { errorAnswer, hintFor, requestAnswer, withNotes, type ToolAnswer } from './format.js';

/** How long call_connector_action waits for an always_run action before answering `running`. */
export const CALL_WAIT_MS = 10_000;

const TARGET_REF = { type: 'string', minLength: 1, maxLength: 200, description: '<kind>:<target_id>:<profile_id>, from list_connector_targets' } as const;
const REQUEST_ID = { type: 'string', minLength: 1, maxLength: 64 } as const;

export interface ToolDefinition {
  name: string;
  description: string;
  inputSchema: { type: 'object'; properties: Record<string, object>; required?: string[]; additionalProperties: false };
  annotations: { title: string; readOnlyHint?: boolean; destructiveHint?: boolean; idempotentHint?: boolean; openWorldHint?: boolean };
}

export const TOOLS: ToolDefinition[] = [
  {
    name: 'list_connector_targets',
    description:
      'Lists the targets (servers, databases, queues...) this token may use, each with its target_ref, kind, names, credential profile and the actions it may call with their rule (always_run, approval_required). Start here.',
    inputSchema: { type: 'object', properties: {}, additionalProperties: false },
    annotations: { title: 'List my targets', readOnlyHint: true, openWorldHint: false },
  },
  {
    name: 'get_connector_help',
    description: 'How to use the connector of one target: what it does, how to call it, and its warnings. Read it before the first call to a target.',
    inputSchema: { type: 'object', properties: { target_ref: TARGET_REF }, required: ['target_ref'], additionalProperties: false },
    annotations: { title: 'Connector help', readOnlyHint: true, openWorldHint: false },
  },
  {
    name: 'get_connector_actions',
    description: 'The actions this token may call on one target: input schema, risk (read/write/destructive), bounds (timeout, output size) and rule.',
    inputSchema: { type: 'object', properties: { target_ref: TARGET_REF }, required: ['target_ref'], additionalProperties: false },
    annotations: { title: 'Connector actions', readOnlyHint: true, openWorldHint: false },
  },
  {
    name: 'call_connector_action',
    description:
      'Runs one action on a target through the permission gateway. Depending on the operator\'s rule it runs at once, waits for the operator\'s approval (status approval_pending: poll get_connector_action_request), or is refused. Give a short reason: the operator sees it. Reuse idempotency_key when you resend the same request after an error.',
    inputSchema: {
      type: 'object',
      properties: {
        target_ref: TARGET_REF,
        action_name: { type: 'string', minLength: 1, maxLength: 100 },
        input: { type: 'object', description: "The action's input, as get_connector_actions describes it." },
        reason: { type: 'string', maxLength: 2048, description: 'Why you need this, in one or two sentences, for the operator.' },
        idempotency_key: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._:-]+$' },
      },
      required: ['target_ref', 'action_name'],
      additionalProperties: false,
    },
    // It may run write or destructive actions (within the grants).
    annotations: { title: 'Call a connector action', readOnlyHint: false, destructiveHint: true, openWorldHint: true },
  },
  {
    name: 'get_connector_action_request',
    description: 'The current state of one of your requests: approval_pending and running are not final (poll again after retry_after_seconds); completed carries the output.',
    inputSchema: { type: 'object', properties: { request_id: REQUEST_ID }, required: ['request_id'], additionalProperties: false },
    annotations: { title: 'Request status', readOnlyHint: true, openWorldHint: false },
  },
  {
    name: 'cancel_connector_action_request',
    description: 'Withdraws one of your requests that is still waiting for approval.',
    inputSchema: { type: 'object', properties: { request_id: REQUEST_ID }, required: ['request_id'], additionalProperties: false },
    annotations: { title: 'Cancel a pending request', readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  },
  {
    name: 'send_operator_message',
    description: 'Leaves a short note for your operator (a question, a heads-up, why you need a grant). Never put secrets in it.',
    inputSchema: {
      type: 'object',
      properties: { text: { type: 'string', minLength: 1, maxLength: MAX_MESSAGE_BYTES } },
      required: ['text'],
      additionalProperties: false,
    },
    annotations: { title: 'Message the operator', readOnlyHint: false, destructiveHint: false, openWorldHint: false },
  },
];

const validators = new Map(TOOLS.map((tool) => [tool.name, compileValidator<Record<string, unknown>>(tool.inputSchema, `arguments for ${tool.name}`, 'the arguments object')]));

export interface ToolCallContext {
  /** Who is calling, as the MCP edge authenticated them (never a token string). */
  principal: AgentPrincipal;
  /** Forwards connector progress as MCP progress notifications (only when the client asked for them). */
  onProgress?: (update: ProgressUpdate) => void;
}

/** What the tools use of one unlocked database. */
export interface ToolsDatabase {
  readonly targets: Pick<TargetStore, 'cachedTarget' | 'cachedProfile'>;
  readonly catalog: ConnectorCatalog;
  readonly grants: Pick<GrantStore, 'decideFor'>;
  readonly approvals: Pick<ApprovalStore, 'get' | 'cancel'>;
  readonly messages: Pick<MessageStore, 'sendToOperator' | 'hasUndelivered' | 'takeUndelivered'>;
  expirePending(): Promise<number>;
}

export interface ToolsDeps {
  pipeline: Pick<Pipeline, 'call' | 'recordRejected'>;
  /** The unlocked database a principal acts in (423 when it is locked). */
  database(name: string): ToolsDatabase;
  /** The principal's token if it still works now, or its refusal. */
  currentToken(principal: AgentPrincipal): TokenRecord;
  log: Logger;
}

interface VisibleTarget {
  targetRef: string;
  kind: string;
  targetId: string;
  targetName: string;
  description: string;
  profileId: string;
  profileLabel: string;
  connector: ConnectorDescriptor | undefined;
  /** Action name -> its rule, from the grants module's one decision (never blocked or denied here). */
  rules: Map<string, 'always_run' | 'approval_required'>;
}

/**
 * The agent's whole surface, scoped to its token: discovery shows only
 * targets and actions it holds a non-blocked, unexpired grant for; calls go
 * through the one pipeline (grant before input validation, write-ahead audit).
 */
export function createTools(deps: ToolsDeps) {
  /** The principal's database and its token, checked as current (revoked or expired refuses). */
  const acting = (principal: AgentPrincipal) => ({ ws: deps.database(principal.database), token: deps.currentToken(principal) });

  const visibleTargets = async (principal: AgentPrincipal): Promise<VisibleTarget[]> => {
    const { ws, token } = acting(principal);
    const visible: VisibleTarget[] = [];
    // Invariant 4: what the agent is shown is what grants/ decides, action by
    // action, the same function the pipeline enforces with (from the mirror:
    // what the last committed change left; the pipeline re-checks every call).
    const actionsOf = (targetId: string) => {
      const target = ws.targets.cachedTarget(targetId);
      const connector = target ? ws.catalog.get(target.kind) : undefined;
      return connector ? [...connector.actions.keys()] : undefined;
    };
    for (const { targetId, profileId, decisions } of ws.grants.decideFor(token.id, actionsOf)) {
      const target = ws.targets.cachedTarget(targetId);
      const profile = ws.targets.cachedProfile(profileId);
      if (!target || !profile) continue;
      const rules = new Map<string, 'always_run' | 'approval_required'>();
      for (const [name, { decision }] of decisions) if (decision === 'always_run' || decision === 'approval_required') rules.set(name, decision);
      // Nothing it may call (everything blocked, expired or not granted): not visible at all.
      if (rules.size === 0) continue;
      visible.push({
        targetRef: `${target.kind}:${target.id}:${profile.id}`,
        kind: target.kind,
        targetId: target.id,
        targetName: target.name,
        description: target.description,
        profileId: profile.id,
        profileLabel: profile.label,
        connector: ws.catalog.get(target.kind),
        rules,
      });
    }
    return visible;
  };

  /** The actions of a visible target this token may call, with their rule. */
  const callableActions = (t: VisibleTarget): Array<{ action: ActionDescriptor; rule: 'always_run' | 'approval_required' }> => {
    if (!t.connector) return [];
    const out: Array<{ action: ActionDescriptor; rule: 'always_run' | 'approval_required' }> = [];
    for (const action of t.connector.actions.values()) {
      const rule = t.rules.get(action.name);
      if (rule) out.push({ action, rule });
    }
    return out;
  };

  const findVisible = async (principal: AgentPrincipal, targetRef: string): Promise<VisibleTarget> => {
    parseTargetRef(targetRef);
    const found = (await visibleTargets(principal)).find((t) => t.targetRef === targetRef);
    if (!found) {
      throw new KernelError('unknown_target', `There is no target "${targetRef.slice(0, 200)}" for this token. list_connector_targets shows the ones you can use.`, { status: 404 });
    }
    return found;
  };

  const annotationsOf = (action: ActionDescriptor) =>
    (action as ActionDescriptor & { annotations?: Record<string, boolean> }).annotations ?? {
      readOnlyHint: action.risk === 'read',
      destructiveHint: action.risk === 'destructive',
    };

  const handlers: Record<string, (args: Record<string, unknown>, ctx: ToolCallContext) => Promise<ToolAnswer>> = {
    async list_connector_targets(_args, ctx) {
      const targets = await visibleTargets(ctx.principal);
      const listed = targets.map((t) => ({
        target_ref: t.targetRef,
        kind: t.kind,
        name: t.targetName,
        ...(t.description ? { description: t.description } : {}),
        profile: t.profileLabel,
        connector: t.connector ? { title: t.connector.title, version: t.connector.version } : null,
        ...(t.connector ? {} : { note: 'No connector for this kind is installed right now; calls will fail until the operator installs it.' }),
        actions: callableActions(t).map(({ action, rule }) => ({ name: action.name, risk: action.risk, rule })),
      }));
      return {
        structured: { targets: listed, ...(listed.length === 0 ? { assistant_hint: 'This token has no targets yet. Ask your operator to grant it access.' } : {}) },
        headline: listed.length === 0 ? 'No targets are available to this token.' : `${listed.length} target(s) available.`,
      };
    },
    async get_connector_help(args, ctx) {
      const t = await findVisible(ctx.principal, String(args.target_ref));
      const help = t.connector?.help;
      return {
        structured: {
          target_ref: t.targetRef,
          kind: t.kind,
          name: t.targetName,
          connector: t.connector ? { title: t.connector.title, version: t.connector.version, description: t.connector.description ?? '' } : null,
          summary: help?.summary ?? t.connector?.description ?? '',
          ...(help?.usage ? { usage: help.usage } : {}),
          warnings: help?.warnings ?? [],
          general: [
            'Every call goes through the operator\'s permission gateway: it may run at once, wait for approval, or be refused.',
            'Give a short reason with each call; the operator sees it.',
            'Outputs are bounded and secrets are redacted; never ask for credentials.',
          ],
        },
        headline: `Help for ${t.targetName} (${t.kind}).`,
      };
    },
    async get_connector_actions(args, ctx) {
      const t = await findVisible(ctx.principal, String(args.target_ref));
      const actions = callableActions(t).map(({ action, rule }) => ({
        name: action.name,
        title: action.title,
        description: action.description,
        risk: action.risk,
        rule,
        annotations: annotationsOf(action),
        limits: { timeout_ms: action.limits.timeoutMs, max_output_bytes: action.limits.maxOutputBytes },
        input_schema: action.inputSchema,
      }));
      return { structured: { target_ref: t.targetRef, actions }, headline: `${actions.length} action(s) on ${t.targetName}.` };
    },
    async call_connector_action(args, ctx) {
      let outcome: Awaited<ReturnType<Pipeline['call']>>;
      try {
        outcome = await deps.pipeline.call(
        ctx.principal,
        {
          targetRef: String(args.target_ref),
          action: String(args.action_name),
          ...(args.input !== undefined ? { input: args.input } : {}),
          ...(typeof args.reason === 'string' ? { reason: args.reason } : {}),
          ...(typeof args.idempotency_key === 'string' ? { idempotencyKey: args.idempotency_key } : {}),
        },
        { waitMs: CALL_WAIT_MS, ...(ctx.onProgress ? { onProgress: ctx.onProgress } : {}) },
        );
      } catch (error) {
        // A refusal is an answer, not a failure: blocked and no grant read the same.
        if (isKernelError(error) && error.code === 'not_permitted') {
          return { structured: { status: 'blocked', message: error.message, assistant_hint: hintFor('blocked') }, headline: error.message };
        }
        throw error;
      }
      if (outcome.kind === 'stopped') {
        return {
          structured: { status: 'stopped', message: outcome.message, assistant_hint: 'Nothing ran. Ask your operator to switch MCP execution on; discovery still works meanwhile.' },
          headline: outcome.message,
        };
      }
      const answer = requestAnswer(outcome.request);
      return outcome.replayed ? { ...answer, structured: { ...answer.structured, replayed: true } } : answer;
    },
    async get_connector_action_request(args, ctx) {
      const { ws, token } = acting(ctx.principal);
      await ws.expirePending();
      const request = await ws.approvals.get(String(args.request_id));
      // Another token's request is reported as absent.
      if (!request || request.tokenId !== token.id) throw new KernelError('not_found', `You have no request "${String(args.request_id).slice(0, 64)}".`, { status: 404 });
      return requestAnswer(request);
    },
    async cancel_connector_action_request(args, ctx) {
      const { ws, token } = acting(ctx.principal);
      await ws.expirePending();
      return requestAnswer(await ws.approvals.cancel(String(args.request_id), token.id, `token:${token.id}`));
    },
    async send_operator_message(args, ctx) {
      const { ws, token } = acting(ctx.principal);
      const message = await ws.messages.sendToOperator({ tokenId: token.id, body: String(args.text) }, `token:${token.id}`);
      return { structured: { message_id: message.id, delivered_to: 'operator', sent_at: message.createdAt }, headline: 'Your note was left for the operator.' };
    },
  };

  /** Runs one tool call and renders the answer, with any notes waiting for this token. */
  async function call(name: string, rawArgs: unknown, ctx: ToolCallContext): Promise<ToolAnswer> {
    const handler = handlers[name];
    let answer: ToolAnswer;
    if (!handler) {
      answer = errorAnswer('unknown_tool', `There is no tool "${name.slice(0, 100)}". The tools are: ${TOOLS.map((t) => t.name).join(', ')}.`);
    } else {
      try {
        let args: Record<string, unknown>;
        try {
          args = validators.get(name)!(rawArgs ?? {});
        } catch (error) {
          // A malformed call is still an attempt: audited like any other refused call.
          if (name === 'call_connector_action' && isKernelError(error)) {
            const raw = (rawArgs ?? {}) as Record<string, unknown>;
            await deps.pipeline.recordRejected(ctx.principal, { targetRef: String(raw.target_ref ?? ''), action: String(raw.action_name ?? ''), input: undefined }, error);
          }
          throw error;
        }
        answer = await handler(args, ctx);
      } catch (error) {
        if (!isKernelError(error)) {
          deps.log(`tool ${name} failed`, error);
          const storage = storageRefusal(error);
          answer = storage ? errorAnswer(storage.code, storage.message) : errorAnswer('internal_error', 'The gateway could not answer this call; the operator can find details in its log.');
        } else if (['invalid_token', 'token_revoked', 'token_expired', 'token_conflict', 'too_many_attempts'].includes(error.code)) {
          throw error;
        } else {
          answer = errorAnswer(error.code, error.message);
        }
      }
    }
    // Notes from the operator ride along with whatever this call answers.
    try {
      // Only to a token that still works (acting refuses a revoked or expired one).
      const { ws, token } = acting(ctx.principal);
      if (ws.messages.hasUndelivered(token.id)) {
        answer = withNotes(answer, await ws.messages.takeUndelivered(token.id));
      }
    } catch {
      // The token stopped working mid-call: the call's own answer says so.
    }
    return answer;
  }

  return { call, tools: TOOLS };
}
