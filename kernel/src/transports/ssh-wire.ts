import { createHash } from 'node:crypto';

/**
 * Reads SSH wire values (RFC 4251 section 5) from a buffer, refusing anything
 * that runs past its end: what a plugin asks the kernel to sign is untrusted.
 */
export class SshReader {
  private offset = 0;
  constructor(private readonly buf: Buffer) {}
  get remaining(): number {
    return this.buf.length - this.offset;
  }
  byte(): number {
    if (this.remaining < 1) throw new Error('truncated: a byte was expected');
    return this.buf[this.offset++]!;
  }
  uint32(): number {
    if (this.remaining < 4) throw new Error('truncated: a uint32 was expected');
    const value = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return value;
  }
  bytes(): Buffer {
    const length = this.uint32();
    if (length > this.remaining) throw new Error(`truncated: a string of ${length} bytes runs past the end`);
    const out = this.buf.subarray(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }
  /** A string that must be printable ASCII (names, algorithms, user names). */
  text(): string {
    const raw = this.bytes();
    for (const c of raw) if (c < 0x20 || c > 0x7e) throw new Error('a name contains a non-printable byte');
    return raw.toString('latin1');
  }
}

/** `SHA256:...` as OpenSSH prints it (base64 without padding) for a public key blob. */
export function sshFingerprint(publicKeyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(publicKeyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside a public key blob (its first string). */
export function blobKeyType(publicKeyBlob: Buffer): string {
  return new SshReader(publicKeyBlob).text();
}
