/**
 * transports — the kernel owns transports (invariant 3). Per invocation it
 * opens the endpoint a plugin may use (a unix socket inside its sandbox, or
 * loopback TCP without one) and relays what the plugin sends there to the
 * target's configured address: direct TCP today, SSH tunnels later behind
 * the same endpoints. Plugins have no network of their own under bubblewrap,
 * so the endpoint is the only thing they can reach.
 */
export { createTransports, TRANSPORT_DEFAULTS, MAX_UNIX_PATH_BYTES } from './endpoints.js';
export type { EndpointHandle, EndpointPlace, EndpointRequest, Transports, TransportsDeps } from './endpoints.js';
export type { DialFailure } from './relay.js';
export { createSshKeyStore, installCommand, MIN_RSA_BITS, GENERATED_RSA_BITS } from './ssh-keys.js';
export type { SshKeyInfo, SshKeySigner, SshKeyStore } from './ssh-keys.js';
export { configuredAddress, createSshSigner, createPluginSshServices, SSH_KEY_PROFILE_FIELDS } from './ssh-signer.js';
export type { SshSigner } from './ssh-signer.js';
export { parseUserAuthData } from './ssh-auth-data.js';
export type { UserAuthData } from './ssh-auth-data.js';
export { createHostKeys } from './host-keys.js';
export type { HostKeys, HostKeyApproval, HostKeyVerdict, PinnedHostKey } from './host-keys.js';
export { connectSsh, scanHostKey, SSH_READY_TIMEOUT_MS, HOST_KEY_SCAN_TIMEOUT_MS } from './ssh-connect.js';
export { sshFingerprint } from './ssh-wire.js';
