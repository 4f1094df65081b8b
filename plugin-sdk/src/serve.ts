import { realpathSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { createMessageConnection, ResponseError, type CancellationToken, type MessageConnection } from 'vscode-jsonrpc/node';
import { BoundedMessageReader, FramedMessageWriter } from './protocol/framing.js';
import {
  ConnectionCheckRequest,
  ExitNotification,
  HostKeyRequest,
  InitializeRequest,
  InitializedNotification,
  InvocationProgress,
  InvokeRequest,
  PROTOCOL_VERSIONS,
  ShutdownRequest,
  SignRequest,
  WireErrorCodes,
  isEndpoint,
  type ConnectionCheckParams,
  type CredentialLease,
  type InvokeParams,
  type KernelCapabilities,
} from './protocol/messages.js';
import { isActionError } from './errors.js';
import type { ActionContext, Logger, Plugin } from './plugin.js';

/** How long `shutdown` waits for the plugin's own onShutdown before answering anyway. */
const SHUTDOWN_HOOK_MS = 3_000;
/** Recent secret values kept for masking late log lines (a pool error after the call); bounded. */
const MAX_MASKED_SECRETS = 64;
const MIN_SECRET_LENGTH = 4;

const secretsToMask: string[] = [];

function rememberSecrets(plugin: Plugin, lease: CredentialLease) {
  const schema = plugin.manifest.credentialSchemas[lease.kind] as { properties?: Record<string, Record<string, unknown>> } | undefined;
  for (const [name, property] of Object.entries(schema?.properties ?? {})) {
    const value = lease.fields[name];
    if (property['x-secret'] === true && typeof value === 'string' && value.length >= MIN_SECRET_LENGTH && !secretsToMask.includes(value)) {
      secretsToMask.push(value);
      if (secretsToMask.length > MAX_MASKED_SECRETS) secretsToMask.shift();
    }
  }
}

/** Replaces every remembered secret value with *** (declared secrets never reach the log). */
export function maskSecrets(text: string): string {
  let out = text;
  for (const secret of secretsToMask) out = out.split(secret).join('***');
  return out;
}

function logger(prefix: string): Logger {
  const write = (level: string) => (message: string) => process.stderr.write(`${level} ${prefix}${message}\n`);
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}

/**
 * Keeps stdout for the protocol alone: the protocol writer gets the real
 * stdout, and everything else that writes there (console.log, a dependency's
 * print) is sent to stderr, the plugin's log. stderr is masked.
 */
function takeOverStdio(): Writable {
  const realStdoutWrite = process.stdout.write.bind(process.stdout);
  const realStderrWrite = process.stderr.write.bind(process.stderr);
  const protocolOut = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      realStdoutWrite(chunk, (error?: Error | null) => callback(error ?? null));
    },
  });
  const toStderr = (chunk: unknown, ...rest: unknown[]): boolean => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8');
    return (realStderrWrite as (c: string, ...r: unknown[]) => boolean)(maskSecrets(text), ...rest);
  };
  process.stdout.write = toStderr as typeof process.stdout.write;
  process.stderr.write = toStderr as typeof process.stderr.write;
  return protocolOut;
}

/**
 * The lease for one invocation. `ctx.credentials` stops answering once the
 * invocation is over (a closure that outlives the call gets an error, not a
 * password); what it returns is a frozen copy.
 */
function revocableLease(lease: CredentialLease): { get(): CredentialLease; revoke(): void } {
  let revoked = false;
  const frozen = Object.freeze({ kind: lease.kind, fields: Object.freeze({ ...lease.fields }) });
  return {
    get() {
      if (revoked) throw new Error('This credential lease has expired: credentials are only valid while the invocation runs.');
      return frozen;
    },
    revoke: () => {
      revoked = true;
    },
  };
}

/** Says which side is older and what to do about it (PROTOCOL.md, "Versioning"). */
export function versionMismatch(offered: readonly number[]): string {
  const ours = `This plugin speaks plugin protocol version ${PROTOCOL_VERSIONS.join(', ')}; the kernel offered ${offered.join(', ') || 'none'}.`;
  if (offered.length > 0 && Math.max(...offered) < Math.min(...PROTOCOL_VERSIONS)) return `${ours} The gateway is older than this plugin: upgrade AIPermission.`;
  if (offered.length > 0 && Math.min(...offered) > Math.max(...PROTOCOL_VERSIONS)) return `${ours} The plugin is older than the gateway: rebuild it with the current @aipermission/plugin-sdk.`;
  return `${ours} Upgrade whichever is older.`;
}

function cancelled(): ResponseError<void> {
  return new ResponseError(WireErrorCodes.RequestCancelled, 'The invocation was cancelled.');
}

/** Races the handler against cancellation: a cancel is answered at once, whatever the handler does. */
function untilCancelled<T>(token: CancellationToken, controller: AbortController, work: () => Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const subscription = token.onCancellationRequested(() => {
      controller.abort(new Error('cancelled'));
      reject(cancelled());
    });
    if (token.isCancellationRequested) {
      controller.abort(new Error('cancelled'));
      reject(cancelled());
      return;
    }
    work().then(resolve, reject).finally(() => subscription.dispose());
  });
}

function toWireError(error: unknown, log: Logger): ResponseError<unknown> {
  if (error instanceof ResponseError) return error;
  if (isActionError(error)) {
    return new ResponseError(WireErrorCodes.ActionFailed, error.userMessage, { kind: error.kind, retryable: error.retryable, userMessage: error.userMessage });
  }
  // Internal detail stays in the log; the wire gets a user message only.
  log.error(`unexpected failure: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  return new ResponseError(WireErrorCodes.ActionFailed, 'The connector failed unexpectedly; details are in the plugin log.', {
    kind: 'system',
    retryable: false,
    userMessage: 'The connector failed unexpectedly; details are in the plugin log.',
  });
}

/** Conformance-only actions, present only when the conformance kit starts the plugin. */
function conformanceActions(): Plugin['actions'] {
  if (process.env.AIP_PLUGIN_CONFORMANCE !== '1') return new Map();
  return new Map([
    [
      '__conformance_wait',
      {
        name: '__conformance_wait',
        title: 'wait',
        description: '',
        risk: 'read' as const,
        input: {},
        output: {},
        limits: { timeoutMs: 60_000, maxOutputBytes: 1024 },
        handler: (_input: unknown, ctx: ActionContext) => new Promise(() => void ctx.signal),
      },
    ],
    [
      '__conformance_log_secret',
      {
        name: '__conformance_log_secret',
        title: 'log secret',
        description: '',
        risk: 'read' as const,
        input: {},
        output: {},
        limits: { timeoutMs: 5_000, maxOutputBytes: 1024 },
        handler: (_input: unknown, ctx: ActionContext) => {
          for (const value of Object.values(ctx.credentials.fields)) {
            ctx.log.info(`lease value ${String(value)}`);
            console.log(`console ${String(value)}`);
            console.error(`stderr ${String(value)}`);
          }
          return {};
        },
      },
    ],
  ]);
}

/**
 * Runs a plugin over stdio: answers the kernel's `initialize`, `connection/check`,
 * `action/invoke`, `shutdown` and `exit`, turns `$/cancelRequest` into an
 * AbortSignal, and keeps stdout for the protocol alone.
 *
 * `node plugin.mjs --print-manifest` prints the manifest and exits (build tooling).
 */
export function serve(plugin: Plugin): MessageConnection | undefined {
  if (process.argv.includes('--print-manifest')) {
    process.stdout.write(`${JSON.stringify(plugin.manifest, null, 2)}\n`);
    return undefined;
  }
  const protocolOut = takeOverStdio();
  const log = logger('');
  const connection = createMessageConnection(new BoundedMessageReader(process.stdin), new FramedMessageWriter(protocolOut));
  const actions = new Map([...plugin.actions, ...conformanceActions()]);
  let kernelCapabilities: KernelCapabilities = {};
  let shuttingDown = false;

  const context = (params: ConnectionCheckParams | InvokeParams, controller: AbortController) => {
    const endpoint = params.endpoint ?? null;
    if (endpoint !== null && !isEndpoint(endpoint)) {
      throw new ResponseError(
        WireErrorCodes.InvalidParams,
        'The endpoint is not a protocol-2 endpoint ({type: "tcp", host, port} or {type: "unix", path}); is the kernel older than this plugin-sdk?',
      );
    }
    rememberSecrets(plugin, params.credentials);
    const lease = revocableLease(params.credentials);
    const ctx: ActionContext = {
      invocationId: params.invocationId,
      signal: controller.signal,
      target: Object.freeze({ ...params.target }),
      get credentials() {
        return lease.get();
      },
      endpoint: endpoint === null ? null : Object.freeze({ ...endpoint }),
      limits: 'limits' in params ? params.limits : { timeoutMs: 30_000, maxOutputBytes: 0 },
      progress: (value) => void connection.sendProgress(InvocationProgress, params.invocationId, value).catch(() => undefined),
      log: logger(`[${params.invocationId}] `),
      kernel: {
        async sign(data) {
          if (!kernelCapabilities.sign) throw new Error('The kernel does not offer kernel/sign.');
          const result = await connection.sendRequest(SignRequest, { invocationId: params.invocationId, data: Buffer.from(data).toString('base64') });
          return Buffer.from(result.signature, 'base64');
        },
        async hostKey(key) {
          if (!kernelCapabilities.hostKey) throw new Error('The kernel does not offer kernel/hostKey.');
          return (await connection.sendRequest(HostKeyRequest, { invocationId: params.invocationId, ...key })).trusted;
        },
      },
    };
    return { ctx, revoke: lease.revoke };
  };

  connection.onRequest(InitializeRequest, (params) => {
    kernelCapabilities = params.capabilities ?? {};
    const offered = Array.isArray(params.protocolVersions) ? params.protocolVersions.filter((v) => Number.isInteger(v)) : [];
    const shared = PROTOCOL_VERSIONS.filter((version) => offered.includes(version));
    if (shared.length === 0) throw new ResponseError(WireErrorCodes.ProtocolVersionUnsupported, versionMismatch(offered));
    return { protocolVersion: Math.max(...shared), manifest: plugin.manifest };
  });
  connection.onNotification(InitializedNotification, () => undefined);

  connection.onRequest(ConnectionCheckRequest, async (params, token) => {
    const controller = new AbortController();
    const { ctx, revoke } = context(params, controller);
    try {
      if (!plugin.checkConnection) return { ok: true, message: 'This connector has no connection check.' };
      return await untilCancelled(token, controller, () => plugin.checkConnection!(ctx));
    } catch (error) {
      throw toWireError(error, log);
    } finally {
      revoke();
    }
  });

  connection.onRequest(InvokeRequest, async (params, token) => {
    const action = actions.get(params.action);
    if (!action) throw new ResponseError(WireErrorCodes.UnknownAction, `This connector has no action "${String(params.action).slice(0, 100)}".`);
    const controller = new AbortController();
    const { ctx, revoke } = context(params, controller);
    try {
      const output = await untilCancelled(token, controller, async () => action.handler(params.input, ctx));
      return { output: output === undefined ? null : output };
    } catch (error) {
      throw toWireError(error, log);
    } finally {
      revoke();
    }
  });

  connection.onRequest(ShutdownRequest, async () => {
    shuttingDown = true;
    if (plugin.onShutdown) {
      await Promise.race([Promise.resolve(plugin.onShutdown()).catch((error: unknown) => log.warn(`onShutdown failed: ${String(error)}`)), new Promise((r) => setTimeout(r, SHUTDOWN_HOOK_MS))]);
    }
    return null;
  });
  connection.onNotification(ExitNotification, () => process.exit(shuttingDown ? 0 : 1));
  connection.onError(([error]) => {
    log.error(`protocol error: ${error.message}`);
    process.exit(1);
  });
  // The kernel went away: nothing left to serve.
  connection.onClose(() => process.exit(shuttingDown ? 0 : 1));
  connection.listen();
  return connection;
}

/**
 * True when this module is the program being run (`node dist/plugin.mjs`),
 * false when a test imports it. Write `if (isEntryPoint(import.meta.url)) serve(plugin);`.
 */
export function isEntryPoint(moduleUrl: string): boolean {
  const main = process.argv[1];
  if (!main) return false;
  try {
    return pathToFileURL(realpathSync(main)).href === moduleUrl;
  } catch {
    return false;
  }
}
