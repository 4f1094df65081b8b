import { randomBytes } from 'node:crypto';

// Crockford-style lowercase alphabet: no i, l, o, u, so ids read back unambiguously.
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

/**
 * A new random id such as `req_3k9x...`: the prefix says what it names, the 16
 * characters carry 80 random bits, enough that ids never collide in one database.
 */
export function newId(prefix: string): string {
  const bytes = randomBytes(16);
  let out = '';
  for (const byte of bytes) out += ALPHABET[byte & 31];
  return `${prefix}_${out}`;
}
