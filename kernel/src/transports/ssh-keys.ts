import { createPrivateKey, generateKeyPair, sign as cryptoSign, type KeyObject } from 'node:crypto';
// ssh2 is CommonJS: Node's ESM loader gives it as a default export only.
import ssh2 from 'ssh2';
import type { Audit } from '../audit/index.js';
import type { SqlDb, Sealer } from '../vault/index.js';
import { isoAt, type Clock } from '../lib/clock.js';
import { errors, KernelError } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import { SshReader, sshFingerprint } from './ssh-wire.js';

const ssh2Utils = ssh2.utils;

/** Below this an RSA key is breakable by well-funded attackers (NIST SP 800-131A). */
export const MIN_RSA_BITS = 2048;
/** What `generate --type rsa` makes: the size the issue fixes. */
export const GENERATED_RSA_BITS = 4096;
/** An OpenSSH private key file is a few KiB; this bounds what is parsed. */
const MAX_PRIVATE_KEY_BYTES = 64 * 1024;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const ACCEPTED_TYPES = new Set(['ssh-ed25519', 'ssh-rsa', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521']);

/** What may be shown of a key: never the private half. */
export interface SshKeyInfo {
  id: string;
  name: string;
  keyType: string;
  /** The authorized_keys line: `TYPE BASE64 aipermission:NAME`. */
  publicKey: string;
  /** `SHA256:...` as `ssh-keygen -lf` prints it. */
  fingerprint: string;
  /** A shell command that installs the public key for the remote user: idempotent, 700/600 permissions. */
  installCommand: string;
  origin: 'generated' | 'imported';
  createdAt: string;
  createdBy: string;
}

/**
 * The key of one profile, loaded for signing. The private half stays inside
 * this object (invariant 2): it signs, it does not hand out key bytes.
 */
export interface SshKeySigner {
  readonly keyId: string;
  readonly keyType: string;
  /** The public key blob (SSH wire format). */
  readonly publicKey: Buffer;
  /** Signs `data` for the SSH signature algorithm named (ssh2's raw form: DER for ECDSA). */
  sign(data: Buffer, algorithm: string): Buffer;
}

export interface SshKeyStore {
  generate(input: { name: string; type?: 'ed25519' | 'rsa' }, actor: string): Promise<SshKeyInfo>;
  /** Imports an OpenSSH (or PEM) private key; the passphrase opens it once and is not kept. */
  import(input: { name: string; privateKey: string; passphrase?: string }, actor: string): Promise<SshKeyInfo>;
  list(): Promise<SshKeyInfo[]>;
  /** By id or name; 404 when neither matches. */
  show(ref: string): Promise<SshKeyInfo>;
  remove(ref: string, actor: string): Promise<void>;
  /** For the signer only (transports): the key opened for signing. */
  openSigner(keyId: string): Promise<SshKeySigner>;
}

interface Row {
  id: string;
  name: string;
  key_type: string;
  public_key: string;
  fingerprint: string;
  private_sealed: Uint8Array;
  origin: 'generated' | 'imported';
  created_at: string;
  created_by: string;
}

const privateAad = (id: string) => `ssh_keys:${id}:private`;

/** The idempotent install line for authorized_keys (the key line is checked as a whole line first). */
export function installCommand(publicKeyLine: string): string {
  return (
    `umask 077 && mkdir -p ~/.ssh && chmod 700 ~/.ssh && touch ~/.ssh/authorized_keys && chmod 600 ~/.ssh/authorized_keys && ` +
    `(grep -qxF '${publicKeyLine}' ~/.ssh/authorized_keys || printf '%s\\n' '${publicKeyLine}' >> ~/.ssh/authorized_keys)`
  );
}

function rsaBits(blob: Buffer): number {
  const r = new SshReader(blob);
  r.text();
  r.bytes(); // e
  let n = r.bytes();
  while (n.length > 0 && n[0] === 0) n = n.subarray(1);
  if (n.length === 0) return 0;
  return (n.length - 1) * 8 + (32 - Math.clz32(n[0]!));
}

/**
 * Parses a private key into its SSH public blob and a PKCS#8 PEM that
 * node:crypto signs with. Errors say what was wrong and what to do.
 */
function parsePrivate(text: string, passphrase: string | undefined): { keyType: string; blob: Buffer; pkcs8: string } {
  if (Buffer.byteLength(text) > MAX_PRIVATE_KEY_BYTES) throw errors.invalid(`The private key is larger than ${MAX_PRIVATE_KEY_BYTES} bytes; give the key file itself (e.g. ~/.ssh/id_ed25519).`);
  const parsed = ssh2Utils.parseKey(text, passphrase);
  if (parsed instanceof Error) {
    if (/no passphrase given/i.test(parsed.message)) {
      throw new KernelError('ssh_key_passphrase_required', 'This private key is encrypted; give its passphrase (used once to open it, never stored).', { status: 400 });
    }
    if (/bad passphrase|integrity check failed|decrypt/i.test(parsed.message)) {
      throw new KernelError('ssh_key_bad_passphrase', 'The passphrase does not open this private key; check it and try again.', { status: 400 });
    }
    throw errors.invalid(`This is not a private key AIPermission can read (${parsed.message}); give an OpenSSH private key (ed25519, RSA of at least ${MIN_RSA_BITS} bits, or ECDSA).`);
  }
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || !key.isPrivateKey()) throw errors.invalid('This is a public key; import the private key file (the one without .pub).');
  const keyType = key.type;
  if (!ACCEPTED_TYPES.has(keyType)) throw errors.invalid(`Key type ${keyType} is not accepted; use ed25519, RSA of at least ${MIN_RSA_BITS} bits, or ECDSA.`);
  const blob = Buffer.from(key.getPublicSSH());
  if (keyType === 'ssh-rsa') {
    const bits = rsaBits(blob);
    if (bits < MIN_RSA_BITS) throw errors.invalid(`This RSA key has ${bits} bits; at least ${MIN_RSA_BITS} are required. Generate a new key (aip ssh key generate --name NAME).`);
  }
  const pkcs8 = createPrivateKey(key.getPrivatePEM()).export({ type: 'pkcs8', format: 'pem' }).toString();
  return { keyType, blob, pkcs8 };
}

/** An SSH wire string: its length, then its bytes. */
const sshString = (bytes: Buffer) => Buffer.concat([Buffer.from([bytes.length >>> 24, (bytes.length >>> 16) & 255, (bytes.length >>> 8) & 255, bytes.length & 255]), bytes]);
/** An SSH mpint of an unsigned big-endian number: no leading zeros, one added when the top bit is set. */
const sshMpint = (bytes: Buffer) => {
  let n = bytes;
  while (n.length > 1 && n[0] === 0) n = n.subarray(1);
  return sshString(n[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), n]) : n);
};

/**
 * A new key, made by node:crypto off the event loop (libuv's thread pool: an
 * RSA-4096 key takes about a second to find), with its SSH public blob built
 * here. ssh2's own generator is not used: it writes an ed25519 public key
 * whose first byte is 0 as 31 bytes (one key in 256), which no parser reads.
 */
export async function generatedKey(type: 'ed25519' | 'rsa'): Promise<{ keyType: string; blob: Buffer; pkcs8: string }> {
  const pair = await new Promise<{ publicKey: KeyObject; privateKey: KeyObject }>((resolve, reject) => {
    const done = (error: Error | null, publicKey: KeyObject, privateKey: KeyObject) => (error ? reject(error) : resolve({ publicKey, privateKey }));
    if (type === 'rsa') generateKeyPair('rsa', { modulusLength: GENERATED_RSA_BITS, publicExponent: 0x10001 }, done);
    else generateKeyPair('ed25519', {}, done);
  });
  const jwk = pair.publicKey.export({ format: 'jwk' });
  const pkcs8 = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  if (type === 'rsa') {
    const keyType = 'ssh-rsa';
    return { keyType, pkcs8, blob: Buffer.concat([sshString(Buffer.from(keyType)), sshMpint(Buffer.from(jwk.e!, 'base64url')), sshMpint(Buffer.from(jwk.n!, 'base64url'))]) };
  }
  const keyType = 'ssh-ed25519';
  return { keyType, pkcs8, blob: Buffer.concat([sshString(Buffer.from(keyType)), sshString(Buffer.from(jwk.x!, 'base64url'))]) };
}

/** node:crypto's digest for an SSH signature algorithm, or undefined when the key cannot make that signature. */
function digestFor(keyType: string, algorithm: string): string | null | undefined {
  switch (keyType) {
    case 'ssh-ed25519':
      return algorithm === 'ssh-ed25519' ? null : undefined;
    case 'ssh-rsa':
      // ssh-rsa (SHA-1) is refused: OpenSSH itself disabled it in 8.8.
      return algorithm === 'rsa-sha2-512' ? 'sha512' : algorithm === 'rsa-sha2-256' ? 'sha256' : undefined;
    case 'ecdsa-sha2-nistp256':
      return algorithm === keyType ? 'sha256' : undefined;
    case 'ecdsa-sha2-nistp384':
      return algorithm === keyType ? 'sha384' : undefined;
    case 'ecdsa-sha2-nistp521':
      return algorithm === keyType ? 'sha512' : undefined;
    default:
      return undefined;
  }
}

/** Whether a key of this type can sign with this SSH algorithm (what the signer accepts). */
export function algorithmFits(keyType: string, algorithm: string): boolean {
  return digestFor(keyType, algorithm) !== undefined;
}

/**
 * The vault's SSH keys (invariant 2): generated or imported, sealed with the
 * database's vault key, shown only as public key, fingerprint and install
 * command. The private half is opened only by `openSigner`.
 */
export async function createSshKeyStore(deps: { db: SqlDb; clock: Clock; audit: Pick<Audit, 'record'>; sealer: Sealer }): Promise<SshKeyStore> {
  const { db, clock, audit, sealer } = deps;

  const info = (row: Row): SshKeyInfo => ({
    id: row.id,
    name: row.name,
    keyType: row.key_type,
    publicKey: row.public_key,
    fingerprint: row.fingerprint,
    installCommand: installCommand(row.public_key),
    origin: row.origin,
    createdAt: row.created_at,
    createdBy: row.created_by,
  });

  const find = async (ref: string): Promise<Row> => {
    const row = await db.get<Row>('SELECT * FROM ssh_keys WHERE id = ? OR name = ?', [ref, ref]);
    if (!row) throw errors.notFound('SSH key', ref);
    return row;
  };

  const store = async (name: string, parsed: { keyType: string; blob: Buffer; pkcs8: string }, origin: Row['origin'], actor: string): Promise<SshKeyInfo> => {
    if (!NAME_PATTERN.test(name)) throw errors.invalid(`SSH key name ${JSON.stringify(name)} is not valid: use 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit.`);
    const exists = () => errors.conflict('ssh_key_exists', `An SSH key named "${name}" already exists; pick another name or remove it first (aip ssh key remove ${name}).`);
    if (await db.get('SELECT 1 FROM ssh_keys WHERE name = ?', [name])) throw exists();
    const id = newId('sshk');
    const publicKey = `${parsed.keyType} ${parsed.blob.toString('base64')} aipermission:${name}`;
    const fingerprint = sshFingerprint(parsed.blob);
    const now = isoAt(clock.now());
    await db.write(async (tx) => {
      // Checked again in the write: two creates of one name at once (a key is generated in between) get the same clear answer.
      if (await tx.get('SELECT 1 FROM ssh_keys WHERE name = ?', [name])) throw exists();
      await tx.run(
        'INSERT INTO ssh_keys (id, name, key_type, public_key, fingerprint, private_sealed, origin, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
        [id, name, parsed.keyType, publicKey, fingerprint, sealer.seal(parsed.pkcs8, privateAad(id)), origin, now, actor],
      );
      await audit.record(tx, { actor, event: origin === 'generated' ? 'ssh_key.generated' : 'ssh_key.imported', payload: { keyId: id, name, keyType: parsed.keyType, fingerprint } });
    });
    return info((await find(id)));
  };

  return {
    async generate({ name, type = 'ed25519' }, actor) {
      if (type !== 'ed25519' && type !== 'rsa') throw errors.invalid(`SSH key type "${String(type)}" is not one AIPermission generates; use ed25519 (the default) or rsa (${GENERATED_RSA_BITS} bits).`);
      return store(name, await generatedKey(type), 'generated', actor);
    },
    async import({ name, privateKey, passphrase }, actor) {
      if (typeof privateKey !== 'string' || privateKey.length === 0) throw errors.invalid('Give the private key text (the contents of the key file).');
      return store(name, parsePrivate(privateKey, passphrase || undefined), 'imported', actor);
    },
    async list() {
      return (await db.all<Row>('SELECT * FROM ssh_keys ORDER BY name')).map(info);
    },
    async show(ref) {
      return info(await find(ref));
    },
    async remove(ref, actor) {
      const row = await find(ref);
      await db.write(async (tx) => {
        await tx.run('DELETE FROM ssh_keys WHERE id = ?', [row.id]);
        await audit.record(tx, { actor, event: 'ssh_key.removed', payload: { keyId: row.id, name: row.name, fingerprint: row.fingerprint } });
      });
    },
    async openSigner(keyId) {
      const row = await db.get<Row>('SELECT * FROM ssh_keys WHERE id = ?', [keyId]);
      if (!row) throw errors.notFound('SSH key', keyId);
      const key: KeyObject = createPrivateKey(sealer.open(row.private_sealed, privateAad(row.id)));
      const publicKey = Buffer.from(row.public_key.split(' ')[1]!, 'base64');
      return {
        keyId: row.id,
        keyType: row.key_type,
        publicKey,
        sign(data, algorithm) {
          const digest = digestFor(row.key_type, algorithm);
          if (digest === undefined) throw new Error(`a ${row.key_type} key does not sign ${algorithm}`);
          return cryptoSign(digest, data, key);
        },
      };
    },
  };
}
