/**
 * Forms generated from a connector's JSON Schema (its manifest's
 * `targetSchema`, `credentialSchemas` and each action's input schema), so a
 * community connector gets its forms with no UI code. Fields marked
 * `x-secret` are password inputs whose value never comes back from the
 * gateway: editing shows them empty ("unchanged"), and only a typed value is
 * sent, which replaces the stored one.
 */
import type { JsonSchema } from './types';

export type FieldKind = 'text' | 'multiline' | 'secret' | 'integer' | 'number' | 'boolean' | 'enum' | 'json';

export interface FormField {
  name: string;
  label: string;
  kind: FieldKind;
  required: boolean;
  description?: string;
  default?: unknown;
  options?: string[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
}

/** Values as the inputs hold them: text for every kind but boolean. */
export type FormValues = Record<string, string | boolean>;

/** Above this many characters a string field is a textarea (a CA certificate, a script). */
const MULTILINE_MIN_MAX_LENGTH = 2048;

const typeOf = (schema: JsonSchema): string | undefined => {
  if (Array.isArray(schema.type)) return schema.type.find((t) => t !== 'null');
  return schema.type;
};

const labelOf = (name: string, schema: JsonSchema) =>
  schema.title ?? name.replace(/([a-z])([A-Z])/g, '$1 $2').replace(/[_-]+/g, ' ').replace(/^./, (c) => c.toUpperCase());

/** The fields of an object schema, in the schema's order, required ones first. */
export function fieldsOf(schema: JsonSchema | null | undefined): FormField[] {
  if (!schema || typeof schema !== 'object') return [];
  const required = new Set(schema.required ?? []);
  const fields = Object.entries(schema.properties ?? {}).map(([name, property]): FormField => {
    const type = typeOf(property);
    let kind: FieldKind;
    if (property['x-secret'] === true) kind = 'secret';
    else if (Array.isArray(property.enum) && property.enum.every((v) => typeof v === 'string')) kind = 'enum';
    else if (type === 'boolean') kind = 'boolean';
    else if (type === 'integer') kind = 'integer';
    else if (type === 'number') kind = 'number';
    else if (type === 'string') kind = (property.maxLength ?? 0) >= MULTILINE_MIN_MAX_LENGTH ? 'multiline' : 'text';
    else kind = 'json';
    const field: FormField = { name, label: labelOf(name, property), kind, required: required.has(name) };
    if (property.description) field.description = property.description;
    if (property.default !== undefined) field.default = property.default;
    if (kind === 'enum') field.options = property.enum as string[];
    for (const key of ['minimum', 'maximum', 'minLength', 'maxLength'] as const) {
      if (typeof property[key] === 'number') field[key] = property[key];
    }
    return field;
  });
  return [...fields.filter((f) => f.required), ...fields.filter((f) => !f.required)];
}

/**
 * Fields for a connector without a manifest schema (in-process connectors):
 * every field is text, the secret ones password inputs.
 */
export function fieldsFromNames(fields: string[], secret: string[], required: string[]): FormField[] {
  return fields.map((name) => ({ name, label: labelOf(name, {}), kind: secret.includes(name) ? 'secret' : 'text', required: required.includes(name) }));
}

/**
 * What the inputs start with: the stored value when editing, else the
 * schema's default. A secret field always starts empty: its value is never
 * sent to the page.
 */
export function initialValues(fields: FormField[], existing: Record<string, unknown> = {}): FormValues {
  const values: FormValues = {};
  for (const field of fields) {
    const stored = field.kind === 'secret' ? undefined : (existing[field.name] ?? undefined);
    const value = stored ?? field.default;
    if (field.kind === 'boolean') values[field.name] = value === true;
    else if (field.kind === 'json') values[field.name] = value === undefined ? '' : JSON.stringify(value, null, 2);
    else values[field.name] = value === undefined || value === null ? '' : String(value);
  }
  return values;
}

export interface Collected {
  /** The non-secret values (a target's or profile's `config`, an action's input). */
  config: Record<string, unknown>;
  /** The typed secret values; a secret left empty is not here (create: not set; edit: unchanged). */
  secret: Record<string, unknown>;
  /** Per field, what is wrong with it, as a sentence. */
  errors: Record<string, string>;
}

/**
 * Reads the inputs back as the schema's types. `mode: 'edit'` leaves an empty
 * secret out (it stays unchanged) and tells no error for a required secret
 * that is already stored.
 */
export function collect(fields: FormField[], values: FormValues, mode: 'create' | 'edit' = 'create', storedSecrets: string[] = []): Collected {
  const out: Collected = { config: {}, secret: {}, errors: {} };
  for (const field of fields) {
    const raw = values[field.name];
    if (field.kind === 'boolean') {
      out.config[field.name] = raw === true;
      continue;
    }
    const text = typeof raw === 'string' ? raw : '';
    if (text === '') {
      const unchangedSecret = field.kind === 'secret' && mode === 'edit' && storedSecrets.includes(field.name);
      if (field.required && !unchangedSecret) out.errors[field.name] = `${field.label} is required.`;
      continue;
    }
    let value: unknown = text;
    if (field.kind === 'integer' || field.kind === 'number') {
      const number = Number(text.trim());
      if (text.trim() === '' || !Number.isFinite(number) || (field.kind === 'integer' && !Number.isInteger(number))) {
        out.errors[field.name] = `${field.label} must be ${field.kind === 'integer' ? 'a whole number' : 'a number'}.`;
        continue;
      }
      if (field.minimum !== undefined && number < field.minimum) out.errors[field.name] = `${field.label} must be at least ${field.minimum}.`;
      if (field.maximum !== undefined && number > field.maximum) out.errors[field.name] = `${field.label} must be at most ${field.maximum}.`;
      value = number;
    } else if (field.kind === 'json') {
      try {
        value = JSON.parse(text);
      } catch {
        out.errors[field.name] = `${field.label} must be JSON (for example ["a", "b"] or {"k": 1}).`;
        continue;
      }
    } else {
      const length = [...text].length;
      if (field.minLength !== undefined && length < field.minLength) out.errors[field.name] = `${field.label} needs at least ${field.minLength} characters.`;
      if (field.maxLength !== undefined && length > field.maxLength) out.errors[field.name] = `${field.label} takes at most ${field.maxLength} characters (it has ${length}).`;
    }
    if (out.errors[field.name]) continue;
    if (field.kind === 'secret') out.secret[field.name] = value;
    else out.config[field.name] = value;
  }
  return out;
}

/** Placeholder of a secret input: what leaving it empty means. */
export function secretPlaceholder(mode: 'create' | 'edit', stored: boolean): string {
  if (mode === 'edit' && stored) return 'unchanged (type to replace)';
  return 'not shown again after saving';
}
