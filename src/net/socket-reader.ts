// Reading a connection the way node:http reads its own: into one buffer the whole process shares,
// with no buffer allocated per read and no stream event in between. A socket's 'data' event costs
// Node a fresh 64 KiB allocation per read (malloc, then a shrink), an ArrayBuffer that the garbage
// collector must sweep, and a trip through the Readable machinery: together about 1.5 µs per
// request of a kept FastCGI connection, more than decoding the request itself.
//
// Node offers this for sockets it connects (`net.connect({ onread })`) but not for those a server
// accepts, so the same settings are made on the accepted socket: its `onread` slots, found by
// their symbols' names, and `useUserBuffer()` on its handle. Where they are not as expected (a
// Node that changed them), the reader falls back to 'data' events, which behave the same.
//
// The bytes handed to `onData` are valid during the call only: a piece the protocol keeps past it
// (a request body waiting for the app) goes through `keep()`, which copies a small piece and, for
// a large one, lets the socket read into buffers of its own from then on (each filled by several
// reads, one after the other), so that an upload is copied at most once. Backpressure is the
// socket's own pause() and resume(): in this mode they stop and restart the handle's reading.

import { Buffer } from 'node:buffer';
import type net from 'node:net';

const READ_SIZE = 65536;
/** A kept piece at most this long is copied, not worth holding 64 KiB for. */
const COPY_MAX = 4096;
/** An own buffer's unread rest is read into next while it has at least this much room. */
const MIN_READ = 16384;

interface ReadSlots {
  buffer: symbol;
  callback: symbol;
  generator: symbol;
}

/** What a net.Socket reads with in `onread` mode, once found on a socket. */
let slots: ReadSlots | undefined;
/** The buffer every socket in shared mode reads into: consumed before the next read lands. */
let shared: Buffer | undefined;

type Handle = { useUserBuffer?: (buf: Uint8Array) => void };

/** The slots, or null where this socket has none (a stream standing in for one, another Node). */
function readSlots(socket: net.Socket): ReadSlots | null {
  if (slots !== undefined) return slots;
  const own = Object.getOwnPropertySymbols(socket);
  const find = (name: string) => own.find((s) => s.description === name);
  const buffer = find('kBuffer');
  const callback = find('kBufferCb');
  const generator = find('kBufferGen');
  if (!buffer || !callback || !generator) return null; // not remembered: the next socket may have them
  return (slots = { buffer, callback, generator });
}

export class SocketReader {
  /** Reading straight into our buffers (else through 'data' events). */
  readonly direct: boolean;
  /** This socket's own buffer, read into after a large piece was kept; null: the shared one.
   * Reads fill it from the front; what a read kept stays, the next read goes after it. */
  private own: Buffer | null = null;
  /** Bytes of the last read. */
  private lastRead = 0;
  /** A view of `own` was kept during this read: the next read needs a new buffer. */
  private ownKept = false;
  /** A large piece of the shared buffer was copied: read into buffers of our own next. */
  private wantOwn = false;

  constructor(socket: net.Socket, onData: (chunk: Buffer) => void) {
    const s = readSlots(socket);
    const handle = (socket as unknown as { _handle?: Handle })._handle;
    const sock = socket as unknown as Record<symbol, unknown>;
    this.direct =
      s !== null && typeof handle?.useUserBuffer === 'function' && sock[s.buffer] === null && sock[s.callback] === null && sock[s.generator] === null;
    if (!this.direct) {
      socket.on('data', onData);
      return;
    }
    shared ??= Buffer.allocUnsafeSlow(READ_SIZE);
    sock[s!.buffer] = shared;
    sock[s!.callback] = (nread: number, buf: Buffer): void => {
      this.lastRead = nread;
      onData(buf.subarray(0, nread));
    };
    sock[s!.generator] = () => this.nextBuffer();
    handle!.useUserBuffer!(shared);
  }

  /** `view` (of a chunk given to onData) as bytes that stay valid after the call. */
  keep(view: Uint8Array): Uint8Array {
    if (!this.direct) return view;
    if (view.length > COPY_MAX) {
      if (this.own !== null) {
        this.ownKept = true;
        return view;
      }
      this.wantOwn = true;
    }
    return Buffer.from(view);
  }

  /** The buffer the next read goes into (called by node after each read). */
  private nextBuffer(): Buffer {
    if (this.ownKept) {
      this.ownKept = false;
      // The kept bytes stay where they are; the next read goes into the room after them.
      const rest = this.own!.subarray(this.lastRead);
      return (this.own = rest.length >= MIN_READ ? rest : Buffer.allocUnsafeSlow(READ_SIZE));
    }
    if (this.wantOwn) {
      this.wantOwn = false;
      return (this.own = Buffer.allocUnsafeSlow(READ_SIZE));
    }
    // Nothing kept from this read: back to the shared buffer, our own one left to the collector.
    this.own = null;
    return shared!;
  }
}
