import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const REDIS = { host: '127.0.0.1', port: 6379 };

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
    server.on('error', reject);
  });
}

/**
 * A real Redis with TLS on a free port, with a throwaway CA and a server
 * certificate naming `names` only (DNS names or IP addresses; by default
 * `localhost` alone, so a client that checks the address it connected to,
 * 127.0.0.1, instead of the target's name fails).
 */
export async function startTlsRedis(names: string[] = ['localhost']): Promise<{ port: number; caPem: string; stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'aip-redis-tls-'));
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=aip-test-ca', '-keyout', 'ca.key', '-out', 'ca.crt']);
  const san = names.map((name) => (/^[\d.]+$|:/.test(name) ? `IP:${name}` : `DNS:${name}`)).join(',');
  await writeFile(join(dir, 'san.cnf'), `subjectAltName=${san}\n`);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${names[0]}`, '-keyout', 'server.key', '-out', 'server.csr']);
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'san.cnf', '-out', 'server.crt']);
  const port = await freePort();
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', '0', '--tls-port', String(port), '--tls-cert-file', 'server.crt', '--tls-key-file', 'server.key', '--tls-ca-cert-file', 'ca.crt', '--tls-auth-clients', 'no', '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1'],
    { cwd: dir, stdio: 'ignore' },
  );
  // Wait until it accepts connections.
  const { connect } = await import('node:net');
  for (let i = 0; i < 100; i += 1) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const { readFile } = await import('node:fs/promises');
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

/** A real Redis listening only on a unix socket in a fresh temporary folder (as an endpoint in a sandbox would be). */
export async function startUnixRedis(): Promise<{ path: string; stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'aip-redis-unix-'));
  const path = join(dir, 'redis.sock');
  const child: ChildProcess = spawn('redis-server', ['--port', '0', '--unixsocket', path, '--unixsocketperm', '700', '--save', '', '--appendonly', 'no'], { cwd: dir, stdio: 'ignore' });
  const { connect } = await import('node:net');
  for (let i = 0; i < 100; i += 1) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ path }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    path,
    async stop() {
      child.kill('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
