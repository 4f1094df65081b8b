import { canonicalJson } from '../lib/canonical.mjs';
import { isoAt, type Clock } from '../lib/clock.js';
import { compileValidator } from '../lib/schema.js';
import type { SqlDb } from '../vault/index.js';
import type { Audit } from '../audit/index.js';

/** Per-database settings; every one has a default, so a new database needs none stored. */
export interface SettingsValues {
  /** How long a pending approval waits for the operator before it expires. */
  approvalTtlSeconds: number;
  /** Start the MCP switch as soon as the database is unlocked (default: stopped until the operator starts it). */
  mcpAutostart: boolean;
  /** Audit entries older than this are pruned behind a checkpoint; 0 keeps them forever. */
  auditRetentionDays: number;
  /** Finished requests (history) older than this are deleted; 0 keeps them forever. */
  historyRetentionDays: number;
  /** Operator/agent messages older than this are deleted; 0 keeps them forever. */
  messageRetentionDays: number;
  /** The built-in redaction rules (private keys, bearer tokens, secret=value pairs, known token prefixes). */
  builtinRedaction: boolean;
  /** Refuse to run third-party (installed) connectors unless bubblewrap confines them too. */
  requireBwrapForThirdParty: boolean;
}

export const DEFAULT_SETTINGS: SettingsValues = {
  approvalTtlSeconds: 15 * 60,
  mcpAutostart: false,
  auditRetentionDays: 365,
  historyRetentionDays: 90,
  messageRetentionDays: 30,
  builtinRedaction: true,
  requireBwrapForThirdParty: false,
};

const days = { type: 'integer', minimum: 0, maximum: 36_500 } as const;
export const SETTINGS_PATCH_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    // One minute at least (a human must be able to react), one week at most
    // (an approval that old no longer reflects anyone's intent).
    approvalTtlSeconds: { type: 'integer', minimum: 60, maximum: 7 * 86_400 },
    mcpAutostart: { type: 'boolean' },
    auditRetentionDays: days,
    historyRetentionDays: days,
    messageRetentionDays: days,
    builtinRedaction: { type: 'boolean' },
    requireBwrapForThirdParty: { type: 'boolean' },
  },
} as const;

const validatePatch = compileValidator<Partial<SettingsValues>>(SETTINGS_PATCH_SCHEMA, 'settings change');

export interface SettingsStore {
  get(): SettingsValues;
  update(patch: unknown, actor: string): Promise<SettingsValues>;
  onChange(listener: (values: SettingsValues) => void): void;
}

export async function createSettingsStore(deps: { db: SqlDb; clock: Clock; audit: Pick<Audit, 'record'> }): Promise<SettingsStore> {
  const { db, clock, audit } = deps;
  const rows = await db.all<{ key: string; value: string }>('SELECT key, value FROM settings');
  let values: SettingsValues = { ...DEFAULT_SETTINGS };
  for (const row of rows) {
    if (row.key in DEFAULT_SETTINGS) (values as unknown as Record<string, unknown>)[row.key] = JSON.parse(row.value);
  }
  const listeners: Array<(values: SettingsValues) => void> = [];
  return {
    get: () => values,
    onChange: (listener) => listeners.push(listener),
    async update(patch, actor) {
      const valid = validatePatch(patch);
      const now = isoAt(clock.now());
      const next = { ...values, ...valid };
      await db.write(async (tx) => {
        for (const [key, value] of Object.entries(valid)) {
          await tx.run('INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at', [
            key,
            canonicalJson(value),
            now,
          ]);
        }
        const before: Record<string, unknown> = {};
        for (const key of Object.keys(valid)) before[key] = values[key as keyof SettingsValues];
        await audit.record(tx, { actor, event: 'settings.updated', payload: { before, after: valid } });
        tx.afterCommit(() => {
          values = next;
        });
      });
      for (const listener of listeners) listener(values);
      return values;
    },
  };
}
