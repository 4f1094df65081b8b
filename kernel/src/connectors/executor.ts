import type { ProgressValue } from '@aipermission/plugin-sdk/protocol';
import type { InvocationScope } from '../invocations/index.js';
import type { ActionDescriptor, ConnectorDescriptor } from './catalog.js';

/** A progress report of a running action: the wire's shape (`$/progress`), never a copy of it. */
export type ProgressUpdate = ProgressValue;

/**
 * One invocation as the kernel hands it to whatever runs connectors. It
 * carries only what this call needs: the one target's non-secret config and
 * its invocation scope, which hands out the one profile's declared credential
 * fields (the credential lease, invariant 1) while the call runs and owns the
 * endpoints opened for it. Nothing else of the vault crosses this line.
 */
export interface Invocation {
  invocationId: string;
  connector: ConnectorDescriptor;
  action: ActionDescriptor;
  target: { id: string; kind: string; config: Record<string, unknown> };
  scope: InvocationScope;
  input: unknown;
  signal: AbortSignal;
  onProgress(update: ProgressUpdate): void;
  /** Per-database policy the executor enforces. */
  policy?: { requireBwrapForThirdParty: boolean };
}

/**
 * Thrown by an executor when it lost track of a call that may have taken
 * effect (the plugin crashed or had to be killed mid-call). The pipeline
 * records `outcome_unknown`, never `failed`, for it.
 */
export class OutcomeUnknown extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OutcomeUnknown';
  }
}

/** Runs actions; the plugin host implements it with sandboxed child processes. */
export interface ActionExecutor {
  /** Resolves with the action's output, or rejects (an ActionError for an action failure). */
  invoke(invocation: Invocation): Promise<unknown>;
  /**
   * Every secret value this executor ever handed to connector code that may
   * still hold it (a plugin process keeps what it was given): what comes
   * back from any call is redacted with all of them, not only the current
   * lease's.
   */
  handedSecrets?(): readonly string[];
}
