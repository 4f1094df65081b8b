/** Prints rows as aligned columns (or a friendly line when there are none). */
export function printTable(rows: Array<Record<string, unknown>>, columns: Array<[key: string, title: string]>, empty: string): void {
  if (rows.length === 0) {
    process.stdout.write(`${empty}\n`);
    return;
  }
  const cell = (value: unknown) => (value === null || value === undefined ? '-' : String(value).replace(/\s+/g, ' '));
  const widths = columns.map(([key, title]) => Math.max(title.length, ...rows.map((row) => cell(row[key]).length)));
  const line = (values: string[]) => values.map((value, i) => (i === values.length - 1 ? value : value.padEnd(widths[i]!))).join('  ');
  process.stdout.write(`${line(columns.map(([, title]) => title))}\n`);
  for (const row of rows) process.stdout.write(`${line(columns.map(([key]) => cell(row[key])))}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** Makes control and invisible characters visible, so a preview cannot hide what it shows. */
export function visible(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]/g, (char) => `\\u{${char.codePointAt(0)!.toString(16)}}`);
}
