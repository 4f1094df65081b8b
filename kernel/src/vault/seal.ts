import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { KernelError } from '../lib/errors.js';

const VERSION = 1;
const IV_BYTES = 12; // the GCM standard nonce size
const TAG_BYTES = 16;

/**
 * Seals secret fields with AES-256-GCM under the database's vault key (which is
 * itself stored inside the encrypted database, so an exported file stays
 * portable). The additional authenticated data names the row and column the
 * blob belongs to, so a sealed value copied into another row does not open.
 */
export interface Sealer {
  seal(plaintext: string, aad: string): Buffer;
  open(blob: Uint8Array, aad: string): string;
}

export function createSealer(key: Buffer): Sealer {
  if (key.length !== 32) throw new Error('vault key must be 32 bytes');
  return {
    seal(plaintext, aad) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(aad, 'utf8'));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), body]);
    },
    open(blob, aad) {
      const buf = Buffer.from(blob);
      if (buf.length < 1 + IV_BYTES + TAG_BYTES || buf[0] !== VERSION) {
        throw new KernelError('sealed_value_corrupt', 'A sealed value in the database is not in a format this version can open.', { status: 500 });
      }
      const iv = buf.subarray(1, 1 + IV_BYTES);
      const tag = buf.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
      const body = buf.subarray(1 + IV_BYTES + TAG_BYTES);
      const decipher = createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAAD(Buffer.from(aad, 'utf8'));
      decipher.setAuthTag(tag);
      try {
        return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
      } catch (cause) {
        throw new KernelError('sealed_value_corrupt', 'A sealed value failed its integrity check; the database may have been altered.', {
          status: 500,
          cause,
        });
      }
    },
  };
}
