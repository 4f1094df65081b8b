import { KernelError } from '../lib/errors.js';

/** Minimum length: with the other rules, enough entropy that an offline attack on a stolen file is impractical. */
export const MIN_PASSWORD_LENGTH = 14;

/** What is missing from a password, as phrases for one sentence; empty when it passes. */
export function passwordProblems(password: string): string[] {
  const problems: string[] = [];
  if ([...password].length < MIN_PASSWORD_LENGTH) problems.push(`at least ${MIN_PASSWORD_LENGTH} characters (it has ${[...password].length})`);
  if (!/[A-Z]/.test(password)) problems.push('an uppercase letter');
  if (!/[a-z]/.test(password)) problems.push('a lowercase letter');
  if (!/[0-9]/.test(password)) problems.push('a digit');
  // A NUL would silently truncate the key inside SQLCipher's C string handling.
  // eslint-disable-next-line no-control-regex
  if (/\u0000/.test(password)) problems.push('no NUL characters');
  return problems;
}

export function assertPasswordRules(password: string): void {
  const problems = passwordProblems(password);
  if (problems.length > 0) {
    throw new KernelError(
      'weak_password',
      `The password needs ${problems.join(', ')}. There is no recovery if it is lost, so pick one you can keep.`,
      { status: 400 },
    );
  }
}
