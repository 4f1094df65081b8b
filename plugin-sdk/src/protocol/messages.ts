/**
 * The AIPermission plugin protocol, v1: every message declared once, as a
 * typed value shared by the kernel and every plugin (never a copy). The
 * normative description is docs/protocol.md.
 */
import { NotificationType, NotificationType0, ProgressType, RequestType, RequestType0 } from 'vscode-jsonrpc/node';
import type { Manifest } from './manifest-types.js';

/** Protocol versions this SDK speaks; one integer each, highest preferred. */
export const PROTOCOL_VERSIONS: readonly number[] = [1];
export const PROTOCOL_VERSION = 1;

/** Largest framed message either side accepts (8 MiB): above the kernel's 4 MiB output ceiling plus JSON overhead. */
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

// ---- shared shapes ---------------------------------------------------------

/** Where to connect, as the kernel opened it for this invocation (direct: the target's address; over SSH: a loopback tunnel). */
export interface Endpoint {
  host: string;
  port: number;
  /** `direct` or `over_ssh`; informational for the plugin. */
  transport: string;
}

/** The one credential lease of one invocation: only the fields the credential schema declares. */
export interface CredentialLease {
  /** Which of the manifest's credential schemas this is. */
  kind: string;
  /** Declared fields, secret ones included (those marked `"x-secret": true`). */
  fields: Record<string, unknown>;
}

export interface InvocationLimits {
  timeoutMs: number;
  maxOutputBytes: number;
}

export interface KernelCapabilities {
  /** The kernel answers `kernel/sign` (SSH authentication signing, invariant 2). */
  sign?: boolean;
  /** The kernel answers `kernel/hostKey` (host-key verification, invariant 3). */
  hostKey?: boolean;
}

// ---- kernel -> plugin ------------------------------------------------------

export interface InitializeParams {
  protocolVersions: number[];
  kernel: { name: string; version: string };
  capabilities: KernelCapabilities;
}
export interface InitializeResult {
  protocolVersion: number;
  manifest: Manifest;
}
export const InitializeRequest = new RequestType<InitializeParams, InitializeResult, void>('initialize');
export const InitializedNotification = new NotificationType0('initialized');

export interface ConnectionCheckParams {
  invocationId: string;
  target: Record<string, unknown>;
  credentials: CredentialLease;
  endpoint: Endpoint | null;
}
/** Why a connection check failed, typed so a UI can say what to fix. */
export type ConnectionProblem = 'auth_failed' | 'network' | 'tls' | 'timeout' | 'config' | 'unknown';
export interface ConnectionCheckResult {
  ok: boolean;
  problem?: ConnectionProblem;
  message?: string;
  details?: Record<string, unknown>;
}
export const ConnectionCheckRequest = new RequestType<ConnectionCheckParams, ConnectionCheckResult, void>('connection/check');

export interface InvokeParams {
  invocationId: string;
  action: string;
  input: unknown;
  target: Record<string, unknown>;
  credentials: CredentialLease;
  endpoint: Endpoint | null;
  limits: InvocationLimits;
}
export interface InvokeResult {
  output: unknown;
}
export const InvokeRequest = new RequestType<InvokeParams, InvokeResult, void>('action/invoke');

export const ShutdownRequest = new RequestType0<null, void>('shutdown');
export const ExitNotification = new NotificationType0('exit');

// ---- plugin -> kernel ------------------------------------------------------

/** `$/progress` with the invocation id as the token. */
export interface ProgressValue {
  message?: string;
  completed?: number;
  total?: number;
}
export const InvocationProgress = new ProgressType<ProgressValue>();

export interface SignParams {
  invocationId: string;
  /** Base64 of the data to sign (an SSH authentication challenge). */
  data: string;
}
export const SignRequest = new RequestType<SignParams, { signature: string }, void>('kernel/sign');

export interface HostKeyParams {
  invocationId: string;
  host: string;
  port: number;
  keyType: string;
  fingerprint: string;
}
export const HostKeyRequest = new RequestType<HostKeyParams, { trusted: boolean }, void>('kernel/hostKey');

/** A structured log line a plugin may send instead of writing to stderr (stderr works too). */
export const LogNotification = new NotificationType<{ level: 'debug' | 'info' | 'warn' | 'error'; message: string }>('plugin/log');

// ---- wire errors -------------------------------------------------------------

/**
 * Error codes on the wire. JSON-RPC's own for malformed params (-32602) and
 * absent methods (-32601, which also means "capability absent"), the LSP
 * convention for cancellation (-32800), and a small project range in the
 * implementation-defined block.
 */
export const WireErrorCodes = {
  InvalidParams: -32602,
  MethodNotFound: -32601,
  InternalError: -32603,
  RequestCancelled: -32800,
  ProtocolVersionUnsupported: -32010,
  UnknownAction: -32011,
  ActionFailed: -32012,
} as const;

/** The `data` of an ActionFailed error: all that crosses the wire about a failure. */
export interface ActionFailureData {
  kind: 'config' | 'transient' | 'system';
  retryable: boolean;
  userMessage: string;
}

export function isActionFailureData(value: unknown): value is ActionFailureData {
  if (typeof value !== 'object' || value === null) return false;
  const data = value as Record<string, unknown>;
  return (data.kind === 'config' || data.kind === 'transient' || data.kind === 'system') && typeof data.retryable === 'boolean' && typeof data.userMessage === 'string';
}
