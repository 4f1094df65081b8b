/**
 * The AIPermission plugin protocol, v2: every message declared once, as a
 * typed value shared by the kernel and every plugin (never a copy). The
 * normative description is docs/protocol.md.
 */
import { NotificationType, NotificationType0, ProgressType, RequestType, RequestType0 } from 'vscode-jsonrpc/node';
import type { Manifest } from './manifest-types.js';

/**
 * Protocol versions this SDK speaks; one integer each, highest preferred.
 * Version 2 (this one): the endpoint is a union (loopback TCP or a unix
 * socket) because plugins have no network of their own, and the project's
 * error codes left the range vscode-jsonrpc reserves. Version 1 is not
 * spoken any more: its endpoint was the target's own address.
 */
export const PROTOCOL_VERSIONS: readonly number[] = [2];
export const PROTOCOL_VERSION = 2;

/** Largest framed message either side accepts (8 MiB): above the kernel's 4 MiB output ceiling plus JSON overhead. */
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

// ---- shared shapes ---------------------------------------------------------

export interface EndpointBase {
  /** How the kernel reaches the target behind the endpoint: `direct` (a TCP connection it opened) or `over_ssh` (a tunnel); informational. */
  transport: string;
  /**
   * The name a TLS client verifies the target's certificate against and
   * sends as SNI: the target's configured host, never the endpoint's own
   * address or path. Absent when the kernel knows no name for the target.
   */
  serverName?: string;
}

/** A loopback TCP port the kernel listens on (where the plugin has no sandbox of its own network). */
export interface TcpEndpoint extends EndpointBase {
  type: 'tcp';
  /** A loopback address; this kernel always hands out 127.0.0.1. */
  host: string;
  port: number;
}

/** A unix socket inside the plugin's sandbox (under bubblewrap, where the plugin has no network at all). */
export interface UnixEndpoint extends EndpointBase {
  type: 'unix';
  /** The socket's path as the plugin sees it (e.g. /run/ep/1.sock). */
  path: string;
}

/**
 * Where to connect for one invocation: an endpoint the kernel opened and
 * relays to the target (directly, or later over an SSH tunnel). Plugins
 * have no network of their own; this is the only address that reaches the
 * target.
 */
export type Endpoint = TcpEndpoint | UnixEndpoint;

/** True for a well-formed protocol-2 endpoint (checked on receipt: a shape this SDK does not know is refused, not guessed at). */
export function isEndpoint(value: unknown): value is Endpoint {
  if (typeof value !== 'object' || value === null) return false;
  const e = value as Record<string, unknown>;
  if (typeof e.transport !== 'string' || (e.serverName !== undefined && typeof e.serverName !== 'string')) return false;
  if (e.type === 'tcp') return typeof e.host === 'string' && e.host.length > 0 && Number.isInteger(e.port) && (e.port as number) > 0 && (e.port as number) < 65536;
  if (e.type === 'unix') return typeof e.path === 'string' && e.path.length > 0;
  return false;
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
 * The project's own block of JSON-RPC error codes, -33000..-33099: outside
 * the range JSON-RPC reserves (-32768..-32000), which includes the block
 * vscode-jsonrpc uses for itself (-32099..-32000), and outside LSP's
 * (-32899..-32800). New project codes are taken from here, in order.
 */
export const PROJECT_ERROR_CODE_RANGE = { first: -33000, last: -33099 } as const;

/**
 * Error codes on the wire. JSON-RPC's own for malformed params (-32602) and
 * absent methods (-32601, which also means "capability absent"), the LSP
 * convention for cancellation (-32800), and the project's block
 * (PROJECT_ERROR_CODE_RANGE) for the rest.
 */
export const WireErrorCodes = {
  InvalidParams: -32602,
  MethodNotFound: -32601,
  InternalError: -32603,
  RequestCancelled: -32800,
  ProtocolVersionUnsupported: -33000,
  UnknownAction: -33001,
  ActionFailed: -33002,
} as const;

/**
 * The codes protocol version 1 used, inside vscode-jsonrpc's reserved block.
 * Only one still matters: a plugin built with a version-1 SDK refuses a
 * kernel that offers only version 2 with ProtocolVersionUnsupported -32010,
 * and the kernel recognises it by that code to say "rebuild the plugin".
 */
export const V1WireErrorCodes = {
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
