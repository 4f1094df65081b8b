import { describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { BoundedMessageReader, ProtocolViolation } from '../src/protocol/index.js';

function reader(max?: number) {
  const stream = new PassThrough();
  const r = new BoundedMessageReader(stream, max);
  const messages: unknown[] = [];
  const errors: Error[] = [];
  r.onError((e) => errors.push(e));
  r.listen((m) => messages.push(m));
  return { stream, messages, errors };
}
const frame = (body: string) => `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

describe('bounded framing', () => {
  it('reads messages split across chunks and several in one chunk', () => {
    const { stream, messages, errors } = reader();
    const a = frame('{"jsonrpc":"2.0","id":1,"result":"ü"}');
    stream.write(a.slice(0, 10));
    stream.write(a.slice(10) + frame('{"jsonrpc":"2.0","method":"x"}') + frame('{"jsonrpc":"2.0","id":2,"result":null}'));
    expect(messages).toEqual([
      { jsonrpc: '2.0', id: 1, result: 'ü' },
      { jsonrpc: '2.0', method: 'x' },
      { jsonrpc: '2.0', id: 2, result: null },
    ]);
    expect(errors).toEqual([]);
  });

  it('reports a stray print at once, without waiting for more', () => {
    const { stream, errors } = reader();
    stream.write('hello world');
    expect(errors[0]).toBeInstanceOf(ProtocolViolation);
    expect(errors[0]!.message).toMatch(/not a message header: "hello world"/);
  });

  it('reports a bare newline line and LF-only headers', () => {
    const { stream, errors } = reader();
    stream.write('Content-Length: 2\n\n{}');
    expect(errors[0]).toBeInstanceOf(ProtocolViolation);
  });

  it('refuses an oversize message from its header, before the body arrives', () => {
    const { stream, errors, messages } = reader(1024);
    stream.write('Content-Length: 999999\r\n\r\n');
    expect(errors[0]!.message).toMatch(/999999 bytes, over the 1024-byte limit/);
    stream.write('x'.repeat(5000));
    expect(messages).toEqual([]);
  });

  it('refuses a header without Content-Length, a huge header, and a body that is not JSON', () => {
    expect(((r) => (r.stream.write('Content-Type: x\r\n\r\n'), r.errors[0]!.message))(reader())).toMatch(/without a valid Content-Length/);
    expect(((r) => (r.stream.write(`X-Long: ${'a'.repeat(2000)}`), r.errors[0]!.message))(reader())).toMatch(/longer than 1 KiB/);
    expect(((r) => (r.stream.write(frame('{not json')), r.errors[0]!.message))(reader())).toMatch(/not JSON/);
  });

  it('stops after a violation', () => {
    const { stream, errors, messages } = reader();
    stream.write('garbage\r\n');
    stream.write(frame('{"a":1}'));
    expect(errors).toHaveLength(1);
    expect(messages).toEqual([]);
  });
});
