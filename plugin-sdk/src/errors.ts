/**
 * How an action failed, from the point of view of the person who must act:
 * - `config`: the target or credentials are wrong (fix the configuration);
 * - `transient`: try again later (network blip, timeout, busy server);
 * - `system`: the connector itself failed (a bug; see the plugin log).
 */
export type ActionErrorKind = 'config' | 'transient' | 'system';

/**
 * An action failure a connector reports on purpose. Only `kind`, `retryable`
 * and `userMessage` ever cross the wire; internal detail belongs in the
 * plugin's log (stderr), never in the message an agent or operator sees.
 */
export class ActionError extends Error {
  readonly kind: ActionErrorKind;
  readonly retryable: boolean;
  readonly userMessage: string;

  constructor(kind: ActionErrorKind, userMessage: string, options: { retryable?: boolean; cause?: unknown } = {}) {
    super(userMessage, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ActionError';
    this.kind = kind;
    this.retryable = options.retryable ?? kind === 'transient';
    this.userMessage = userMessage;
  }
}

export function isActionError(error: unknown): error is ActionError {
  return error instanceof ActionError || (typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'ActionError' && 'kind' in error && 'userMessage' in error);
}

/** Shorthands connector code reads well with: `throw configError('Authentication failed: check the password.')`. */
export const configError = (message: string, cause?: unknown) => new ActionError('config', message, { retryable: false, cause });
export const transientError = (message: string, cause?: unknown) => new ActionError('transient', message, { retryable: true, cause });
export const systemError = (message: string, cause?: unknown) => new ActionError('system', message, { retryable: false, cause });
