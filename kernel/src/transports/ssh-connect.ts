import ssh2, { type BaseAgent, type Client as SshClient } from 'ssh2';
import { KernelError } from '../lib/errors.js';
import type { HostKeys, HostKeyVerdict } from './host-keys.js';

const { Client } = ssh2;

/** Long enough for a slow host's key exchange over a WAN, short enough that a call does not hang on a dead one. */
export const SSH_READY_TIMEOUT_MS = 15_000;

/**
 * Opens an SSH connection for the kernel: the host key is verified against
 * the database's known_hosts before anything is sent (invariant 3), and the
 * user authenticates through the kernel's signer agent (invariant 2). A
 * refused host key ends with a typed KernelError whose details carry the
 * approval the operator decides.
 */
export function connectSsh(options: {
  host: string;
  port: number;
  username: string;
  agent: BaseAgent;
  hostKeys: Pick<HostKeys, 'checkBlob'>;
  readyTimeoutMs?: number;
}): Promise<SshClient> {
  const { host, port, username, agent, hostKeys } = options;
  return new Promise((resolve, reject) => {
    const client = new Client();
    let verdict: HostKeyVerdict | undefined;
    let verifyError: unknown;
    let settled = false;
    const fail = (error: unknown) => {
      if (settled) return;
      settled = true;
      client.end();
      reject(error);
    };
    client.on('ready', () => {
      settled = true;
      resolve(client);
    });
    client.on('error', (error: Error & { level?: string }) => {
      if (verdict && !verdict.trusted) {
        const { message, status, ...details } = verdict;
        return fail(new KernelError(status, message, { status: 409, details: details as unknown as Record<string, unknown> }));
      }
      if (verifyError) return fail(verifyError);
      if (error.level === 'client-authentication') {
        return fail(new KernelError('auth_failed', `${username}@${host}:${port} refused the profile's key; install its public key there (aip ssh key show NAME prints the install command).`, { status: 502 }));
      }
      if (error.level === 'client-timeout') return fail(new KernelError('timeout', `${host}:${port} did not finish the SSH handshake within ${options.readyTimeoutMs ?? SSH_READY_TIMEOUT_MS} ms.`, { status: 504 }));
      fail(new KernelError('network', `Could not reach ${host}:${port} over SSH: ${error.message}`, { status: 502 }));
    });
    client.connect({
      host,
      port,
      username,
      agent,
      readyTimeout: options.readyTimeoutMs ?? SSH_READY_TIMEOUT_MS,
      hostVerifier: (key: Buffer, verify: (valid: boolean) => void) => {
        hostKeys.checkBlob(host, port, key).then(
          (result) => {
            verdict = result;
            verify(result.trusted);
          },
          (error: unknown) => {
            verifyError = error;
            verify(false);
          },
        );
      },
    });
  });
}

/** What a host-key scan waits for: the server's key comes in the first round trip of the key exchange. */
export const HOST_KEY_SCAN_TIMEOUT_MS = 10_000;

/**
 * Fetches the host key a server offers (like ssh-keyscan) without
 * authenticating, and checks it: an unknown key leaves an approval for the
 * operator, so a host can be approved before its first use.
 */
export function scanHostKey(host: string, port: number, hostKeys: Pick<HostKeys, 'checkBlob'>): Promise<HostKeyVerdict> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let done = false;
    const finish = (fn: () => void) => {
      if (done) return;
      done = true;
      client.end();
      fn();
    };
    client.on('error', (error: Error) => finish(() => reject(new KernelError('network', `Could not read the host key of ${host}:${port}: ${error.message}`, { status: 502 }))));
    client.connect({
      host,
      port,
      username: 'aipermission-host-key-scan',
      readyTimeout: HOST_KEY_SCAN_TIMEOUT_MS,
      hostVerifier: (key: Buffer, verify: (valid: boolean) => void) => {
        // Answer ssh2 only after the check: its refusal ends the connection with an error, which must not win the race.
        hostKeys.checkBlob(host, port, key).then(
          (verdict) => {
            finish(() => resolve(verdict));
            verify(false);
          },
          (error: unknown) => {
            finish(() => reject(error));
            verify(false);
          },
        );
      },
    });
  });
}
