// A stand-in for a web server's socket, handed to a protocol server in process
// (`server.emit('connection', socket)`): each write(2) or writev(2) the server would make is kept,
// as the pieces it gave, so a test can tell one write from several and a view from a copy.

import { Duplex } from 'node:stream';

export class WireSocket extends Duplex {
  remoteAddress = '127.0.0.1';
  /** One entry per write: its pieces (one for write(), several for a corked writev()). */
  writes: Buffer[][] = [];

  override _read(): void {}

  override _write(c: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.writes.push([c]);
    cb();
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: () => void): void {
    this.writes.push(chunks.map((c) => c.chunk));
    cb();
  }

  setTimeout(): this {
    return this;
  }

  setNoDelay(): this {
    return this;
  }
}
