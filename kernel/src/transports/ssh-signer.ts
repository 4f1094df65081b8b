import ssh2, { type BaseAgent, type ParsedKey } from 'ssh2';
import type { InvocationScope, InvocationScopes } from '../invocations/index.js';
import { KernelError } from '../lib/errors.js';
import { parseUserAuthData } from './ssh-auth-data.js';
import { algorithmFits, type SshKeyStore } from './ssh-keys.js';
import type { HostKeys } from './host-keys.js';

const { BaseAgent: AgentBase, utils: ssh2Utils } = ssh2;

/** A user-authentication blob is a few hundred bytes (an RSA-16384 key is ~2 KiB); this bounds what is parsed. */
const MAX_SIGN_DATA_BYTES = 16 * 1024;

/** The credential fields of an SSH key profile that the signer reads (config, not secret: the key itself is in the vault). */
export const SSH_KEY_PROFILE_FIELDS = ['username', 'keyId'] as const;

const refuse = (code: string, message: string) => new KernelError(code, message, { status: 403 });

/**
 * The kernel's SSH signer behind `kernel/sign` (invariant 2). A plugin sends
 * what it wants signed with the id of its running invocation; the kernel
 * signs only:
 * - for a live invocation of that same connector (the invocation scope),
 * - with the key of that invocation's profile (its `keyId` field),
 * - data that parses as an SSH public-key user-authentication request for
 *   that profile's user, that key and an algorithm the key signs.
 * The answer is a signature; no key bytes ever leave this module.
 */
export interface SshSigner {
  sign(connectorId: string, params: { invocationId?: unknown; data?: unknown }): Promise<{ signature: string }>;
  /** The same for a scope already resolved (the plugin host resolves the message's invocation for its own process). */
  signFor(scope: InvocationScope, data: unknown): Promise<{ signature: string }>;
  /**
   * An agent for ssh2's Client (`agent:`), for the kernel's own connections
   * on behalf of one invocation: it signs through `sign` above, so every
   * check applies to the kernel as well.
   */
  agentFor(connectorId: string, invocationId: string): Promise<BaseAgent>;
}

export function createSshSigner(deps: {
  scopes: Pick<InvocationScopes, 'resolve'>;
  /** The SSH keys of the database an invocation belongs to. */
  keys: (database: string) => Pick<SshKeyStore, 'openSigner'>;
}): SshSigner {
  const scopeOf = (connectorId: string, invocationId: unknown) => {
    const scope = deps.scopes.resolve(invocationId, connectorId);
    if (!scope) throw refuse('sign_invocation_not_running', 'kernel/sign names no running invocation of this connector; the kernel signs only while the invocation that needs the key runs.');
    return scope;
  };
  const profileKey = (scope: InvocationScope) => {
    if (!scope.live) throw refuse('sign_invocation_not_running', 'The invocation this signature was for has ended; the kernel signs only while it runs.');
    const fields = scope.lease(SSH_KEY_PROFILE_FIELDS).fields;
    const { username, keyId } = fields;
    if (typeof keyId !== 'string' || typeof username !== 'string') {
      throw refuse('sign_no_key', `The profile of this invocation has no SSH key (its username and keyId fields are missing); give the profile a key from aip ssh key list.`);
    }
    return { username, keyId, keys: deps.keys(scope.database) };
  };

  const signer: SshSigner = {
    async sign(connectorId, params) {
      return signer.signFor(scopeOf(connectorId, params.invocationId), params.data);
    },
    async signFor(scope, rawData) {
      const { username, keyId, keys } = profileKey(scope);
      const params = { data: rawData };
      if (typeof params.data !== 'string') throw new KernelError('invalid_input', 'kernel/sign needs data: the base64 of what to sign.', { status: 400 });
      const data = Buffer.from(params.data, 'base64');
      if (data.length > MAX_SIGN_DATA_BYTES) throw refuse('sign_not_auth_data', `${data.length} bytes is no SSH user-authentication request (at most ${MAX_SIGN_DATA_BYTES}); the kernel signs nothing else.`);
      let request;
      try {
        request = parseUserAuthData(data);
      } catch (error) {
        throw refuse('sign_not_auth_data', `The data to sign is not an SSH public-key user-authentication request (${(error as Error).message}); the kernel signs nothing else.`);
      }
      const key = await keys.openSigner(keyId);
      if (!scope.live) throw refuse('sign_invocation_not_running', 'The invocation ended while its signature was being prepared; nothing was signed.');
      if (request.user !== username) throw refuse('sign_wrong_user', `The request authenticates as "${request.user}", but this invocation's profile logs in as "${username}".`);
      if (!request.publicKey.equals(key.publicKey)) throw refuse('sign_wrong_key', "The request names another public key than this invocation's profile key; the kernel signs only with the profile's own key.");
      if (!algorithmFits(key.keyType, request.algorithm)) throw refuse('sign_wrong_algorithm', `A ${key.keyType} key does not sign "${request.algorithm}" here${key.keyType === 'ssh-rsa' ? ' (rsa-sha2-256 and rsa-sha2-512 only; SHA-1 ssh-rsa is refused)' : ''}.`);
      return { signature: key.sign(data, request.algorithm).toString('base64') };
    },
    async agentFor(connectorId, invocationId) {
      const { keyId, keys } = profileKey(scopeOf(connectorId, invocationId));
      const key = await keys.openSigner(keyId);
      const publicLine = `${key.keyType} ${key.publicKey.toString('base64')}`;
      const parsed = ssh2Utils.parseKey(publicLine);
      if (parsed instanceof Error) throw parsed;
      const identity = (Array.isArray(parsed) ? parsed[0] : parsed) as ParsedKey;
      class KernelAgent extends AgentBase {
        override getIdentities(cb: (err: Error | undefined, keys?: ParsedKey[]) => void): void {
          cb(undefined, [identity]);
        }
        override sign(_pubKey: ParsedKey, data: Buffer, options: { hash?: string } | ((err: Error | undefined, sig?: Buffer) => void), cb?: (err: Error | undefined, sig?: Buffer) => void): void {
          const done = typeof options === 'function' ? options : cb!;
          signer.sign(connectorId, { invocationId, data: data.toString('base64') }).then(
            ({ signature }) => done(undefined, Buffer.from(signature, 'base64')),
            (error: Error) => done(error),
          );
        }
      }
      return new KernelAgent();
    },
  };
  return signer;
}

/**
 * What the plugin host answers `kernel/sign` and `kernel/hostKey` with, for a
 * scope it resolved for the asking process: the signer above, and the host
 * keys of the invocation's database (an untrusted key's verdict says why and
 * names the approval the operator decides).
 */
export function createPluginSshServices(deps: {
  signer: Pick<SshSigner, 'signFor'>;
  hostKeys: (database: string) => Pick<HostKeys, 'check'>;
  /**
   * The address the invocation's target is configured with (host, and port
   * when it names one), or undefined. A plugin asks about the host key of the
   * host it reached; it may only ask about its own target's address, so a
   * hostile plugin cannot make the operator's approvals name any host.
   */
  targetAddress: (database: string, targetId: string) => Promise<{ host: string; port?: number } | undefined>;
}) {
  return {
    sign: (scope: InvocationScope, data: unknown) => deps.signer.signFor(scope, data),
    async hostKey(scope: InvocationScope, offer: { host?: unknown; port?: unknown; keyType?: unknown; fingerprint?: unknown }): Promise<{ trusted: boolean } & Record<string, unknown>> {
      if (!scope.live) throw refuse('host_key_invocation_not_running', 'The invocation this check was for has ended.');
      const address = await deps.targetAddress(scope.database, scope.targetId);
      if (!address || offer.host !== address.host || (address.port !== undefined && offer.port !== address.port)) {
        throw refuse(
          'host_key_wrong_host',
          `A host key can be checked only for the invocation's own target (${address ? `${address.host}${address.port !== undefined ? `:${address.port}` : ''}` : 'which names no host'}), not for ${String(offer.host).slice(0, 64)}:${String(offer.port).slice(0, 8)}.`,
        );
      }
      return deps.hostKeys(scope.database).check(offer as { host: string; port: number; keyType: string; fingerprint: string });
    },
  };
}

/** The configured address of a target (its `host`, and `port` when it names one), for createPluginSshServices. */
export async function configuredAddress(target: Promise<{ config: Record<string, unknown> } | undefined>): Promise<{ host: string; port?: number } | undefined> {
  const config = (await target)?.config;
  if (!config || typeof config.host !== 'string') return undefined;
  return { host: config.host, ...(typeof config.port === 'number' ? { port: config.port } : {}) };
}
