import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './cli.js';

/**
 * A real Redis with TLS on a free loopback port, with a throwaway CA and a
 * server certificate that names only `names` (by default `localhost`, so a
 * client that checks the address it connected to, 127.0.0.1 or a socket,
 * instead of the target's name fails).
 */
export async function startTlsRedis(names: string[] = ['localhost']): Promise<{ port: number; caPem: string; stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'aip-kernel-redis-tls-'));
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=aip-test-ca', '-keyout', 'ca.key', '-out', 'ca.crt']);
  await writeFile(join(dir, 'san.cnf'), `subjectAltName=${names.map((name) => (/^[\d.]+$/.test(name) ? `IP:${name}` : `DNS:${name}`)).join(',')}\n`);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${names[0]}`, '-keyout', 'server.key', '-out', 'server.csr']);
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'san.cnf', '-out', 'server.crt']);
  const port = await freePort();
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', '0', '--tls-port', String(port), '--tls-cert-file', 'server.crt', '--tls-key-file', 'server.key', '--tls-ca-cert-file', 'ca.crt', '--tls-auth-clients', 'no', '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1'],
    { cwd: dir, stdio: 'ignore' },
  );
  for (let i = 0; i < 100; i += 1) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (up) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const caPem = await readFile(join(dir, 'ca.crt'), 'utf8');
  return {
    port,
    caPem,
    async stop() {
      child.kill('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
