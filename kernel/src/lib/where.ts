/**
 * Builds a WHERE clause from optional filters: each condition is added only
 * when its value is given, with its parameters in order.
 */
export class Where {
  private readonly clauses: string[] = [];
  readonly params: unknown[] = [];

  /** Adds `sql` (with `?` placeholders for `values`) when every value is defined and non-empty. */
  add(sql: string, ...values: unknown[]): this {
    if (values.some((value) => value === undefined || value === null || value === '')) return this;
    this.clauses.push(sql);
    this.params.push(...values);
    return this;
  }

  /** `column IN (?, ?, ...)`, skipped for an empty list. */
  in(column: string, values: readonly unknown[]): this {
    if (values.length === 0) return this;
    this.clauses.push(`${column} IN (${values.map(() => '?').join(', ')})`);
    this.params.push(...values);
    return this;
  }

  toString(): string {
    return this.clauses.length > 0 ? `WHERE ${this.clauses.join(' AND ')}` : '';
  }
}
