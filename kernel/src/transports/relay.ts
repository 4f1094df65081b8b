import { connect, type Socket } from 'node:net';

/** Why the kernel could not reach a target. */
export interface DialFailure {
  /** host:port as configured in the target. */
  address: string;
  /** The system's reason (e.g. `connect ECONNREFUSED 10.0.0.5:6379`) or the timeout. */
  reason: string;
  timedOut: boolean;
}

export interface RelayOptions {
  host: string;
  port: number;
  dialTimeoutMs: number;
  /** The plugin's side is a TCP socket (loopback endpoint): Nagle off, and a failed dial answers with a reset. */
  tcpClient: boolean;
  onDialFailure(failure: DialFailure): void;
  /** Called once, when both sides are gone. */
  onClosed(): void;
}

/**
 * Relays one connection from a plugin's endpoint to the target: the kernel
 * dials the target's configured address (never one the plugin names), holds
 * what the plugin sends until the target accepts, then copies bytes both
 * ways (TLS, when used, is end to end between plugin and target). Either
 * side closing or failing ends both. A target that cannot be reached closes
 * the plugin's side, so its client reports a closed connection (a network
 * problem) as it would for the target itself.
 */
export function relay(client: Socket, options: RelayOptions): void {
  const address = `${options.host}:${options.port}`;
  // Small request/response protocols (Redis, Postgres) suffer from Nagle's delay on every hop.
  if (options.tcpClient) client.setNoDelay(true);
  const upstream = connect({ host: options.host, port: options.port, allowHalfOpen: true, noDelay: true });
  let connected = false;
  let closedSides = 0;
  const sideClosed = () => {
    closedSides += 1;
    if (closedSides === 2) options.onClosed();
  };
  /** A failure: both sides end now. Before anything was relayed, a reset tells a TCP client "refused" at once. */
  const abort = () => {
    clearTimeout(timer);
    upstream.destroy();
    if (!connected && options.tcpClient && !client.destroyed) client.resetAndDestroy();
    else client.destroy();
  };
  /** A clean close of one side: the other gets what is still in flight, its end (through pipe()), then goes. */
  const follow = (other: Socket) => {
    if (!connected) return abort();
    if (other.destroyed) return;
    if (other.writableFinished) other.destroy();
    else other.end(() => other.destroy());
  };
  const timer = setTimeout(() => {
    options.onDialFailure({ address, reason: `no answer within ${options.dialTimeoutMs} ms`, timedOut: true });
    abort();
  }, options.dialTimeoutMs);
  upstream.once('connect', () => {
    connected = true;
    clearTimeout(timer);
    client.pipe(upstream);
    upstream.pipe(client);
    client.resume();
  });
  upstream.on('error', (error: NodeJS.ErrnoException) => {
    if (!connected) options.onDialFailure({ address, reason: error.message, timedOut: false });
    abort();
  });
  client.on('error', abort);
  upstream.once('close', () => {
    sideClosed();
    follow(client);
  });
  client.once('close', () => {
    sideClosed();
    follow(upstream);
  });
}
