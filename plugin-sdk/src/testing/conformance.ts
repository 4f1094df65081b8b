import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { CancellationTokenSource, createMessageConnection, ResponseError, type MessageConnection } from 'vscode-jsonrpc/node';
import { BoundedMessageReader, FramedMessageWriter, ProtocolViolation } from '../protocol/framing.js';
import { compileManifest, secretFieldsOf, ManifestError } from '../protocol/manifest.js';
import type { Manifest } from '../protocol/manifest-types.js';
import {
  ExitNotification,
  InitializeRequest,
  InitializedNotification,
  InvokeRequest,
  PROTOCOL_VERSION,
  ShutdownRequest,
  WireErrorCodes,
  type CredentialLease,
  type InvokeParams,
} from '../protocol/messages.js';

export interface ConformanceOptions {
  /** The bundled plugin file the kernel will run. */
  entry: string | URL;
  /** Extra arguments for node (before the entry). */
  nodeArgs?: string[];
}

/** A running plugin under test, spoken to exactly as the kernel speaks to it. */
export interface PluginUnderTest {
  process: ChildProcess;
  connection: MessageConnection;
  stderr(): string;
  /** Protocol violations seen on stdout (anything that was not a framed message). */
  violations: string[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts the plugin as the kernel would (stdio pipes), with the SDK's conformance-only actions enabled. */
export function startPlugin(options: ConformanceOptions): PluginUnderTest {
  const entry = options.entry instanceof URL ? fileURLToPath(options.entry) : options.entry;
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), entry], {
    env: { AIP_PLUGIN_CONFORMANCE: '1', PATH: process.env.PATH ?? '' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => (stderr += chunk));
  const violations: string[] = [];
  const reader = new BoundedMessageReader(child.stdout!);
  const connection = createMessageConnection(reader, new FramedMessageWriter(child.stdin!));
  reader.onError((error) => {
    if (!(error instanceof ProtocolViolation)) return;
    violations.push(error.message);
    // Nothing more can be read: fail what is pending now instead of at its timeout.
    connection.dispose();
  });
  connection.onError(() => undefined);
  child.stdin!.on('error', () => undefined);
  connection.listen();
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return { process: child, connection, stderr: () => stderr, violations, exit };
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A lease for the first credential kind (with made-up values; secrets get a recognisable random string). */
export function sampleLease(manifest: Manifest): { lease: CredentialLease; secrets: string[] } {
  const [kind, schema] = Object.entries(manifest.credentialSchemas)[0] ?? ['none', {}];
  const fields: Record<string, unknown> = {};
  const secrets: string[] = [];
  const properties = (schema as { properties?: Record<string, { type?: string }> }).properties ?? {};
  const secretNames = new Set(secretFieldsOf(schema as Record<string, unknown>));
  for (const [name, property] of Object.entries(properties)) {
    if (secretNames.has(name)) {
      const value = `conformance-secret-${randomBytes(8).toString('hex')}`;
      fields[name] = value;
      secrets.push(value);
    } else if (property.type === 'string' || property.type === undefined) {
      fields[name] = `sample-${name}`;
    }
  }
  return { lease: { kind, fields }, secrets };
}

function invokeParams(action: string, lease: CredentialLease, id: string): InvokeParams {
  return { invocationId: id, action, input: {}, target: {}, credentials: lease, endpoint: null, limits: { timeoutMs: 5_000, maxOutputBytes: 65_536 } };
}

/** One conformance check: a name and what it asserts (throws when it fails). */
export interface ConformanceCheck {
  name: string;
  run(): Promise<void>;
}

/**
 * The checks every plugin must pass, in order, sharing one plugin process.
 * `describeConformance` runs them as vitest tests; `runConformance` as a report.
 */
export function conformanceChecks(options: ConformanceOptions): { checks: ConformanceCheck[]; stop(): Promise<void> } {
  let plugin: PluginUnderTest | undefined;
  let manifest: Manifest | undefined;
  const running = () => {
    if (!plugin) throw new Error('the plugin was not started (the handshake check failed)');
    return plugin;
  };
  const need = () => {
    if (!manifest) throw new Error('no manifest (the handshake check failed)');
    return manifest;
  };
  const checks: ConformanceCheck[] = [
    {
      name: `completes the handshake with protocol version ${PROTOCOL_VERSION} and a manifest`,
      async run() {
        plugin = startPlugin(options);
        const result = await within(
          running().connection.sendRequest(InitializeRequest, { protocolVersions: [PROTOCOL_VERSION], kernel: { name: 'conformance', version: '1' }, capabilities: {} }),
          5_000,
          'the handshake',
        );
        if (result.protocolVersion !== PROTOCOL_VERSION) throw new Error(`answered protocol version ${result.protocolVersion}, expected ${PROTOCOL_VERSION}`);
        if (!result.manifest) throw new Error('answered without a manifest');
        manifest = result.manifest;
        running().connection.sendNotification(InitializedNotification);
      },
    },
    {
      name: 'refuses a protocol version it does not speak, with a message',
      async run() {
        const probe = startPlugin(options);
        try {
          await within(probe.connection.sendRequest(InitializeRequest, { protocolVersions: [999], kernel: { name: 'conformance', version: '1' }, capabilities: {} }), 5_000, 'the handshake');
          throw new Error('accepted protocol version 999');
        } catch (error) {
          if (!(error instanceof ResponseError) || error.code !== WireErrorCodes.ProtocolVersionUnsupported) throw error;
        } finally {
          probe.process.kill('SIGKILL');
        }
      },
    },
    {
      name: 'has a valid manifest whose schemas all compile in strict mode',
      async run() {
        try {
          compileManifest(need());
        } catch (error) {
          if (error instanceof ManifestError) throw new Error(error.problems.join('\n'), { cause: error });
          throw error;
        }
      },
    },
    {
      name: 'answers an unknown action with the UnknownAction error and keeps running',
      async run() {
        const { lease } = sampleLease(need());
        try {
          await within(running().connection.sendRequest(InvokeRequest, invokeParams('__no_such_action__', lease, 'conformance-unknown')), 5_000, 'the answer');
          throw new Error('an unknown action succeeded');
        } catch (error) {
          if (!(error instanceof ResponseError) || error.code !== WireErrorCodes.UnknownAction) throw error;
        }
        if (running().process.exitCode !== null) throw new Error('the plugin exited after an unknown action');
      },
    },
    {
      name: 'honours a cancel within 1 s',
      async run() {
        const { lease } = sampleLease(need());
        const source = new CancellationTokenSource();
        const call = running().connection.sendRequest(InvokeRequest, invokeParams('__conformance_wait', lease, 'conformance-cancel'), source.token);
        await new Promise((r) => setTimeout(r, 50));
        const cancelledAt = Date.now();
        source.cancel();
        try {
          await within(call, 1_000, 'answering the cancel');
          throw new Error('the cancelled call succeeded');
        } catch (error) {
          if (!(error instanceof ResponseError) || error.code !== WireErrorCodes.RequestCancelled) throw error;
        }
        if (Date.now() - cancelledAt > 1_000) throw new Error('the cancel took longer than 1 s');
      },
    },
    {
      name: 'never writes a declared secret to stderr',
      async run() {
        const { lease, secrets } = sampleLease(need());
        if (secrets.length === 0) return;
        await within(running().connection.sendRequest(InvokeRequest, invokeParams('__conformance_log_secret', lease, 'conformance-secret')), 5_000, 'the call');
        await new Promise((r) => setTimeout(r, 50));
        for (const secret of secrets) if (running().stderr().includes(secret)) throw new Error('a declared secret value appeared on stderr');
      },
    },
    {
      name: 'writes nothing but protocol messages to stdout',
      async run() {
        if (running().violations.length > 0) throw new Error(`stray output on stdout: ${running().violations.join('; ')}`);
      },
    },
    {
      name: 'exits with code 0 after shutdown and exit',
      async run() {
        await within(running().connection.sendRequest(ShutdownRequest), 3_000, 'shutdown');
        running().connection.sendNotification(ExitNotification);
        const { code, signal } = await within(running().exit, 3_000, 'exiting');
        if (code !== 0) throw new Error(`exited with ${signal ? `signal ${signal}` : `code ${code}`}`);
        if (running().violations.length > 0) throw new Error(`stray output on stdout: ${running().violations.join('; ')}`);
      },
    },
  ];
  return {
    checks,
    async stop() {
      if (plugin && plugin.process.exitCode === null && plugin.process.signalCode === null) plugin.process.kill('SIGKILL');
      plugin?.connection.dispose();
    },
  };
}

export interface ConformanceReport {
  passed: boolean;
  results: Array<{ name: string; ok: boolean; error?: string }>;
}

/** Runs every check and reports; no test framework needed. */
export async function runConformance(options: ConformanceOptions): Promise<ConformanceReport> {
  const { checks, stop } = conformanceChecks(options);
  const results: ConformanceReport['results'] = [];
  try {
    for (const check of checks) {
      try {
        await check.run();
        results.push({ name: check.name, ok: true });
      } catch (error) {
        results.push({ name: check.name, ok: false, error: (error as Error).message });
      }
    }
  } finally {
    await stop();
  }
  return { passed: results.every((r) => r.ok), results };
}
