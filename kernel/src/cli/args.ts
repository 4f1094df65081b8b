import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CliError, EXIT } from './errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Options every command accepts. */
export const COMMON_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
  'data-dir': { type: 'string' },
  url: { type: 'string' },
  db: { type: 'string' },
  'password-stdin': { type: 'boolean' },
} as const satisfies Options;

/**
 * Parses one command's arguments strictly: an unknown flag is a usage error
 * that names it. A `--password` flag gets its own explanation (invariant 8).
 */
export function parse<T extends Options>(argv: string[], options: T, usage: string) {
  if (argv.some((arg) => arg === '--password' || arg.startsWith('--password='))) {
    throw new CliError(
      'Passwords are never taken from the command line (any process on this machine can read it). Type it at the prompt, or pipe it with --password-stdin.',
      EXIT.usage,
    );
  }
  try {
    return parseArgs({ args: argv, options: { ...COMMON_OPTIONS, ...options }, allowPositionals: true, strict: true });
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n\nUsage: ${usage}`, EXIT.usage);
  }
}

export function requirePositional(positionals: string[], index: number, what: string, usage: string): string {
  const value = positionals[index];
  if (value === undefined || value === '') throw new CliError(`Missing ${what}.\n\nUsage: ${usage}`, EXIT.usage);
  return value;
}

export function requireOption(value: string | undefined, flag: string, usage: string): string {
  if (value === undefined || value === '') throw new CliError(`Missing --${flag}.\n\nUsage: ${usage}`, EXIT.usage);
  return value;
}

export function parseJsonOption(value: string | undefined, flag: string): Record<string, unknown> | undefined {
  if (value === undefined) return undefined;
  try {
    const parsed = JSON.parse(value) as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
    return parsed as Record<string, unknown>;
  } catch {
    throw new CliError(`--${flag} must be a JSON object, e.g. --${flag} '{"host":"db.internal","port":5432}'.`, EXIT.usage);
  }
}
