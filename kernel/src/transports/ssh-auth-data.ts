import { SshReader } from './ssh-wire.js';

/** SSH_MSG_USERAUTH_REQUEST (RFC 4252 section 7): the only message the kernel signs. */
const SSH_MSG_USERAUTH_REQUEST = 50;
/** Session identifiers are an exchange hash: 20 (SHA-1) to 64 (SHA-512) bytes. */
const MIN_SESSION_ID_BYTES = 20;
const MAX_SESSION_ID_BYTES = 64;

/** What a public-key user-authentication signature covers, parsed. */
export interface UserAuthData {
  sessionId: Buffer;
  user: string;
  service: string;
  method: string;
  algorithm: string;
  publicKey: Buffer;
}

/**
 * Parses the blob a client signs for public-key user authentication:
 * string session_id, byte 50, string user, string "ssh-connection",
 * string "publickey", boolean TRUE, string algorithm, string public key.
 * Anything else (another message, trailing bytes, a truncated field) throws
 * with what was wrong, so the signer can refuse it (invariant 2: the kernel
 * signs SSH authentication and nothing else, so a plugin cannot turn it into
 * a general signing oracle).
 */
export function parseUserAuthData(data: Buffer): UserAuthData {
  const r = new SshReader(data);
  const sessionId = r.bytes();
  if (sessionId.length < MIN_SESSION_ID_BYTES || sessionId.length > MAX_SESSION_ID_BYTES) {
    throw new Error(`the session id is ${sessionId.length} bytes; an SSH exchange hash is ${MIN_SESSION_ID_BYTES} to ${MAX_SESSION_ID_BYTES}`);
  }
  const type = r.byte();
  if (type !== SSH_MSG_USERAUTH_REQUEST) throw new Error(`message type ${type} is not SSH_MSG_USERAUTH_REQUEST (50)`);
  const user = r.text();
  const service = r.text();
  if (service !== 'ssh-connection') throw new Error(`service "${service}" is not "ssh-connection"`);
  const method = r.text();
  if (method !== 'publickey') throw new Error(`method "${method}" is not "publickey"`);
  if (r.byte() !== 1) throw new Error('the "has signature" flag is not TRUE');
  const algorithm = r.text();
  const publicKey = r.bytes();
  if (r.remaining !== 0) throw new Error(`${r.remaining} bytes follow the public key`);
  return { sessionId: Buffer.from(sessionId), user, service, method, algorithm, publicKey: Buffer.from(publicKey) };
}
