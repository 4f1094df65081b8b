import { visibleJson, visibleJsonDocument, visibleText } from '../lib/visible-text.js';

export { visibleJson, visibleText } from '../lib/visible-text.js';

/**
 * Text that is already safe to print (made by visibleText, visibleJson or
 * this CLI itself), so printTable and `line` do not escape it a second time.
 */
export class Shown {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

/** A value as one visible line: Shown as it is, null as "-", anything else escaped (invariant 8: the agent writes much of what is printed). */
export function cell(value: unknown): string {
  if (value instanceof Shown) return value.text;
  if (value === null || value === undefined) return '-';
  return visibleText(typeof value === 'string' ? value : String(value));
}

/**
 * A template for output lines: every interpolated value is escaped (unless
 * it is Shown), the literal parts are this CLI's own words.
 *   say(line`Added target ${target.id} (${target.kind} "${target.name}").`)
 */
export function line(strings: TemplateStringsArray, ...values: unknown[]): string {
  return strings.reduce((out, part, i) => out + part + (i < values.length ? cell(values[i]) : ''), '');
}

/** A JSON value as a one-line visible preview (see visibleJson), cut at maxLength. */
export function preview(value: unknown, maxLength = 80): Shown {
  return new Shown(visibleJson(value, { maxLength }));
}

/**
 * Prints rows as aligned columns (or a friendly line when there are none).
 * Every cell is escaped by default: names, reasons, titles and states may
 * come from an agent or a plugin. Pass a Shown value for a cell that is
 * already visible (a JSON preview).
 */
export function printTable(rows: Array<Record<string, unknown>>, columns: Array<[key: string, title: string]>, empty: string): void {
  if (rows.length === 0) {
    process.stdout.write(`${empty}\n`);
    return;
  }
  const cells = rows.map((row) => columns.map(([key]) => cell(row[key])));
  const widths = columns.map(([, title], i) => Math.max(title.length, ...cells.map((values) => values[i]!.length)));
  const format = (values: string[]) => values.map((value, i) => (i === values.length - 1 ? value : value.padEnd(widths[i]!))).join('  ');
  process.stdout.write(`${format(columns.map(([, title]) => title))}\n`);
  for (const values of cells) process.stdout.write(`${format(values)}\n`);
}

/** `--json` output: valid JSON whose hidden characters are \uXXXX escapes, so a terminal shows them and a parser reads the same value. */
export function printJson(value: unknown): void {
  process.stdout.write(`${visibleJsonDocument(value)}\n`);
}

export function say(text: string): void {
  process.stdout.write(`${text}\n`);
}
