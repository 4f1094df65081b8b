import { canonicalHash } from '../lib/canonical.mjs';
import { errors, KernelError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { auditUnavailable } from '../audit/index.js';
import { KERNEL_LIMITS, type ActionDescriptor, type ConnectorDescriptor } from '../connectors/index.js';
import type { ActionRequest, RequestRow } from '../approvals/index.js';
import type { AuthorizedCall, CallInput } from './authorize.js';
import type { PipelineDatabase } from './ports.js';
import { recordRejected } from './refusals.js';
import { truncateUtf8 } from './bound.js';

const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,128}$/;

export type Admission =
  /** Recorded and to run now (always_run): its intent entry is committed. */
  | { kind: 'run'; row: RequestRow; connector: ConnectorDescriptor; action: ActionDescriptor }
  /** Recorded and waiting for the operator, or an earlier request replayed by its idempotency key. */
  | { kind: 'recorded'; request: ActionRequest; replayed: boolean };

export function resolveConnector(db: Pick<PipelineDatabase, 'catalog'>, kind: string, actionName: string): { connector: ConnectorDescriptor; action: ActionDescriptor } {
  const connector = db.catalog.get(kind);
  if (!connector) {
    throw new KernelError('connector_unavailable', `No connector for "${kind}" is installed, so this target cannot run actions now. Ask your operator.`, { status: 409 });
  }
  const action = connector.actions.get(actionName);
  if (!action) {
    throw new KernelError('unknown_action', `The ${kind} connector has no action "${truncateUtf8(actionName, 100)}". get_connector_actions lists the ones you may call.`, {
      status: 404,
    });
  }
  return { connector, action };
}

/**
 * Stage 2, admit: the action and its input are checked against the
 * connector's schema, then the approvals module records the request, its
 * snapshot and its write-ahead intent entry (invariants 5 and 6). Nothing
 * runs if that entry could not be committed (fail closed).
 */
export function createAdmit(deps: { log: Logger }) {
  const { log } = deps;
  return async function admit({ db, who, token, rule, call, input: rawInput }: AuthorizedCall, input: CallInput): Promise<Admission> {
    const reject = async (error: KernelError): Promise<never> => {
      await recordRejected(db, who, input, error.code, error.message, log);
      throw error;
    };
    let resolved: ReturnType<typeof resolveConnector>;
    try {
      resolved = resolveConnector(db, call.target.kind, input.action);
    } catch (error) {
      return reject(error as KernelError);
    }
    const { connector, action } = resolved;
    const inputBytes = Buffer.byteLength(call.inputText, 'utf8');
    if (inputBytes > KERNEL_LIMITS.maxInputBytes) {
      return reject(errors.invalid(`The input is ${inputBytes} bytes; the most an action accepts is ${KERNEL_LIMITS.maxInputBytes} bytes.`));
    }
    const problem = action.validateInput(rawInput);
    if (problem) return reject(new KernelError('invalid_input', `The input for ${call.target.kind}.${action.name} is invalid: ${problem}`, { status: 400 }));
    const key = input.idempotencyKey;
    if (key !== undefined && (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key))) {
      return reject(errors.invalid('idempotency_key must be 1-128 characters of letters, digits and . _ : -'));
    }
    const fingerprint = canonicalHash({ targetId: call.target.id, profileId: call.profile.id, action: action.name, inputHash: call.inputHash });

    let created: Awaited<ReturnType<PipelineDatabase['admissions']['admit']>>;
    try {
      created = await db.admissions.admit({ ...call, action: action.name, connector: { id: connector.id, version: connector.version } }, rule, key === undefined ? undefined : { key, fingerprint });
    } catch (error) {
      if (error instanceof KernelError) {
        if (error.code === 'idempotency_conflict') await recordRejected(db, who, input, error.code, error.message, log);
        throw error;
      }
      log('could not write the request and its intent entry', error);
      throw auditUnavailable(error);
    }
    if (token) db.tokens.touch(token.id);
    if (created.replayed || created.row.status !== 'running') {
      return { kind: 'recorded', request: created.request ?? (await db.approvals.require(created.row.id)), replayed: created.replayed };
    }
    return { kind: 'run', row: created.row, connector, action };
  };
}
