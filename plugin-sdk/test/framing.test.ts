import { describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { BoundedMessageReader, FramedMessageWriter, ProtocolViolation } from '../src/protocol/index.js';

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

describe('framed writer', () => {
  it('puts each message on the stream in one write, header and body together, in order, readable by the bounded reader', async () => {
    const stream = new PassThrough();
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    const writer = new FramedMessageWriter(stream);
    const messages = [
      { jsonrpc: '2.0', id: 1, method: 'a', params: { text: 'héllo ✓' } },
      { jsonrpc: '2.0', id: 2, result: 'x'.repeat(100_000) },
      { jsonrpc: '2.0', method: 'n' },
    ];
    // Not awaited one by one: writes queue in order without waiting for callbacks.
    await Promise.all(messages.map((m) => writer.write(m as never)));
    expect(chunks).toHaveLength(3);
    expect(chunks[0]!.toString('utf8')).toBe(`Content-Length: ${Buffer.byteLength(JSON.stringify(messages[0]))}\r\n\r\n${JSON.stringify(messages[0])}`);

    const replay = new PassThrough();
    const read: unknown[] = [];
    new BoundedMessageReader(replay).listen((m) => read.push(m));
    for (const chunk of chunks) replay.write(chunk);
    await new Promise((resolve) => setImmediate(resolve));
    expect(read).toEqual(messages);
  });

  it('rejects a write to a closed stream and reports the error', async () => {
    const stream = new PassThrough();
    const writer = new FramedMessageWriter(stream);
    const errors: unknown[] = [];
    writer.onError((e) => errors.push(e));
    stream.destroy();
    await expect(writer.write({ jsonrpc: '2.0', method: 'late' } as never)).rejects.toThrow(/closed/);
    expect(errors).toHaveLength(1);
  });
});
