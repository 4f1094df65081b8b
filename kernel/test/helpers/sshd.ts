import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile, chmod, readFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { tempDir } from './temp.js';

/** Where Debian's openssh-server puts sshd (.ci/services.sh installs it). */
export const SSHD = '/usr/sbin/sshd';

export interface Sshd {
  port: number;
  /** The user the test logs in as (the user running the tests: sshd in a container runs as it). */
  user: string;
  /** `SHA256:...` of the server's ed25519 host key, as ssh-keygen prints it. */
  hostFingerprint: string;
  /** Replaces the authorized_keys lines. */
  authorize(lines: string[]): Promise<void>;
  dir: string;
  /** A stand-in home: sshd reads <home>/.ssh/authorized_keys, so an install command run with HOME=home installs for real. */
  home: string;
  authorizedKeysFile: string;
  stop(): Promise<void>;
}

/** A free loopback port (the kernel asks the OS; a race with another process is possible but rare). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, log: () => string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`sshd exited with ${child.exitCode}: ${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('data', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`sshd did not listen on 127.0.0.1:${port} within ${timeoutMs} ms: ${log()}`);
}

/**
 * A real OpenSSH server for one test: `sshd -D -e -f <config>` on a free
 * loopback port (or the one given, to stand a second server with other host
 * keys where the first was), fresh host keys in a temp dir, public-key auth
 * only, and an authorized_keys file in that dir for the user running the
 * tests. Nothing system-wide is touched; stop() kills it and removes the dir.
 */
export async function startSshd(options: { port?: number; authorizedKeys?: string[]; /** More loopback addresses to listen on (all of 127/8 is loopback), to stand for other hosts. */ extraAddresses?: string[] } = {}): Promise<Sshd> {
  const { dir, cleanup } = await tempDir('aip-sshd-');
  // sshd's StrictModes wants the directories of authorized_keys not group/world-writable.
  await chmod(dir, 0o700);
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  const hostFingerprint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${hostKey}.pub`]).toString().split(' ')[1]!;
  const home = join(dir, 'home');
  await mkdir(join(home, '.ssh'), { recursive: true, mode: 0o700 });
  const authorizedKeysFile = join(home, '.ssh', 'authorized_keys');
  await writeFile(authorizedKeysFile, (options.authorizedKeys ?? []).map((l) => `${l}\n`).join(''), { mode: 0o600 });
  await mkdir('/run/sshd', { recursive: true }).catch(() => undefined);
  const port = options.port ?? (await freePort());
  const user = userInfo().username;
  const config = join(dir, 'sshd_config');
  await writeFile(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      ...(options.extraAddresses ?? []).map((address) => `ListenAddress ${address}`),
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorizedKeysFile}`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      `AllowUsers ${user}`,
      'PermitRootLogin prohibit-password',
      'StrictModes no',
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );
  let log = '';
  const child = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-8000);
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    await cleanup();
  };
  try {
    await waitForPort(port, child, () => log);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    port,
    user,
    hostFingerprint,
    dir,
    home,
    authorizedKeysFile,
    authorize: async (lines) => writeFile(authorizedKeysFile, lines.map((l) => `${l}\n`).join(''), { mode: 0o600 }),
    stop,
  };
}

/** The authorized_keys text as sshd reads it (for the install-command test). */
export async function readAuthorizedKeys(sshd: Sshd): Promise<string> {
  return readFile(sshd.authorizedKeysFile, 'utf8');
}
