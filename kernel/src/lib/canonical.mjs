// Canonical JSON encoding (JCS-style, RFC 8785): object keys sorted by UTF-16
// code units, no insignificant whitespace, primitives encoded as JSON.stringify
// does. It is the one encoding used for every hash the kernel computes (audit
// chain, approval snapshots, input hashes), so it lives in plain JavaScript:
// the piscina audit-verify worker imports this very file, and there is never a
// second copy that could disagree.
import { createHash } from 'node:crypto';

/**
 * @param {unknown} value
 * @returns {string}
 */
export function canonicalJson(value) {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonicalJson: non-finite numbers have no JSON form');
      return JSON.stringify(value);
    case 'bigint':
      throw new TypeError('canonicalJson: bigint has no JSON form; convert it to a string first');
    case 'object': {
      if (Array.isArray(value)) {
        return '[' + value.map((item) => (item === undefined ? 'null' : canonicalJson(item))).join(',') + ']';
      }
      if (value instanceof Date) return JSON.stringify(value.toISOString());
      const record = /** @type {Record<string, unknown>} */ (value);
      const keys = Object.keys(record)
        .filter((key) => record[key] !== undefined && typeof record[key] !== 'function')
        .sort();
      return '{' + keys.map((key) => JSON.stringify(key) + ':' + canonicalJson(record[key])).join(',') + '}';
    }
    default:
      throw new TypeError(`canonicalJson: ${typeof value} has no JSON form`);
  }
}

/**
 * SHA-256 of a string or bytes, lowercase hex.
 * @param {string | Uint8Array} data
 * @returns {string}
 */
export function sha256Hex(data) {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * SHA-256 over the canonical encoding of a value.
 * @param {unknown} value
 * @returns {string}
 */
export function canonicalHash(value) {
  return sha256Hex(canonicalJson(value));
}

/** The hash an audit chain starts from. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * The canonical text of one audit entry from its stored parts. `subject` and
 * `payload` are stored as canonical JSON already, so the entry's canonical
 * encoding is assembled, not recomputed (keys in sorted order: actor, event,
 * payload, seq, subject, ts).
 * @param {{seq: number, ts: string, actor: string, event: string, subjectText: string, payloadText: string}} entry
 * @returns {string}
 */
export function auditEntryText(entry) {
  return (
    '{"actor":' + JSON.stringify(entry.actor) +
    ',"event":' + JSON.stringify(entry.event) +
    ',"payload":' + entry.payloadText +
    ',"seq":' + JSON.stringify(entry.seq) +
    ',"subject":' + entry.subjectText +
    ',"ts":' + JSON.stringify(entry.ts) +
    '}'
  );
}

/**
 * The hash of one audit entry: SHA-256 over the previous entry's hash, a
 * newline, and the canonical encoding of `{seq, ts, actor, event, subject,
 * payload}`. Including `seq` is what makes a deletion, insertion or
 * reordering visible even where the surrounding hashes were left alone.
 * Verification hashes the stored text itself, so any edit to it shows.
 * @param {string} prevHash
 * @param {{seq: number, ts: string, actor: string, event: string, subjectText: string, payloadText: string}} entry
 * @returns {string}
 */
export function auditEntryHash(prevHash, entry) {
  return sha256Hex(prevHash + '\n' + auditEntryText(entry));
}
