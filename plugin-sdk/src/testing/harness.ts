import { compileManifest, formatAjvErrors, type CompiledManifest } from '../protocol/manifest.js';
import { isEndpoint, type ConnectionCheckResult, type CredentialLease, type Endpoint, type InvocationLimits, type ProgressValue } from '../protocol/messages.js';
import type { ActionContext, Plugin } from '../plugin.js';

export interface HarnessCall {
  target?: Record<string, unknown>;
  credentials?: CredentialLease;
  endpoint?: Endpoint | null;
  limits?: Partial<InvocationLimits>;
  signal?: AbortSignal;
}

/**
 * An in-process harness for unit tests of a connector: calls handlers
 * directly with a real context, validating input and output against the
 * manifest's schemas as the kernel would.
 */
export interface Harness {
  manifest: CompiledManifest;
  progress: ProgressValue[];
  logs: string[];
  invoke(action: string, input?: unknown, call?: HarnessCall): Promise<unknown>;
  check(call?: HarnessCall): Promise<ConnectionCheckResult>;
}

export function createHarness(plugin: Plugin): Harness {
  const manifest = compileManifest(plugin.manifest);
  const progress: ProgressValue[] = [];
  const logs: string[] = [];
  let n = 0;
  const context = (call: HarnessCall, limits: InvocationLimits): ActionContext => {
    n += 1;
    // As serve() does: a shape the protocol does not have is refused, so a test cannot pass a version-1 endpoint by mistake.
    if (call.endpoint && !isEndpoint(call.endpoint)) throw new Error(`not a protocol-2 endpoint: ${JSON.stringify(call.endpoint)} (use {type: "tcp", host, port, transport} or {type: "unix", path, transport})`);
    const log = (level: string) => (message: string) => void logs.push(`${level} ${message}`);
    return {
      invocationId: `harness-${n}`,
      signal: call.signal ?? new AbortController().signal,
      target: call.target ?? {},
      credentials: call.credentials ?? { kind: Object.keys(plugin.manifest.credentialSchemas)[0] ?? 'none', fields: {} },
      endpoint: call.endpoint ? Object.freeze({ ...call.endpoint }) : null,
      limits,
      progress: (value) => void progress.push(value),
      log: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
      kernel: {
        sign: () => Promise.reject(new Error('kernel/sign is not available in the harness')),
        hostKey: () => Promise.reject(new Error('kernel/hostKey is not available in the harness')),
      },
    };
  };
  return {
    manifest,
    progress,
    logs,
    async invoke(name, input = {}, call = {}) {
      const action = plugin.actions.get(name);
      if (!action) throw new Error(`no action "${name}"`);
      const validateInput = manifest.inputs.get(name)!;
      if (!validateInput(input)) throw new Error(`invalid input: ${formatAjvErrors(validateInput.errors)}`);
      const output = await action.handler(input, context(call, { ...action.limits, ...call.limits }));
      const validateOutput = manifest.outputs.get(name)!;
      if (!validateOutput(output)) throw new Error(`output does not match the output schema: ${formatAjvErrors(validateOutput.errors, 'output')}`);
      return output;
    },
    async check(call = {}) {
      if (!plugin.checkConnection) return { ok: true };
      return plugin.checkConnection(context(call, { timeoutMs: 15_000, maxOutputBytes: 0 }));
    },
  };
}
