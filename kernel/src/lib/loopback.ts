/**
 * What counts as this machine and as this gateway (invariant 7). Shared by the
 * HTTP boundary, the MCP bridge channel and the CLI, which each check it
 * where a connection arrives or leaves.
 */

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const bare = address.startsWith('::ffff:') ? address.slice(7) : address;
  return bare === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bare);
}

/** The Host and Origin values a request may carry: the gateway's own loopback names on its port. */
export function allowedHosts(port: number): Set<string> {
  return new Set([`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]);
}

/**
 * Whether a Host (or an Origin's host) names this gateway: `localhost` or a
 * loopback IP literal (any of 127/8, as the gateway may bind 127.0.0.2), on
 * its port. A DNS-rebinding page always sends its own domain name, never this.
 */
export function isGatewayHost(host: string, port: number): boolean {
  const lower = host.toLowerCase();
  if (allowedHosts(port).has(lower)) return true;
  const match = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d+)$/.exec(lower);
  return match !== null && Number(match[2]) === port && isLoopbackAddress(match[1]);
}
