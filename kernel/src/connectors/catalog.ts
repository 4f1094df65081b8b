import { canonicalHash } from '../lib/canonical.mjs';
import { ajv, formatSchemaErrors } from '../lib/schema.js';

export type ActionRisk = 'read' | 'write' | 'destructive';

/** Hard ceilings the kernel applies whatever a connector declares (invariant: bounds are enforced centrally). */
export const KERNEL_LIMITS = {
  /** 30 minutes: the longest action in the product (SSH exec in the background). */
  maxTimeoutMs: 30 * 60_000,
  /** 4 MiB of JSON output; bigger answers belong in a download, not an agent's context. */
  maxOutputBytes: 4 * 1024 * 1024,
  /** 1 MiB of canonical JSON input. */
  maxInputBytes: 1024 * 1024,
  /** 2 KiB of reason text, as the product specifies. */
  maxReasonBytes: 2048,
} as const;

export const DEFAULT_ACTION_LIMITS = { timeoutMs: 30_000, maxOutputBytes: 512 * 1024 } as const;

/** One action of a connector, as the kernel needs it to decide, snapshot and bound a call. */
export interface ActionDescriptor {
  name: string;
  title: string;
  description: string;
  risk: ActionRisk;
  /** SHA-256 of the action's canonical definition; approval snapshots bind to it (invariant 5). */
  definitionHash: string;
  inputSchema: object;
  outputSchema: object | undefined;
  limits: { timeoutMs: number; maxOutputBytes: number };
  /** A sentence naming every problem, or undefined when the input is valid. */
  validateInput(input: unknown): string | undefined;
  validateOutput(output: unknown): string | undefined;
}

/** What the kernel knows of an installed connector. */
export interface ConnectorDescriptor {
  id: string;
  version: string;
  title: string;
  description?: string;
  /** `static` (in-process, tests), `builtin` or `installed` (out-of-process plugins). */
  source?: 'static' | 'builtin' | 'installed';
  /** How to use it, for agents (`get_connector_help`). */
  help?: { summary: string; usage?: string; warnings?: string[] };
  transports?: string[];
  defaultPort?: number;
  /** The credential kinds its profiles may use; the first is the default. */
  credentialKinds?: string[];
  /** SHA-256 of the canonical manifest; a different manifest stales pending approvals. */
  manifestHash: string;
  /**
   * SHA-256 over the connector's code (a built-in's build-time pin, an
   * installed plugin's approved package); other code stales pending
   * approvals. Absent for in-process connectors.
   */
  integrity?: string | null;
  actions: ReadonlyMap<string, ActionDescriptor>;
  /** Names of secret fields per credential kind (from the schema's secret marks). */
  secretFields(credentialKind: string): string[] | undefined;
  /**
   * Every field of a credential kind, for help and errors. Optional: a
   * plugin's descriptor carries its manifest instead (see credentialKindsOf).
   */
  credentialFields?(credentialKind: string): { fields: string[]; secret: string[]; required: string[] } | undefined;
  validateTargetConfig(config: unknown): string | undefined;
  validateCredential(credentialKind: string, config: unknown, secret: unknown): string | undefined;
}

/**
 * The seam between the kernel and whatever provides connectors. The plugin
 * host implements it from validated plugin manifests; tests and the kernel
 * core use a static catalog.
 */
export interface ConnectorCatalog {
  get(kind: string): ConnectorDescriptor | undefined;
  list(): ConnectorDescriptor[];
}

export interface StaticActionDefinition {
  name: string;
  title?: string;
  description?: string;
  risk: ActionRisk;
  input: object;
  output?: object;
  limits?: Partial<ActionDescriptor['limits']>;
}

export interface StaticConnectorDefinition {
  id: string;
  version: string;
  title?: string;
  targetSchema?: object;
  credentialSchemas?: Record<string, { config?: object; secret?: object }>;
  actions: StaticActionDefinition[];
}

function validatorFor(schema: object | undefined): (value: unknown) => string | undefined {
  if (!schema) return () => undefined;
  const validate = ajv.compile(schema);
  return (value) => (validate(value) ? undefined : formatSchemaErrors(validate.errors));
}

/** Builds a descriptor from a plain definition (used by the static catalog and tests). */
export function defineStaticConnector(definition: StaticConnectorDefinition): ConnectorDescriptor {
  const actions = new Map<string, ActionDescriptor>();
  for (const action of definition.actions) {
    const limits = {
      timeoutMs: Math.min(action.limits?.timeoutMs ?? DEFAULT_ACTION_LIMITS.timeoutMs, KERNEL_LIMITS.maxTimeoutMs),
      maxOutputBytes: Math.min(action.limits?.maxOutputBytes ?? DEFAULT_ACTION_LIMITS.maxOutputBytes, KERNEL_LIMITS.maxOutputBytes),
    };
    actions.set(action.name, {
      name: action.name,
      title: action.title ?? action.name,
      description: action.description ?? '',
      risk: action.risk,
      definitionHash: canonicalHash({ ...action, limits }),
      inputSchema: action.input,
      outputSchema: action.output,
      limits,
      validateInput: validatorFor(action.input),
      validateOutput: validatorFor(action.output),
    });
  }
  const targetValidator = validatorFor(definition.targetSchema);
  const propertiesOf = (schema: object | undefined) => Object.keys((schema as { properties?: object } | undefined)?.properties ?? {});
  const requiredOf = (schema: object | undefined) => (schema as { required?: string[] } | undefined)?.required ?? [];
  const credentialValidators = new Map(
    Object.entries(definition.credentialSchemas ?? {}).map(([kind, schemas]) => [
      kind,
      {
        config: validatorFor(schemas.config),
        secret: validatorFor(schemas.secret),
        secretFields: propertiesOf(schemas.secret),
        fields: [...propertiesOf(schemas.config), ...propertiesOf(schemas.secret)],
        required: [...requiredOf(schemas.config), ...requiredOf(schemas.secret)],
      },
    ]),
  );
  return {
    id: definition.id,
    version: definition.version,
    title: definition.title ?? definition.id,
    manifestHash: canonicalHash(definition),
    actions,
    credentialKinds: [...credentialValidators.keys()],
    secretFields: (kind) => credentialValidators.get(kind)?.secretFields,
    credentialFields(kind) {
      const validators = credentialValidators.get(kind);
      return validators ? { fields: validators.fields, secret: validators.secretFields, required: validators.required } : undefined;
    },
    validateTargetConfig: targetValidator,
    validateCredential(kind, config, secret) {
      if (credentialValidators.size === 0) return undefined;
      const validators = credentialValidators.get(kind);
      if (!validators) return `credential kind "${kind}" is not one of ${[...credentialValidators.keys()].map((k) => `"${k}"`).join(', ')}`;
      return validators.config(config) ?? validators.secret(secret);
    },
  };
}

/** A catalog whose connectors can be swapped at run time (tests use it to simulate an upgrade). */
export function createStaticCatalog(connectors: ConnectorDescriptor[] = []): ConnectorCatalog & { register(connector: ConnectorDescriptor): void } {
  const byId = new Map(connectors.map((connector) => [connector.id, connector]));
  return {
    get: (kind) => byId.get(kind),
    list: () => [...byId.values()],
    register(connector) {
      byId.set(connector.id, connector);
    },
  };
}

/** Several catalogs as one: the first that knows a kind answers for it. */
export function mergeCatalogs(...catalogs: ConnectorCatalog[]): ConnectorCatalog {
  return {
    get(kind) {
      for (const catalog of catalogs) {
        const found = catalog.get(kind);
        if (found) return found;
      }
      return undefined;
    },
    list() {
      const byId = new Map<string, ConnectorDescriptor>();
      for (const catalog of catalogs) for (const connector of catalog.list()) if (!byId.has(connector.id)) byId.set(connector.id, connector);
      return [...byId.values()];
    },
  };
}
