/**
 * Local (in-process) errors of the kernel. They carry a stable string `code`, a
 * message written for the person who has to act on it, and an HTTP status hint
 * used only at the HTTP edge. They are never serialized as they are: the HTTP
 * layer maps them to `{"error": {"code", "message"}}` and nothing else
 * (no stack, no cause).
 */
export class KernelError extends Error {
  readonly code: string;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, message: string, options: { status?: number; details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KernelError';
    this.code = code;
    this.status = options.status ?? 400;
    this.details = options.details;
  }
}

export function isKernelError(error: unknown): error is KernelError {
  return error instanceof KernelError;
}

/** Shorthands for the error families the kernel uses most. */
export const errors = {
  invalid: (message: string, details?: Record<string, unknown>) =>
    new KernelError('invalid_input', message, { status: 400, ...(details ? { details } : {}) }),
  notFound: (what: string, id: string) => new KernelError('not_found', `${what} ${JSON.stringify(id)} does not exist.`, { status: 404 }),
  conflict: (code: string, message: string) => new KernelError(code, message, { status: 409 }),
  locked: (database: string) =>
    new KernelError('database_locked', `Database "${database}" is locked. Unlock it first (aip unlock --db ${database}).`, {
      status: 423,
    }),
};
