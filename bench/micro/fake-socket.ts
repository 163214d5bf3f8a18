// A socket stand-in for in-process benchmarks: what the server writes is counted, not sent.
import { Duplex } from 'node:stream';

export class FakeSocket extends Duplex {
  written = 0;
  writes = 0;
  remoteAddress = '127.0.0.1';
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.written += chunk.length;
    this.writes++;
    cb();
  }
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    for (const c of chunks) this.written += c.chunk.length;
    this.writes++;
    cb();
  }
  setTimeout(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  override cork(): void {}
  override uncork(): void {}
  /** Delivers bytes as if they came from the peer. */
  feed(b: Buffer): void {
    this.emit('data', b);
  }
}
