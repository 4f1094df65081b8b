import { isoAt, type Clock } from '../lib/clock.js';
import { errors } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import type { SqlDb, SqlTx } from '../vault/index.js';
import { compileCustomRule, createRedactor, type CustomRuleInput, type Redactor } from './redactor.js';
import type { RedactionRule } from './rules.js';

export interface StoredRedactionRule {
  id: string;
  name: string;
  pattern: string;
  flags: string;
  replacement: string;
  createdAt: string;
}

type AuditRecorder = { record(tx: SqlTx, entry: { actor: string; event: string; subject?: { ruleId?: string }; payload?: Record<string, unknown> }): Promise<unknown> };

/**
 * The current redactor, held apart from the store: the audit (which redacts
 * every entry) reads it, the store (which records rule changes in the audit)
 * replaces it, so neither needs the other to exist first.
 */
export interface RedactorCell {
  current(): Redactor;
  set(redactor: Redactor): void;
}

export function createRedactorCell(builtin: boolean): RedactorCell {
  let redactor = createRedactor({ builtin });
  return {
    current: () => redactor,
    set(next) {
      redactor = next;
    },
  };
}

export interface RedactionStore {
  current(): Redactor;
  list(): Promise<StoredRedactionRule[]>;
  add(input: CustomRuleInput, actor: string): Promise<StoredRedactionRule>;
  remove(id: string, actor: string): Promise<void>;
  /** Rebuilds the redactor (after the built-in rules were switched on or off). */
  setBuiltin(enabled: boolean): void;
}

interface Row {
  id: string;
  name: string;
  pattern: string;
  flags: string;
  replacement: string;
  created_at: string;
}

const toStored = (row: Row): StoredRedactionRule => ({
  id: row.id,
  name: row.name,
  pattern: row.pattern,
  flags: row.flags,
  replacement: row.replacement,
  createdAt: row.created_at,
});

/**
 * Custom rules live in the database; the compiled redactor is rebuilt only
 * when they (or the built-in switch) change, never per request.
 */
export async function createRedactionStore(deps: { db: SqlDb; clock: Clock; builtin: boolean; audit: AuditRecorder; cell: RedactorCell }): Promise<RedactionStore> {
  const { db, clock, cell } = deps;
  let builtin = deps.builtin;
  let custom: RedactionRule[] = [];
  cell.set(createRedactor({ builtin }));

  const reload = async () => {
    const rows = await db.all<Row>('SELECT * FROM redaction_rules ORDER BY created_at, id');
    const compiled: RedactionRule[] = [];
    for (const row of rows) {
      try {
        compiled.push(compileCustomRule({ name: row.name, pattern: row.pattern, flags: row.flags, replacement: row.replacement }));
      } catch {
        // A stored rule that no longer compiles (edited by hand) is skipped;
        // the built-in rules still apply.
      }
    }
    custom = compiled;
    cell.set(createRedactor({ builtin, custom }));
  };
  await reload();

  return {
    current: () => cell.current(),
    setBuiltin(enabled) {
      builtin = enabled;
      cell.set(createRedactor({ builtin, custom }));
    },
    async list() {
      return (await db.all<Row>('SELECT * FROM redaction_rules ORDER BY created_at, id')).map(toStored);
    },
    async add(input, actor) {
      const name = input.name.trim();
      if (name === '') throw errors.invalid('A redaction rule needs a name.');
      compileCustomRule(input);
      const row: Row = {
        id: newId('rdr'),
        name,
        pattern: input.pattern,
        flags: input.flags ?? '',
        replacement: input.replacement ?? '[REDACTED]',
        created_at: isoAt(clock.now()),
      };
      await db.write(async (tx) => {
        const clash = await tx.get('SELECT 1 FROM redaction_rules WHERE name = ?', [name]);
        if (clash) throw errors.conflict('redaction_rule_exists', `A redaction rule named "${name}" already exists.`);
        await tx.run('INSERT INTO redaction_rules (id, name, pattern, flags, replacement, created_at) VALUES (?, ?, ?, ?, ?, ?)', [
          row.id,
          row.name,
          row.pattern,
          row.flags,
          row.replacement,
          row.created_at,
        ]);
        // The pattern itself is recorded: it is configuration, not a secret.
        await deps.audit.record(tx, { actor, event: 'redaction_rule.created', subject: { ruleId: row.id }, payload: { name, pattern: row.pattern, flags: row.flags } });
      });
      await reload();
      return toStored(row);
    },
    async remove(id, actor) {
      await db.write(async (tx) => {
        const row = await tx.get<Row>('SELECT * FROM redaction_rules WHERE id = ?', [id]);
        if (!row) throw errors.notFound('Redaction rule', id);
        await tx.run('DELETE FROM redaction_rules WHERE id = ?', [id]);
        await deps.audit.record(tx, { actor, event: 'redaction_rule.deleted', subject: { ruleId: id }, payload: { name: row.name } });
      });
      await reload();
    },
  };
}
