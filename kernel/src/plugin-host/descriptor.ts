import { annotationsFor, declaredFieldsOf, formatAjvErrors, secretFieldsOf, type CompiledManifest } from '@aipermission/plugin-sdk/protocol';

type ValidateFunction = CompiledManifest['target'];
import { canonicalHash } from '../lib/canonical.mjs';
import { KERNEL_LIMITS, type ActionDescriptor, type ConnectorDescriptor } from '../connectors/index.js';
import type { PluginSource } from './registry.js';

function check(validate: ValidateFunction | undefined, value: unknown, prefix: string): string | undefined {
  if (!validate) return undefined;
  return validate(value) ? undefined : formatAjvErrors(validate.errors, prefix);
}

/** A plugin action as the kernel decides on it; also carries MCP annotations. */
export interface PluginActionDescriptor extends ActionDescriptor {
  annotations: ReturnType<typeof annotationsFor>;
}

/**
 * The kernel's view of a plugin, from its validated manifest: schemas
 * compiled once, hashes for approval snapshots, secret fields from the
 * `x-secret` marks, and validators for targets and credential profiles.
 */
export function descriptorFor(source: PluginSource): ConnectorDescriptor & { plugin: PluginSource } {
  const { manifest, compiled } = source;
  const actions = new Map<string, PluginActionDescriptor>();
  for (const action of manifest.actions) {
    const limits = {
      timeoutMs: Math.min(action.limits.timeoutMs, KERNEL_LIMITS.maxTimeoutMs),
      maxOutputBytes: Math.min(action.limits.maxOutputBytes, KERNEL_LIMITS.maxOutputBytes),
    };
    actions.set(action.name, {
      name: action.name,
      title: action.title,
      description: action.description,
      risk: action.risk,
      definitionHash: canonicalHash(action),
      inputSchema: action.input,
      outputSchema: action.output,
      limits,
      annotations: annotationsFor(action),
      validateInput: (input) => check(compiled.inputs.get(action.name), input, 'input'),
      validateOutput: (output) => check(compiled.outputs.get(action.name), output, 'output'),
    });
  }
  const credentialKinds = Object.keys(manifest.credentialSchemas);
  return {
    id: manifest.id,
    version: manifest.version,
    title: manifest.title,
    description: manifest.description,
    source: source.kind,
    ...(manifest.help ? { help: manifest.help } : {}),
    transports: manifest.transports,
    ...(manifest.defaultPort !== undefined ? { defaultPort: manifest.defaultPort } : {}),
    credentialKinds,
    manifestHash: source.manifestHash,
    integrity: source.integrity,
    actions,
    plugin: source,
    secretFields: (kind) => {
      const schema = manifest.credentialSchemas[kind];
      return schema ? secretFieldsOf(schema) : undefined;
    },
    validateTargetConfig: (config) => check(compiled.target, config, 'config'),
    validateCredential(kind, config, secret) {
      const schema = manifest.credentialSchemas[kind];
      if (!schema) return `credential kind "${kind}" is not one of ${credentialKinds.map((k) => `"${k}"`).join(', ')}`;
      const secrets = new Set(secretFieldsOf(schema));
      const declared = new Set(declaredFieldsOf(schema));
      const problems: string[] = [];
      for (const name of Object.keys((config ?? {}) as object)) {
        if (secrets.has(name)) problems.push(`"${name}" is a secret field: send it in "secret", not "config"`);
      }
      for (const name of Object.keys((secret ?? {}) as object)) {
        if (declared.has(name) && !secrets.has(name)) problems.push(`"${name}" is not a secret field: send it in "config"`);
      }
      if (problems.length > 0) return problems.join('; ');
      return check(compiled.credentials.get(kind), { ...(config as object), ...(secret as object) }, 'credential');
    },
  };
}
