// piscina worker: recomputes the hashes of one page of audit rows off the
// event loop. It checks each row against its own stored prev_hash; the links
// between rows (prev_hash == previous hash, seq contiguity) are checked by the
// caller, which sees the page boundaries.
import { auditEntryHash } from '../lib/canonical.mjs';

/**
 * @param {{rows: Array<{seq: number, ts: string, actor: string, event: string, subject: string, payload: string, prev_hash: string, hash: string}>}} task
 * @returns {{badSeq: number | null, reason: string | null}}
 */
export default function verifyPage(task) {
  for (const row of task.rows) {
    const expected = auditEntryHash(row.prev_hash, {
      seq: row.seq,
      ts: row.ts,
      actor: row.actor,
      event: row.event,
      subjectText: row.subject,
      payloadText: row.payload,
    });
    if (expected !== row.hash) return { badSeq: row.seq, reason: 'its content does not match its hash (the entry was edited)' };
  }
  return { badSeq: null, reason: null };
}
