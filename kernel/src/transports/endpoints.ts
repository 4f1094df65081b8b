import { rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join, posix } from 'node:path';
import type { Endpoint } from '@aipermission/plugin-sdk/protocol';
import { relay, type DialFailure } from './relay.js';

/** Defaults with their reasons. */
export const TRANSPORT_DEFAULTS = {
  /**
   * Five seconds for the target to accept the kernel's TCP connection: the
   * connect timeout the connectors use themselves, and well inside the
   * shortest action deadline (10 s), so a dead target is reported as such.
   */
  dialTimeoutMs: 5_000,
  /**
   * An endpoint with no invocation running and no relayed connection is
   * closed after five idle minutes, the plugin process's own idle time: an
   * agent session's pauses keep it (and the plugin's pooled connections'
   * endpoint) stable; a finished session frees its listener.
   */
  idleMs: 5 * 60_000,
  /**
   * Connections one endpoint relays at once. Each costs the gateway two
   * sockets, so a plugin that opens connections in a loop must not be able to
   * exhaust the gateway's file descriptors; 64 is well above what a
   * connector's pool needs for one target and profile (the SDK's keeps one,
   * pg's default ten).
   */
  maxConnectionsPerEndpoint: 64,
} as const;

/** Longest unix socket path the kernel can listen on (sun_path is 108 bytes on Linux, with the terminating NUL). */
export const MAX_UNIX_PATH_BYTES = 107;

/**
 * Where an endpoint is put: a unix socket in a directory that is
 * bind-mounted into the plugin's sandbox (`unixDir` on the kernel's side,
 * `sandboxPath` as the plugin sees it), or a loopback TCP port where the
 * plugin has no sandbox of its own network.
 */
export type EndpointPlace = { unixDir: string; sandboxPath: string } | 'loopback';

export interface EndpointRequest {
  /**
   * Whose endpoint this is (one plugin's supervisor: its process and that
   * process's restarts); `closeOwner` closes all of an owner's endpoints.
   */
  owner: string;
  connectorId: string;
  targetId: string;
  profileId: string;
  /**
   * How the kernel reaches the target: `direct`, a TCP connection from the
   * gateway (the default, and the only one today). SSH tunnels will be
   * another value here, with the SSH hop's details, dialled by relay.ts
   * behind the same endpoints and the same guarantees.
   */
  via?: 'direct';
  /** The target's configured address: the only place the relay ever dials (the kernel decides, never the plugin). */
  host: string;
  port: number;
  /** The name a TLS client in the plugin verifies (the target's host); passed on in the endpoint. */
  serverName?: string;
  where: EndpointPlace;
  /**
   * `shared` (the default): the stable endpoint of (owner, target, profile),
   * so the plugin's pooled connections are reused across invocations.
   * `private`: an endpoint for this handle alone, closed with it, relayed
   * connections included (a connection check wants a fresh connection).
   */
  reuse?: 'shared' | 'private';
  /** What the gateway log calls it (default: "the <connector> endpoint of target <id> (profile <id>)"). */
  label?: string;
}

/** One invocation's hold on an endpoint. */
export interface EndpointHandle {
  /** What the plugin is handed. */
  readonly endpoint: Endpoint;
  /** Why the kernel could not reach the target for a connection the plugin made while this handle was open, if it could not. */
  readonly dialFailure: DialFailure | undefined;
  /** Ends this invocation's hold: with no other hold, the endpoint stops accepting connections. Idempotent. */
  close(): void;
}

export interface TransportsDeps {
  /** The gateway log (refused connections, failed dials). */
  log: (line: string) => void;
  dialTimeoutMs?: number;
  idleMs?: number;
  maxConnectionsPerEndpoint?: number;
}

/**
 * The kernel's transports (invariant 3: the kernel owns transports). Today:
 * direct TCP, relayed from an endpoint the plugin can reach; SSH tunnels
 * will be another way to reach the target behind the same endpoint.
 */
export interface Transports {
  /**
   * Opens (or reuses) the endpoint for one invocation and holds it open for
   * connections until the handle is closed. Connections made while a hold
   * exists are relayed to `host:port` and may outlive the hold (pooling);
   * connections made while none exists are refused without dialling.
   */
  openEndpoint(request: EndpointRequest): Promise<EndpointHandle>;
  /** Closes every endpoint of an owner and its relayed connections (the plugin's code is stopped or replaced). */
  closeOwner(owner: string): Promise<void>;
  closeAll(): Promise<void>;
  /** What is open now (status and tests). */
  stats(): { endpoints: number; holds: number; relayed: number };
}

interface Listener {
  key: string;
  owner: string;
  request: EndpointRequest;
  server: Server;
  endpoint: Endpoint;
  /** The socket file on the kernel's side (unix endpoints). */
  socketFile: string | undefined;
  holds: Set<Hold>;
  relays: Set<Socket>;
  idleTimer: NodeJS.Timeout | undefined;
  closing: Promise<void> | undefined;
}

interface Hold extends EndpointHandle {
  dialFailure: DialFailure | undefined;
}

const keyOf = (r: EndpointRequest) =>
  [r.owner, r.connectorId, r.targetId, r.profileId, r.via ?? 'direct', r.host, r.port, r.serverName ?? '', r.where === 'loopback' ? 'loopback' : `${r.where.unixDir}|${r.where.sandboxPath}`].join('\u0000');

/** Endpoints the kernel opens per invocation and relays to the target. */
export function createTransports(deps: TransportsDeps): Transports {
  const dialTimeoutMs = deps.dialTimeoutMs ?? TRANSPORT_DEFAULTS.dialTimeoutMs;
  const idleMs = deps.idleMs ?? TRANSPORT_DEFAULTS.idleMs;
  const maxConnections = deps.maxConnectionsPerEndpoint ?? TRANSPORT_DEFAULTS.maxConnectionsPerEndpoint;
  /** Shared endpoints by key: a listener once listening, or the promise of one. */
  const shared = new Map<string, Listener | Promise<Listener>>();
  const all = new Set<Listener>();
  /** Listeners still starting, by owner: closeOwner waits for them, so none comes up after its owner closed. */
  const starting = new Set<{ owner: string; ready: Promise<unknown> }>();
  let socketNumber = 0;
  let closedForGood = false;

  const describe = (r: EndpointRequest) => r.label ?? `the ${r.connectorId} endpoint of target ${r.targetId} (profile ${r.profileId})`;

  const close = (listener: Listener): Promise<void> => {
    listener.closing ??= (async () => {
      clearTimeout(listener.idleTimer);
      if (shared.get(listener.key) === listener) shared.delete(listener.key);
      all.delete(listener);
      for (const hold of listener.holds) hold.close();
      for (const socket of listener.relays) socket.destroy();
      await new Promise<void>((resolve) => listener.server.close(() => resolve()));
      if (listener.socketFile) await rm(listener.socketFile, { force: true });
    })();
    return listener.closing;
  };

  const armIdle = (listener: Listener) => {
    if (listener.closing || listener.holds.size > 0 || listener.relays.size > 0) return;
    clearTimeout(listener.idleTimer);
    listener.idleTimer = setTimeout(() => {
      if (listener.holds.size === 0 && listener.relays.size === 0) void close(listener);
    }, idleMs);
    listener.idleTimer.unref();
  };

  const onConnection = (listener: Listener, socket: Socket) => {
    // The guarantee (docs/security.md, "Network"): a new connection is relayed
    // only while an invocation for this target and profile holds the endpoint.
    const refusal =
      listener.holds.size === 0 || listener.closing
        ? 'no invocation for it is running'
        : listener.relays.size >= maxConnections
          ? `it already relays ${maxConnections} connections`
          : undefined;
    if (refusal) {
      deps.log(`[kernel] refused a connection to ${describe(listener.request)}: ${refusal}`);
      if (listener.endpoint.type === 'tcp') socket.resetAndDestroy();
      else socket.destroy();
      return;
    }
    clearTimeout(listener.idleTimer);
    listener.relays.add(socket);
    relay(socket, {
      host: listener.request.host,
      port: listener.request.port,
      dialTimeoutMs,
      tcpClient: listener.endpoint.type === 'tcp',
      onDialFailure(failure) {
        deps.log(`[kernel] ${describe(listener.request)}: could not connect to ${failure.address}: ${failure.reason}`);
        for (const hold of listener.holds) hold.dialFailure ??= failure;
      },
      onClosed() {
        listener.relays.delete(socket);
        armIdle(listener);
      },
    });
  };

  const listen = (key: string, request: EndpointRequest): Promise<Listener> => {
    const entry = { owner: request.owner, ready: startListener(key, request) };
    starting.add(entry);
    void entry.ready.then(
      () => starting.delete(entry),
      () => starting.delete(entry),
    );
    return entry.ready as Promise<Listener>;
  };

  const startListener = async (key: string, request: EndpointRequest): Promise<Listener> => {
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
    let endpoint: Endpoint;
    let socketFile: string | undefined;
    const base = { transport: request.via ?? 'direct', ...(request.serverName ? { serverName: request.serverName } : {}) };
    if (request.where === 'loopback') {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        // Port 0: a port the kernel holds from now until the endpoint closes, so no other process can take it in between.
        server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => resolve());
      });
      endpoint = { type: 'tcp', host: '127.0.0.1', port: (server.address() as { port: number }).port, ...base };
    } else {
      socketNumber += 1;
      const name = `${socketNumber}.sock`;
      socketFile = join(request.where.unixDir, name);
      if (Buffer.byteLength(socketFile) > MAX_UNIX_PATH_BYTES) {
        throw new Error(`the endpoint socket path ${socketFile} is longer than the ${MAX_UNIX_PATH_BYTES} bytes a unix socket path may have`);
      }
      await rm(socketFile, { force: true });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ path: socketFile, exclusive: true }, () => resolve());
      });
      endpoint = { type: 'unix', path: posix.join(request.where.sandboxPath, name), ...base };
    }
    server.removeAllListeners('error');
    // A listener error after it is up (EMFILE on accept) refuses that connection; the endpoint stays.
    server.on('error', (error) => deps.log(`[kernel] ${describe(request)}: ${error.message}`));
    const listener: Listener = { key, owner: request.owner, request, server, endpoint, socketFile, holds: new Set(), relays: new Set(), idleTimer: undefined, closing: undefined };
    server.on('connection', (socket) => onConnection(listener, socket));
    all.add(listener);
    return listener;
  };

  const hold = (listener: Listener, isPrivate: boolean): EndpointHandle => {
    clearTimeout(listener.idleTimer);
    const handle: Hold = {
      endpoint: listener.endpoint,
      dialFailure: undefined,
      close() {
        if (!listener.holds.delete(handle)) return;
        if (isPrivate) void close(listener);
        else armIdle(listener);
      },
    };
    listener.holds.add(handle);
    return handle;
  };

  const openEndpoint = async (request: EndpointRequest): Promise<EndpointHandle> => {
    if (closedForGood) throw new Error('the transports are closed (the gateway is stopping)');
    if (request.reuse === 'private') return hold(await listen(`private:${socketNumber}`, request), true);
    const key = keyOf(request);
    let found = shared.get(key);
    if (!found) {
      const opening = listen(key, request);
      shared.set(key, opening);
      opening.then(
        (listener) => {
          if (shared.get(key) === opening) shared.set(key, listener);
        },
        () => {
          if (shared.get(key) === opening) shared.delete(key);
        },
      );
      found = opening;
    }
    const listener = found instanceof Promise ? await found : found;
    // Closed while this open waited for it (its owner stopped, or it idled out): open a fresh one.
    if (listener.closing) return openEndpoint(request);
    return hold(listener, false);
  };

  return {
    openEndpoint,
    async closeOwner(owner) {
      await Promise.allSettled([...starting].filter((entry) => entry.owner === owner).map((entry) => entry.ready));
      await Promise.all([...all].filter((listener) => listener.owner === owner).map(close));
    },
    async closeAll() {
      closedForGood = true;
      await Promise.allSettled([...starting].map((entry) => entry.ready));
      await Promise.all([...all].map(close));
    },
    stats() {
      let holds = 0;
      let relayed = 0;
      for (const listener of all) {
        holds += listener.holds.size;
        relayed += listener.relays.size;
      }
      return { endpoints: all.size, holds, relayed };
    },
  };
}
