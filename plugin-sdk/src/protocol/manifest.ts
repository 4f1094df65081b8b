import { Ajv, type AnySchema, type ErrorObject, type ValidateFunction } from 'ajv';
import type { ActionAnnotations, JsonSchema, Manifest, ManifestAction } from './manifest-types.js';
export type * from './manifest-types.js';

/** The registered keyword that marks a secret field; it drives sealing, leasing and masking everywhere. */
export const SECRET_KEYWORD = 'x-secret';

/** Hard ceilings a manifest may not exceed (the kernel enforces them again at run time). */
export const MANIFEST_LIMITS = {
  maxTimeoutMs: 30 * 60_000,
  maxOutputBytes: 4 * 1024 * 1024,
  maxActions: 200,
} as const;

/**
 * The ajv every manifest and every schema inside a manifest is compiled
 * with, kernel and SDK alike: strict mode (an unknown keyword or a typo is an
 * error, never silently ignored), all errors reported, and the `x-secret`
 * keyword registered.
 */
export function createManifestAjv(): Ajv {
  const ajv = new Ajv({ strict: true, allErrors: true, allowUnionTypes: true });
  ajv.addKeyword({ keyword: SECRET_KEYWORD, schemaType: 'boolean' });
  return ajv;
}

/** The instance the manifest's own shape is checked with (compiled once, below). */
export const manifestAjv = createManifestAjv();

const NAME = '^[a-z][a-z0-9_]{0,63}$';

/**
 * A connector id: 1-64 lowercase letters, digits and "-", starting with a
 * letter. The kernel names folders after it (installed code, scratch), so it
 * never holds a dot, a slash or anything else a path could be built from.
 */
export const PLUGIN_ID_PATTERN = '^[a-z][a-z0-9-]{0,63}$';
const schemaObject = { type: 'object' } as const;

const MANIFEST_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'version', 'title', 'description', 'targetSchema', 'credentialSchemas', 'transports', 'actions'],
  properties: {
    id: { type: 'string', pattern: PLUGIN_ID_PATTERN },
    version: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+(?:[-+][0-9A-Za-z.-]+)?$' },
    title: { type: 'string', minLength: 1, maxLength: 120 },
    description: { type: 'string', maxLength: 4000 },
    targetSchema: schemaObject,
    credentialSchemas: { type: 'object', minProperties: 1, propertyNames: { pattern: NAME }, additionalProperties: schemaObject },
    transports: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ['direct', 'over_ssh', 'none'] } },
    defaultPort: { type: 'integer', minimum: 1, maximum: 65535 },
    help: {
      type: 'object',
      additionalProperties: false,
      required: ['summary'],
      properties: {
        summary: { type: 'string', maxLength: 2000 },
        usage: { type: 'string', maxLength: 8000 },
        warnings: { type: 'array', items: { type: 'string', maxLength: 2000 } },
      },
    },
    actions: {
      type: 'array',
      minItems: 1,
      maxItems: MANIFEST_LIMITS.maxActions,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'title', 'description', 'risk', 'input', 'output', 'limits'],
        properties: {
          name: { type: 'string', pattern: NAME },
          title: { type: 'string', minLength: 1, maxLength: 120 },
          description: { type: 'string', maxLength: 4000 },
          risk: { enum: ['read', 'write', 'destructive'] },
          input: schemaObject,
          output: schemaObject,
          annotations: {
            type: 'object',
            additionalProperties: false,
            properties: {
              readOnlyHint: { type: 'boolean' },
              destructiveHint: { type: 'boolean' },
              idempotentHint: { type: 'boolean' },
              openWorldHint: { type: 'boolean' },
            },
          },
          limits: {
            type: 'object',
            additionalProperties: false,
            required: ['timeoutMs', 'maxOutputBytes'],
            properties: {
              timeoutMs: { type: 'integer', minimum: 100, maximum: MANIFEST_LIMITS.maxTimeoutMs },
              maxOutputBytes: { type: 'integer', minimum: 256, maximum: MANIFEST_LIMITS.maxOutputBytes },
            },
          },
        },
      },
    },
  },
} as const;

const validateShape = manifestAjv.compile(MANIFEST_SCHEMA);

function where(path: string): string {
  // /actions/2/input -> actions[2].input
  return path
    .split('/')
    .filter(Boolean)
    .map((part, index) => (/^\d+$/.test(part) ? `[${part}]` : index === 0 ? part : `.${part}`))
    .join('');
}

function describe(error: ErrorObject, prefix: string): string {
  const at = [prefix, where(error.instancePath)].filter(Boolean).join('.').replace(/\.\[/g, '[') || 'manifest';
  if (error.keyword === 'additionalProperties') return `${at}: unknown field "${String(error.params.additionalProperty)}"`;
  if (error.keyword === 'required') return `${at}: missing field "${String(error.params.missingProperty)}"`;
  if (error.keyword === 'enum') return `${at}: must be one of ${(error.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  return `${at}: ${error.message ?? 'is invalid'}`;
}

/** A manifest that failed validation; `problems` name each field. */
export class ManifestError extends Error {
  constructor(readonly problems: string[]) {
    super(`The plugin manifest is invalid: ${problems.join('; ')}`);
    this.name = 'ManifestError';
  }
}

/** A manifest whose embedded schemas are compiled and ready to validate with. */
export interface CompiledManifest {
  manifest: Manifest;
  target: ValidateFunction;
  credentials: Map<string, ValidateFunction>;
  inputs: Map<string, ValidateFunction>;
  outputs: Map<string, ValidateFunction>;
}

function compileAt(ajv: Ajv, schema: AnySchema, at: string, problems: string[]): ValidateFunction | undefined {
  try {
    return ajv.compile(schema);
  } catch (error) {
    problems.push(`${at}: ${(error as Error).message}`);
    return undefined;
  }
}

/**
 * Validates a manifest: its shape, every schema inside it compiled under
 * strict mode, unique action names, and the secret mark only on credential
 * fields. Throws ManifestError naming every problem.
 *
 * Each manifest's schemas are compiled on an ajv instance of their own. An
 * ajv instance keeps every function it ever compiled (its code scope holds
 * them even after removeSchema), so one shared instance grows with every
 * compile; the kernel compiles manifests again at every install, removal and
 * reload, and leaked ~130 KiB per plugin install/removal that way. With an
 * instance per manifest, what a manifest compiled is freed with it.
 */
export function compileManifest(value: unknown): CompiledManifest {
  if (!validateShape(value)) {
    throw new ManifestError((validateShape.errors ?? []).map((error) => describe(error, '')));
  }
  const ajv = createManifestAjv();
  const manifest = value as unknown as Manifest;
  const problems: string[] = [];
  const target = compileAt(ajv, manifest.targetSchema, 'targetSchema', problems);
  if (manifest.targetSchema.type !== 'object') problems.push('targetSchema: must be an object schema ("type": "object")');
  const credentials = new Map<string, ValidateFunction>();
  for (const [kind, schema] of Object.entries(manifest.credentialSchemas)) {
    if (schema.type !== 'object') problems.push(`credentialSchemas.${kind}: must be an object schema ("type": "object")`);
    const compiled = compileAt(ajv, schema, `credentialSchemas.${kind}`, problems);
    if (compiled) credentials.set(kind, compiled);
  }
  const inputs = new Map<string, ValidateFunction>();
  const outputs = new Map<string, ValidateFunction>();
  const seen = new Set<string>();
  manifest.actions.forEach((action, index) => {
    if (seen.has(action.name)) problems.push(`actions[${index}].name: "${action.name}" is used twice`);
    seen.add(action.name);
    const input = compileAt(ajv, action.input, `actions[${index}].input`, problems);
    const output = compileAt(ajv, action.output, `actions[${index}].output`, problems);
    if (input) inputs.set(action.name, input);
    if (output) outputs.set(action.name, output);
    if (JSON.stringify(action.input).includes(`"${SECRET_KEYWORD}"`)) {
      problems.push(`actions[${index}].input: "${SECRET_KEYWORD}" belongs in credential schemas only; action inputs are shown to the operator`);
    }
  });
  if (problems.length > 0 || !target) throw new ManifestError(problems);
  return { manifest, target, credentials, inputs, outputs };
}

/** The names of a credential schema's secret fields (those marked `"x-secret": true`). */
export function secretFieldsOf(schema: JsonSchema): string[] {
  const properties = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
  return Object.keys(properties).filter((name) => properties[name]?.[SECRET_KEYWORD] === true);
}

/** The names of every field a credential schema declares (what a lease may carry). */
export function declaredFieldsOf(schema: JsonSchema): string[] {
  return Object.keys((schema.properties ?? {}) as Record<string, unknown>);
}

/** MCP annotations for an action: the manifest's own, or derived from its risk. */
export function annotationsFor(action: Pick<ManifestAction, 'risk' | 'annotations' | 'title'>): ActionAnnotations {
  return {
    readOnlyHint: action.risk === 'read',
    destructiveHint: action.risk === 'destructive',
    openWorldHint: true,
    ...action.annotations,
  };
}

export function formatAjvErrors(errors: readonly ErrorObject[] | null | undefined, prefix = 'input'): string {
  return (errors ?? []).map((error) => describe(error, prefix)).join('; ');
}
