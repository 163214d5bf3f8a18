// A Node `(req, res)` request listener as a TSGI app, from the app's side: Express, Koa's
// app.callback() or Fastify's routing get node:http's own IncomingMessage and ServerResponse over
// a stand-in socket, and what the response writes to it is read back into status, headers, body.

import http from 'node:http';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { AppError, ClientGoneError } from '../errors.js';
import type { App, Body, Environ, HeaderList } from '../types.js';
import type { FromAdapterOptions } from './fetch.js';
import { HttpResponseParser, type ParsedHead } from './http-response-parser.js';
import { encodePath, environHeaders, hasBody, HOP_BY_HOP, httpVersionOf, requestHost, requestTarget } from './url.js';

/** A node:http request listener: `(req, res) => void` (Express apps, Koa's `app.callback()`). */
export type NodeListener = (req: http.IncomingMessage, res: http.ServerResponse) => unknown;

type WriteCallback = (err?: Error | null) => void;

/** The socket under req and res: what res writes goes to `onWrite`; addresses from environ. */
class StandInSocket extends Duplex {
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  remoteFamily: string | undefined;
  localAddress: string | undefined;
  localPort: number | undefined;
  encrypted: boolean | undefined;
  readonly connecting = false;
  private readonly onWrite: (chunks: Buffer[], cb: WriteCallback) => void;

  constructor(environ: Environ, onWrite: (chunks: Buffer[], cb: WriteCallback) => void) {
    super({ allowHalfOpen: true });
    this.onWrite = onWrite;
    this.remoteAddress = environ.REMOTE_ADDR as string | undefined;
    this.remotePort = portOf(environ.REMOTE_PORT);
    this.remoteFamily = this.remoteAddress?.includes(':') ? 'IPv6' : 'IPv4';
    this.localAddress = environ.SERVER_ADDR as string | undefined;
    this.localPort = portOf(environ.SERVER_PORT);
    // Express, Koa and Fastify tell https by socket.encrypted (a TLSSocket has it).
    if (environ['wsgi.url_scheme'] === 'https') this.encrypted = true;
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: WriteCallback): void {
    this.onWrite([chunk], cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: WriteCallback): void {
    this.onWrite(
      chunks.map((c) => c.chunk),
      cb,
    );
  }

  setTimeout(ms: number, cb?: () => void): this {
    if (cb) this.once('timeout', cb);
    void ms;
    return this;
  }

  setNoDelay(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  address(): { address: string; port: number; family: string } | Record<string, never> {
    if (this.localAddress === undefined) return {};
    return { address: this.localAddress, port: this.localPort ?? 0, family: this.localAddress.includes(':') ? 'IPv6' : 'IPv4' };
  }
}

function portOf(v: unknown): number | undefined {
  if (typeof v !== 'string' || !/^[0-9]{1,5}$/.test(v)) return undefined;
  return Number(v);
}

/**
 * A real IncomingMessage whose body is pulled from wsgi.input as the listener reads it. Its
 * `_read` is an own property: Express swaps the prototype of req for its own.
 */
function environRequest(socket: StandInSocket, environ: Environ, fullPath: boolean): http.IncomingMessage {
  const req = new http.IncomingMessage(socket as unknown as Socket);
  req.method = environ.REQUEST_METHOD;
  // The path below the mount point, as an Express sub-app sees it; Express keeps a preset
  // baseUrl and originalUrl, so req.baseUrl is SCRIPT_NAME and req.originalUrl the full path.
  req.url = requestTarget(environ, fullPath);
  if (environ.SCRIPT_NAME && !fullPath) Object.assign(req, { baseUrl: encodePath(environ.SCRIPT_NAME), originalUrl: requestTarget(environ, true) });
  const [major, minor] = httpVersionOf(environ);
  req.httpVersionMajor = major;
  req.httpVersionMinor = minor;
  req.httpVersion = `${major}.${minor}`;
  const raw: string[] = [];
  let host = false;
  for (const [name, value] of environHeaders(environ)) {
    if (name === 'Host') host = true;
    raw.push(name, value);
  }
  if (!host) raw.unshift('Host', requestHost(environ));
  // Node's own header table: repeated names joined as its parser would (Set-Cookie an array).
  const internal = req as unknown as { _addHeaderLines?: (h: string[], n: number) => void; _consuming: boolean };
  if (typeof internal._addHeaderLines === 'function') internal._addHeaderLines(raw, raw.length);
  else {
    req.rawHeaders = raw;
    const h: http.IncomingHttpHeaders = {};
    for (let i = 0; i < raw.length; i += 2) h[raw[i]!.toLowerCase()] ??= raw[i + 1];
    req.headers = h;
  }
  if (!hasBody(environ)) {
    req.complete = true;
    req.push(null);
  }
  const input = environ['wsgi.input'];
  let it: AsyncIterator<Uint8Array> | undefined;
  let pulling = false;
  const pull = async (): Promise<void> => {
    try {
      it ??= input[Symbol.asyncIterator]();
      for (;;) {
        const r = await it.next();
        if (r.done) {
          req.complete = true;
          req.push(null);
          return;
        }
        const c = r.value;
        if (!req.push(Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength))) return;
      }
    } catch (err) {
      // The client went away (ClientGoneError) or the body broke a limit (413): node:http's
      // server destroys the request with an error, which the listener's body parser sees.
      if (!req.destroyed) req.destroy(err as Error);
    } finally {
      pulling = false;
    }
  };
  Object.defineProperty(req, '_read', {
    configurable: true,
    writable: true,
    value: function _read(): void {
      internal._consuming = true;
      if (pulling || req.complete) return;
      pulling = true;
      void pull();
    },
  });
  return req;
}

interface Piece {
  data: Buffer;
  /** The socket write this piece ends: released once the piece was taken. */
  cb: WriteCallback | undefined;
}

const kNeedDrain = (() => {
  const res = new http.ServerResponse({ method: 'GET', httpVersionMajor: 1, httpVersionMinor: 1, headers: {} } as http.IncomingMessage);
  return Object.getOwnPropertySymbols(res).find((s) => s.description === 'kNeedDrain');
})();

/** One request through a Node listener: req and res, the socket between them, the response read back. */
class NodeExchange {
  readonly req: http.IncomingMessage;
  readonly res: http.ServerResponse;
  readonly socket: StandInSocket;
  head: ParsedHead | undefined;
  private readonly parser = new HttpResponseParser();
  private queue: Piece[] = [];
  private taken: WriteCallback[] = [];
  private heldBytes = 0;
  private finished = false;
  private failure: Error | undefined;
  private closed = false;
  private wake: (() => void) | undefined;

  constructor(environ: Environ, fullPath: boolean) {
    this.socket = new StandInSocket(environ, (chunks, cb) => this.written(chunks, cb));
    this.req = environRequest(this.socket, environ, fullPath);
    const res = new http.ServerResponse(this.req);
    this.res = res;
    // The web server in front dates the response; chunked framing (stripped again below) keeps
    // node's automatic Content-Length for res.end(body), as on a real HTTP/1.1 connection.
    res.sendDate = false;
    res.useChunkedEncodingByDefault = true;
    res.assignSocket(this.socket as unknown as Socket);
    res.on('finish', () => {
      this.finished = true;
      this.notify();
    });
    this.socket.on('error', (err: Error) => this.fail(err));
    this.socket.on('close', () => {
      if (!this.finished) this.fail(new AppError('the listener destroyed the response before it was complete'));
    });
    this.socket.on('drain', () => {
      // What node:http's server does on its socket's drain (socketOnDrain).
      const r = res as unknown as Record<symbol, boolean>;
      if (res.writableEnded) return;
      if (kNeedDrain === undefined) res.emit('drain');
      else if (r[kNeedDrain]) {
        r[kNeedDrain] = false;
        res.emit('drain');
      }
    });
  }

  run(listener: NodeListener): void {
    let r: unknown;
    try {
      r = listener(this.req, this.res);
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (r !== null && typeof r === 'object' && typeof (r as Promise<unknown>).then === 'function') {
      (r as Promise<unknown>).then(undefined, (err: unknown) => this.fail(err instanceof Error ? err : new Error(String(err))));
    }
  }

  /** Resolves once the final head was written (or fails with why it never will be). */
  async waitHead(signal: AbortSignal): Promise<ParsedHead> {
    while (!this.head) {
      if (this.failure) throw this.failure;
      if (signal.aborted) throw new ClientGoneError();
      await new Promise<void>((resolve) => {
        const done = (): void => {
          signal.removeEventListener('abort', done);
          resolve();
        };
        this.wake = done;
        signal.addEventListener('abort', done, { once: true });
      });
    }
    return this.head;
  }

  /** The whole response is already here: res ended and every byte it wrote was read back. */
  get complete(): boolean {
    const outputData = (this.res as unknown as { outputData?: unknown[] }).outputData;
    return (
      this.res.writableEnded &&
      this.socket.writableLength === this.heldBytes &&
      (outputData === undefined || outputData.length === 0) &&
      (!this.parser.head?.chunked || this.parser.done)
    );
  }

  /** Every body piece read back so far; their writes are released. */
  takeAll(): Buffer[] {
    const out = this.queue.map((p) => p.data);
    for (const p of this.queue) if (p.cb) this.taken.push(p.cb);
    this.queue = [];
    this.release();
    return out;
  }

  async next(): Promise<IteratorResult<Uint8Array>> {
    // The runner asks for the next piece only once the previous one is on its way: release the
    // socket writes it came from, so res.write() returns true again and 'drain' fires.
    this.release();
    for (;;) {
      const p = this.queue.shift();
      if (p) {
        if (p.cb) this.taken.push(p.cb);
        return { done: false, value: p.data };
      }
      if (this.failure) throw this.failure;
      if (this.finished || this.parser.done) return { done: true, value: undefined };
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  /** The runner is done with the response (finished, failed or the client went away). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const complete = this.finished || this.res.writableFinished;
    this.queue = [];
    this.release();
    if (!complete) {
      // The client went away or the response failed: what node:http's server does when the
      // connection closes under a request (abortIncoming, then the socket's close).
      if (!this.req.complete && !this.req.destroyed) {
        this.req.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
      }
    } else if (!this.req.readableEnded && !this.req.destroyed) {
      // Response done, body not read: node:http dumps it (resOnFinish); tsgi drops the rest.
      (this.req as unknown as { _dump(): void })._dump();
    }
    // 'close' on res, after 'finish' when it finished (node emits it once the response is done).
    if (!this.socket.destroyed) this.socket.destroy();
  }

  private written(chunks: Buffer[], cb: WriteCallback): void {
    if (this.closed) {
      cb();
      return;
    }
    let bytes = 0;
    const pieces: Buffer[] = [];
    try {
      for (const c of chunks) {
        bytes += c.length;
        for (const p of this.parser.push(c, (h) => this.onHead(h))) if (p.length > 0) pieces.push(p);
      }
    } catch (err) {
      this.fail(err as Error);
      cb();
      return;
    }
    if (pieces.length === 0) {
      cb();
    } else {
      this.heldBytes += bytes;
      const release: WriteCallback = () => {
        this.heldBytes -= bytes;
        cb();
      };
      for (let i = 0; i < pieces.length; i++) this.queue.push({ data: pieces[i]!, cb: i === pieces.length - 1 ? release : undefined });
    }
    this.notify();
  }

  private onHead(h: ParsedHead): void {
    this.head = h;
    this.notify();
  }

  private release(): void {
    if (this.taken.length === 0) return;
    const cbs = this.taken;
    this.taken = [];
    for (const cb of cbs) cb();
  }

  private fail(err: Error): void {
    if (this.failure || this.finished) return;
    this.failure = err;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}

/** Response headers for startResponse: hop-by-hop ones (node's framing) left out. */
function tsgiHeaders(head: ParsedHead): HeaderList {
  const out: HeaderList = [];
  for (const [n, v] of head.headers) {
    const lower = n.toLowerCase();
    if (HOP_BY_HOP.has(lower)) continue;
    // With chunked framing the length is the chunks' (RFC 9112 6.3): a Content-Length beside it goes.
    if (head.chunked && lower === 'content-length') continue;
    out.push([n, v]);
  }
  return out;
}

/**
 * A Node request listener as a TSGI app. `req` is a real `http.IncomingMessage` (method, url,
 * headers, rawHeaders, httpVersion, socket.remoteAddress/encrypted) whose body streams from
 * `wsgi.input`; `res` is a real `http.ServerResponse`. Its writes are paced by the front end
 * (`write()` returns false and 'drain' follows), its chunked framing is undone, and it emits
 * 'finish' and 'close' as on a node:http server. `req.url` is PATH_INFO and QUERY_STRING: the
 * path below the mount point SCRIPT_NAME, which is `req.baseUrl` (with `req.originalUrl` the
 * full path, as Express has them for a mounted sub-app); with `fullPath`, the whole path.
 */
export function fromNodeListener(listener: NodeListener, options: FromAdapterOptions = {}): App {
  const fullPath = options.fullPath ?? false;
  if (typeof listener !== 'function') throw new TypeError('fromNodeListener() wants a (req, res) function');
  return async function nodeApp(environ, startResponse): Promise<Body> {
    const ex = new NodeExchange(environ, fullPath);
    ex.run(listener);
    let head = ex.head;
    if (!head) {
      try {
        head = await ex.waitHead(environ['tsgi.signal']);
      } catch (err) {
        ex.close();
        throw err;
      }
    }
    startResponse(head.status, tsgiHeaders(head));
    const close = (): void => ex.close();
    // A response already whole (res.end(body) in the same turn) goes out in one piece.
    if (ex.complete) return Object.assign(ex.takeAll(), { close });
    return {
      [Symbol.asyncIterator]: () => ({ next: () => ex.next() }),
      close,
    };
  };
}
