import type { FromSchema, JSONSchema } from 'json-schema-to-ts';
import type { ActionAnnotations, JsonSchema, Manifest, Risk } from './protocol/manifest-types.js';
import type { ConnectionCheckResult, CredentialLease, Endpoint, InvocationLimits, ProgressValue } from './protocol/messages.js';

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/**
 * What a handler gets for one invocation. The credential lease is valid only
 * while the handler runs: reading it afterwards throws, and the SDK offers no
 * place to keep it (a connection pool keys connections by a salted hash of
 * the lease, never the lease itself).
 */
export interface ActionContext {
  invocationId: string;
  /** Aborted when the kernel cancels (deadline, operator stop). Pass it on to I/O. */
  signal: AbortSignal;
  /** The target's non-secret configuration. */
  target: Record<string, unknown>;
  /** The one credential lease of this invocation. */
  credentials: CredentialLease;
  /** Where to connect, opened by the kernel (null for connectors without a network endpoint). */
  endpoint: Endpoint | null;
  limits: InvocationLimits;
  progress(update: ProgressValue): void;
  /** Goes to the plugin log (stderr); declared secret values are masked. */
  log: Logger;
  /** Requests to the kernel; throws when the kernel lacks the capability. */
  kernel: {
    sign(data: Uint8Array): Promise<Uint8Array>;
    hostKey(key: { host: string; port: number; keyType: string; fingerprint: string }): Promise<boolean>;
  };
}

/** The per-call context of a connection check: no input, no limits. */
export type CheckContext = Omit<ActionContext, 'limits' | 'progress'>;

export const DEFAULT_LIMITS: InvocationLimits = { timeoutMs: 30_000, maxOutputBytes: 512 * 1024 };

/**
 * The TypeScript type a JSON Schema describes. The schema parameter is only
 * constrained to `object` where it is inferred: constraining it to
 * JSONSchema there makes TypeScript's inference explode on real schemas.
 */
export type SchemaType<S> = S extends JSONSchema ? FromSchema<S> : unknown;

export interface ActionDefinition<I extends object, O extends object> {
  /** snake_case */
  name: string;
  title: string;
  description: string;
  risk: Risk;
  input: I;
  output: O;
  annotations?: ActionAnnotations;
  limits?: Partial<InvocationLimits>;
  // NoInfer: I and O come from the schemas alone, never from the handler's body.
  handler: (input: NoInfer<SchemaType<I>>, ctx: ActionContext) => Promise<NoInfer<SchemaType<O>>> | NoInfer<SchemaType<O>>;
}

/** An action as the runtime holds it (types erased). */
export interface Action {
  name: string;
  title: string;
  description: string;
  risk: Risk;
  input: JsonSchema;
  output: JsonSchema;
  annotations?: ActionAnnotations;
  limits: InvocationLimits;
  handler: (input: unknown, ctx: ActionContext) => Promise<unknown> | unknown;
}

/**
 * Declares an action. The handler's input and output types are inferred from
 * the JSON Schemas (write them inline, they are `const` type parameters).
 */
export function defineAction<const I extends object, const O extends object>(definition: ActionDefinition<I, O>): Action {
  return {
    name: definition.name,
    title: definition.title,
    description: definition.description,
    risk: definition.risk,
    input: definition.input as JsonSchema,
    output: definition.output as JsonSchema,
    ...(definition.annotations ? { annotations: definition.annotations } : {}),
    limits: { ...DEFAULT_LIMITS, ...definition.limits },
    handler: definition.handler as unknown as Action['handler'],
  };
}

/** A manifest, with actions as runtime actions (handlers) instead of their declarations. */
export interface PluginDefinition extends Omit<Manifest, 'actions'> {
  actions: Action[];
  /** `connection/check`: try the target with the lease and say what is wrong, typed. */
  checkConnection?: (ctx: CheckContext) => Promise<ConnectionCheckResult>;
  /** Called on `shutdown` (close pools, flush); bounded by the kernel. */
  onShutdown?: () => Promise<void> | void;
}

export interface Plugin {
  manifest: Manifest;
  actions: ReadonlyMap<string, Action>;
  checkConnection: PluginDefinition['checkConnection'];
  onShutdown: PluginDefinition['onShutdown'];
}

/** Declares a connector; hand the result to `serve()`. */
export function definePlugin(definition: PluginDefinition): Plugin {
  const actions = new Map(definition.actions.map((action) => [action.name, action]));
  const manifest: Manifest = {
    id: definition.id,
    version: definition.version,
    title: definition.title,
    description: definition.description,
    targetSchema: definition.targetSchema,
    credentialSchemas: definition.credentialSchemas,
    transports: definition.transports,
    ...(definition.defaultPort !== undefined ? { defaultPort: definition.defaultPort } : {}),
    ...(definition.help ? { help: definition.help } : {}),
    actions: definition.actions.map((action) => ({
      name: action.name,
      title: action.title,
      description: action.description,
      risk: action.risk,
      input: action.input,
      output: action.output,
      ...(action.annotations ? { annotations: action.annotations } : {}),
      limits: action.limits,
    })),
  };
  return { manifest, actions, checkConnection: definition.checkConnection, onShutdown: definition.onShutdown };
}
