/** An error the CLI reports as one line on stderr, with its exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
    /** The gateway's error code, when the gateway refused. */
    readonly code?: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Exit codes: documented in `aip --help` and docs/cli.md. */
export const EXIT = {
  ok: 0,
  error: 1,
  usage: 2,
  /** `aip audit verify` found the chain broken. */
  auditBroken: 3,
} as const;
