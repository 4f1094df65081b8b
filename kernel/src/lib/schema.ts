import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { KernelError } from './errors.js';

/**
 * The kernel's one ajv instance for its own request and settings schemas:
 * strict mode (a typo in a schema is an error, not a silently ignored
 * keyword), all errors collected so one response names every problem.
 */
export const ajv = new Ajv({ strict: true, allErrors: true, useDefaults: false, coerceTypes: false });

function describe(error: ErrorObject, root: string): string {
  const where = error.instancePath === '' ? root : `"${error.instancePath.slice(1).replace(/\//g, '.')}"`;
  switch (error.keyword) {
    case 'additionalProperties':
      return `${where} has an unknown field "${String(error.params.additionalProperty)}"`;
    case 'required':
      return `${where} is missing the field "${String(error.params.missingProperty)}"`;
    case 'type':
      return `${where} must be ${String(error.params.type)}`;
    case 'enum':
      return `${where} must be one of ${(error.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    default:
      return `${where} ${error.message ?? 'is invalid'}`;
  }
}

/** A readable sentence listing every schema violation. */
export function formatSchemaErrors(errors: readonly ErrorObject[] | null | undefined, root = 'the body'): string {
  if (!errors || errors.length === 0) return 'The input is invalid.';
  const unique = [...new Set(errors.map((error) => describe(error, root)))];
  return `${unique.join('; ')}.`;
}

/**
 * Compiles a schema once; the returned function throws a 400 KernelError
 * naming every problem. `what` names the whole value in the message
 * ("Invalid request body: the body is missing ...").
 */
export function compileValidator<T>(schema: object, what = 'request', root = 'the body'): (value: unknown) => T {
  const validate: ValidateFunction = ajv.compile(schema);
  return (value: unknown) => {
    if (!validate(value)) {
      throw new KernelError('invalid_input', `Invalid ${what}: ${formatSchemaErrors(validate.errors, root)}`, { status: 400 });
    }
    return value as T;
  };
}
