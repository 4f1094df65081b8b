import { connect, isIP, type Socket } from 'node:net';
import { checkServerIdentity, connect as tlsConnect, type PeerCertificate, type TLSSocket } from 'node:tls';
import type { Endpoint } from './protocol/messages.js';

/**
 * What `net.connect` / `tls.connect` (and clients built on them: ioredis,
 * pg, ssh2, dockerode, undici) need to reach an endpoint: a unix socket path
 * or a loopback host and port.
 */
export function socketOptionsOf(endpoint: Endpoint): { path: string } | { host: string; port: number } {
  return endpoint.type === 'unix' ? { path: endpoint.path } : { host: endpoint.host, port: endpoint.port };
}

/**
 * TLS options that verify the target's real name, never the endpoint's: the
 * endpoint is a relay on loopback or a socket path, so Node's default check
 * (against the host it connected to) would check the wrong name. `name` is
 * normally `endpoint.serverName`; a target setting may override it.
 *
 * A DNS name is also sent as SNI; an IP address is not (RFC 6066 forbids it)
 * but is still what the certificate must name.
 */
export function tlsIdentityFor(name: string): { servername?: string; checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined } {
  return {
    ...(isIP(name) === 0 ? { servername: name } : {}),
    checkServerIdentity: (_host, cert) => checkServerIdentity(name, cert),
  };
}

export interface ConnectEndpointOptions {
  /** Speak TLS end to end with the target, verifying `name` (default: the endpoint's serverName). */
  tls?: { name?: string; ca?: string | Buffer | Array<string | Buffer>; rejectUnauthorized?: boolean };
}

/**
 * A connected socket to the target behind an endpoint: plain, or TLS that
 * verifies the target's name. For clients that take a socket factory, e.g.
 * `https.request(url, { createConnection: () => connectEndpoint(ctx.endpoint!, { tls: {} }) })`.
 */
export function connectEndpoint(endpoint: Endpoint, options: ConnectEndpointOptions = {}): Socket | TLSSocket {
  if (!options.tls) return connect(socketOptionsOf(endpoint));
  const name = options.tls.name ?? endpoint.serverName;
  if (!name) throw new Error('This endpoint carries no server name to verify the TLS certificate against; pass tls.name.');
  return tlsConnect({
    ...socketOptionsOf(endpoint),
    ...tlsIdentityFor(name),
    ...(options.tls.ca !== undefined ? { ca: options.tls.ca } : {}),
    ...(options.tls.rejectUnauthorized !== undefined ? { rejectUnauthorized: options.tls.rejectUnauthorized } : {}),
  });
}
