import { createRedactor, type Redactor } from '../redaction/index.js';

/**
 * Every secret value the plugin host handed to a plugin process during this
 * gateway run. A process can keep what it was given (in memory, in its
 * scratch, or in a target it writes to) and send it back later, in any
 * call, so what any plugin sends is redacted with all of them, not only
 * with the lease of the call it answers; and a second process can fetch it
 * from the first wherever the two share a network (without bubblewrap), so
 * the set is the host's, not one process's. Nothing is dropped while the
 * gateway runs: the set grows only with profiles used and secrets rotated,
 * which only the operator does.
 *
 * The cost: a string that equals some profile's secret is masked in every
 * plugin's answers (an agent could learn that a guess is somebody's secret,
 * not whose, and only for an exact value of 4 characters or more).
 */
export interface HandedSecrets {
  /** Records the secret values of a lease about to be handed to a plugin process. */
  remember(values: readonly string[]): void;
  all(): readonly string[];
  /** The built-in rules plus every secret handed out so far (for plugin logs and status text). */
  redactor(): Redactor;
}

export function createHandedSecrets(): HandedSecrets {
  const values = new Set<string>();
  let redactor = createRedactor({ builtin: true });
  let list: readonly string[] = [];
  return {
    remember(more) {
      let changed = false;
      for (const value of more) {
        if (typeof value !== 'string' || value.length === 0 || values.has(value)) continue;
        values.add(value);
        changed = true;
      }
      if (!changed) return;
      list = [...values];
      redactor = createRedactor({ builtin: true, secrets: list });
    },
    all: () => list,
    redactor: () => redactor,
  };
}
