// The CGI response sink's two ways out: a whole small response with one write(2) on fd 1, without
// process.stdout (a CGI program pays for the stream machinery on every request), and the stream
// for everything else, and for what the kernel did not take at once. fd 1 and the stream are fakes.

import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { StdoutSink, type StdoutIo } from '../../../src/protocols/cgi/adapter.js';

/** A stream that takes writes and calls back at once (or holds them until `drain()`). */
class FakeStream extends EventEmitter {
  written: Buffer[] = [];
  held: Array<() => void> = [];
  private readonly full: boolean;
  constructor(full = false) {
    super();
    this.full = full;
  }
  write(chunk: Uint8Array, cb: () => void): boolean {
    this.written.push(Buffer.from(chunk));
    if (this.full) this.held.push(cb);
    else cb();
    return !this.full;
  }
  drain(): void {
    for (const cb of this.held.splice(0)) cb();
    this.emit('drain');
  }
}

function fakeIo(writeSync: StdoutIo['writeSync'], stream = new FakeStream()): { io: StdoutIo; stream: FakeStream; streamAsked: () => number } {
  let asked = 0;
  return {
    io: { writeSync, stream: () => (asked++, stream as unknown as NodeJS.WritableStream) },
    stream,
    streamAsked: () => asked,
  };
}

const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(code), { code });
const HEAD = 'Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n';

describe('StdoutSink', () => {
  it('a whole small response: one write on fd 1, head and body together; the stream is never made', async () => {
    const writes: Buffer[] = [];
    const { io, streamAsked } = fakeIo((data, off, len) => (writes.push(Buffer.from(data.subarray(off, off + len))), len));
    const sink = new StdoutSink(false, 'HTTP/1.1', () => {}, io);
    expect(sink.start('200 OK', [['Content-Type', 'text/plain']], Buffer.from('hello\n'), true)).toBeUndefined();
    await sink.flushed();
    expect(writes.map((b) => b.toString('latin1'))).toEqual([`${HEAD}hello\n`]);
    expect(streamAsked()).toBe(0);
  });

  it('a short write goes on from where the kernel stopped', async () => {
    const writes: string[] = [];
    const { io } = fakeIo((data, off, len) => {
      const n = Math.min(len, 10);
      writes.push(Buffer.from(data.subarray(off, off + n)).toString('latin1'));
      return n;
    });
    const sink = new StdoutSink(false, undefined, () => {}, io);
    sink.start('200 OK', [['Content-Type', 'text/plain']], Buffer.from('hello\n'), true);
    expect(writes.join('')).toBe(`${HEAD}hello\n`);
  });

  it('EAGAIN (a full non-blocking pipe): what the kernel did not take goes through the stream, and flushed() waits for it', async () => {
    let calls = 0;
    const stream = new FakeStream(true);
    const { io } = fakeIo((_data, _off, len) => {
      if (calls++ === 0) return Math.min(len, 7);
      throw errno('EAGAIN');
    }, stream);
    const sink = new StdoutSink(false, undefined, () => {}, io);
    const p = sink.start('200 OK', [['Content-Type', 'text/plain']], Buffer.from('hello\n'), true);
    expect(stream.written.map((b) => b.toString('latin1'))).toEqual([`${HEAD}hello\n`.slice(7)]);
    let flushed = false;
    const f = sink.flushed().then(() => (flushed = true));
    await Promise.resolve();
    expect(flushed).toBe(false);
    stream.drain();
    await p;
    await f;
    expect(flushed).toBe(true);
  });

  it('EPIPE (the reader is gone): the request is aborted, nothing goes to the stream, flushed() resolves', async () => {
    let broken = 0;
    const { io, streamAsked } = fakeIo(() => {
      throw errno('EPIPE');
    });
    const sink = new StdoutSink(false, undefined, () => broken++, io);
    sink.start('200 OK', [['Content-Type', 'text/plain']], Buffer.from('hello\n'), true);
    await sink.flushed();
    expect(broken).toBe(1);
    expect(streamAsked()).toBe(0);
    expect(sink.write(Buffer.from('more'))).toBeUndefined();
    expect(streamAsked()).toBe(0);
  });

  it('a response over 64 KiB, or one that is not whole yet, goes through the stream (a blocking write would hold the event loop)', async () => {
    const writes: number[] = [];
    const direct: StdoutIo['writeSync'] = (_d, _o, len) => (writes.push(len), len);
    const big = fakeIo(direct);
    new StdoutSink(false, undefined, () => {}, big.io).start('200 OK', [['Content-Type', 'text/plain']], Buffer.alloc(64 * 1024 + 1), true);
    expect(writes).toEqual([]);
    expect(Buffer.concat(big.stream.written).length).toBe(HEAD.length + 64 * 1024 + 1);

    const partial = fakeIo(direct);
    const sink = new StdoutSink(false, undefined, () => {}, partial.io);
    sink.start('200 OK', [['Content-Type', 'text/plain']], Buffer.from('first '), false);
    sink.write(Buffer.from('second'));
    expect(writes).toEqual([]);
    expect(Buffer.concat(partial.stream.written).toString('latin1')).toBe(`${HEAD}first second`);
  });

  it('NPH: the whole response in one write starts with the HTTP status line', () => {
    const writes: string[] = [];
    const { io } = fakeIo((data, off, len) => (writes.push(Buffer.from(data.subarray(off, off + len)).toString('latin1')), len));
    new StdoutSink(true, 'HTTP/1.1', () => {}, io).start('404 Not Found', [['Content-Length', '0']], null, true);
    expect(writes).toEqual(['HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n']);
  });
});
