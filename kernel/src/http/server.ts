import { serve, type ServerType } from '@hono/node-server';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { isIP } from 'node:net';
import { KernelError } from '../lib/errors.js';
import { isLoopbackAddress } from './boundary.js';

/**
 * Invariant 7: refuses any bind address that is not loopback, with a message
 * that says why. `localhost` is accepted and bound as 127.0.0.1 (never
 * resolved, so a poisoned hosts file cannot widen the bind).
 */
export function loopbackBindAddress(host: string): string {
  const trimmed = host.trim().replace(/^\[(.*)\]$/, '$1');
  if (trimmed.toLowerCase() === 'localhost') return '127.0.0.1';
  if (isIP(trimmed) !== 0 && isLoopbackAddress(trimmed)) return trimmed;
  throw new KernelError(
    'non_loopback_bind',
    `Refusing to listen on "${host}": AIPermission is local-only and binds a loopback address (127.0.0.1, ::1 or localhost). ` +
      'Exposing it on a network would let other machines reach your credentials and approvals.',
    { status: 400 },
  );
}

export interface RunningServer {
  host: string;
  port: number;
  url: string;
  close(): Promise<void>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type FetchHandler = (request: Request, env: any) => Response | Promise<Response>;

export async function listenOnLoopback(
  fetch: FetchHandler,
  options: { host: string; port: number; onUpgrade?: (request: IncomingMessage, socket: Duplex, head: Buffer) => void },
): Promise<RunningServer> {
  const host = loopbackBindAddress(options.host);
  const server: ServerType = await new Promise((resolve, reject) => {
    const created = serve({ fetch, hostname: host, port: options.port }, () => resolve(created));
    // Without a listener node answers every Upgrade by closing the connection.
    if (options.onUpgrade) created.on('upgrade', options.onUpgrade);
    created.once('error', (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'EADDRINUSE'
          ? new KernelError('port_in_use', `Port ${options.port} on ${host} is already in use. Is another gateway running? Pick another with --port.`, { status: 409 })
          : error,
      );
    });
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    host,
    port: address.port,
    url: `http://${urlHost}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        // Long-lived event streams would hold close() open forever.
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
