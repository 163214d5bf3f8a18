// A Node `(req, res)` request listener as a TSGI app, from the app's side: Express, Koa's
// app.callback() or Fastify's routing get node:http's own IncomingMessage and ServerResponse over
// a stand-in socket. The response's head is taken from the ServerResponse when node stores it
// (status, and the header block node built, read back as a list) and never goes through the
// socket; what the socket receives after it is the body, as it is (node's chunked framing is off).

import http from 'node:http';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { AppError, ClientGoneError } from '../errors.js';
import type { App, Body, Environ, HeaderList, StartResponse } from '../types.js';
import { HOP_BY_HOP } from '../runner/start-response.js';
import type { FromAdapterOptions } from './fetch.js';
import { encodePath, hasBody, headerNameOf, requestHost, requestTarget } from './url.js';

/** A node:http request listener: `(req, res) => void` (Express apps, Koa's `app.callback()`). */
export type NodeListener = (req: http.IncomingMessage, res: http.ServerResponse) => unknown;

type WriteCallback = (err?: Error | null) => void;
/** A body piece as the socket got it: bytes, or a string in UTF-8 (the runner encodes it). */
type Piece = Buffer | string;

/** node:http's ServerResponse internals this adapter uses (stable since Node 0.x; checked below). */
interface ResponseInternals {
  _header: string | null;
  _headerSent: boolean;
  _storeHeader(firstLine: string, headers: unknown): void;
  chunkedEncoding: boolean;
  outputData: unknown[];
  _closed: boolean;
  finished: boolean;
}

interface RequestInternals {
  _addHeaderLines(h: string[], n: number): void;
  _consuming: boolean;
  _dump(): void;
  _readableState: { resumeScheduled: boolean };
}

const nodeStoreHeader = (http.ServerResponse.prototype as unknown as ResponseInternals)._storeHeader;
const kNeedDrain = (() => {
  const res = new http.ServerResponse({ method: 'GET', httpVersionMajor: 1, httpVersionMinor: 1, headers: {} } as http.IncomingMessage);
  return Object.getOwnPropertySymbols(res).find((s) => s.description === 'kNeedDrain');
})();
/** The node:http internals the adapter builds on are there (every Node since 0.x has them). */
const internalsThere = typeof nodeStoreHeader === 'function' && typeof (http.IncomingMessage.prototype as unknown as RequestInternals)._addHeaderLines === 'function';

/** Bytes of body the adapter takes from res before res.write() waits for the front end. */
const TAKE_AHEAD = 64 * 1024;
/** A response whole when the listener returns goes out as one piece up to this size. */
const JOIN_LIMIT = 64 * 1024;

/**
 * The socket under req and res: what res writes after its head goes to the exchange; the
 * addresses come from environ (read when asked for).
 */
class StandInSocket extends Duplex {
  readonly connecting = false;
  readonly environ: Environ;
  readonly exchange: NodeExchange;

  constructor(environ: Environ, exchange: NodeExchange) {
    // Strings reach _write as they are: a body string is encoded once, by the runner.
    super({ allowHalfOpen: true, decodeStrings: false });
    this.environ = environ;
    this.exchange = exchange;
  }

  get remoteAddress(): string | undefined {
    return this.environ.REMOTE_ADDR as string | undefined;
  }

  get remotePort(): number | undefined {
    return portOf(this.environ.REMOTE_PORT);
  }

  get remoteFamily(): string | undefined {
    const a = this.remoteAddress;
    return a === undefined ? undefined : a.includes(':') ? 'IPv6' : 'IPv4';
  }

  get localAddress(): string | undefined {
    return this.environ.SERVER_ADDR as string | undefined;
  }

  get localPort(): number | undefined {
    return portOf(this.environ.SERVER_PORT);
  }

  /** Express, Koa and Fastify tell https by socket.encrypted (a TLSSocket has it). */
  get encrypted(): true | undefined {
    return this.environ['wsgi.url_scheme'] === 'https' ? true : undefined;
  }

  override _read(): void {}

  override _write(chunk: Buffer | string, enc: BufferEncoding, cb: WriteCallback): void {
    this.exchange.written(chunk, enc);
    this.exchange.wrote(chunk.length, cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer | string; encoding: BufferEncoding }>, cb: WriteCallback): void {
    let n = 0;
    for (const c of chunks) {
      this.exchange.written(c.chunk, c.encoding);
      n += c.chunk.length;
    }
    this.exchange.wrote(n, cb);
  }

  // Writes are not batched: each goes to the exchange's queue as it comes (nothing is gained by
  // collecting them first: no system call follows). ServerResponse.end() sets corked to 1 itself
  // before it calls uncork().
  override cork(): void {}

  override uncork(): void {
    if (this.writableCorked > 0) super.uncork();
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
    const local = this.localAddress;
    if (local === undefined) return {};
    return { address: local, port: this.localPort ?? 0, family: local.includes(':') ? 'IPv6' : 'IPv4' };
  }
}

function portOf(v: unknown): number | undefined {
  if (typeof v !== 'string' || v.length === 0 || v.length > 5) return undefined;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return undefined;
  }
  return Number(v);
}

// Header names of the CGI variables seen so far (HTTP_USER_AGENT -> User-Agent); bounded, as the
// names come from clients.
const headerNames = new Map<string, string | null>();

function headerName(key: string): string | null {
  let name = headerNames.get(key);
  if (name === undefined) {
    name = headerNameOf(key);
    if (headerNames.size < 512) headerNames.set(key, name);
  }
  return name;
}

let lastProtocol = '';
let lastVersion: [number, number] = [1, 1];

/** HTTP/x.y of SERVER_PROTOCOL (1.1 when it is not one), the last one kept. */
function httpVersion(protocol: string | undefined): [number, number] {
  if (protocol === lastProtocol) return lastVersion;
  const m = /^HTTP\/([0-9])(?:\.([0-9]))?$/i.exec(protocol ?? '');
  lastVersion = m ? [Number(m[1]), Number(m[2] ?? 0)] : [1, 1];
  lastProtocol = protocol ?? '';
  return lastVersion;
}

const versions = new Map<number, string>();

/**
 * A real IncomingMessage whose body is pulled from wsgi.input as the listener reads it (its
 * `_read` an own property: Express swaps the prototype of req for its own).
 */
function environRequest(socket: StandInSocket, environ: Environ, fullPath: boolean): http.IncomingMessage {
  const req = new http.IncomingMessage(socket as unknown as Socket);
  req.method = environ.REQUEST_METHOD;
  // The path below the mount point, as an Express sub-app sees it; Express keeps a preset
  // baseUrl and originalUrl, so req.baseUrl is SCRIPT_NAME and req.originalUrl the full path.
  req.url = requestTarget(environ, fullPath);
  if (environ.SCRIPT_NAME && !fullPath) Object.assign(req, { baseUrl: encodePath(environ.SCRIPT_NAME), originalUrl: requestTarget(environ, true) });
  const [major, minor] = httpVersion(environ.SERVER_PROTOCOL);
  req.httpVersionMajor = major;
  req.httpVersionMinor = minor;
  let v = versions.get(major * 10 + minor);
  if (v === undefined) versions.set(major * 10 + minor, (v = `${major}.${minor}`));
  req.httpVersion = v;
  // The request headers environ carries (HTTP_*, CONTENT_TYPE, CONTENT_LENGTH), as node's parser
  // hands them over: name, value, name, value.
  const raw: string[] = [];
  let host = false;
  for (const key in environ) {
    const c = key.charCodeAt(0);
    if (c !== 0x48 /* H */ && c !== 0x43 /* C */) continue;
    const value = environ[key];
    if (typeof value !== 'string') continue;
    if (value === '' && (key === 'CONTENT_LENGTH' || key === 'CONTENT_TYPE')) continue;
    const name = headerName(key);
    if (name === null) continue;
    if (key === 'HTTP_HOST') host = true;
    raw.push(name, value);
  }
  if (!host) raw.unshift('Host', requestHost(environ));
  // Node's own header table, made now as node:http's server does (it reads req.headers before
  // the listener runs): repeated names joined as its parser would, Set-Cookie an array.
  const internal = req as unknown as RequestInternals;
  internal._addHeaderLines(raw, raw.length);
  void req.headers;
  if (!hasBody(environ)) {
    req.complete = true;
    req.push(null);
    return req;
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

/**
 * ServerResponse's `_storeHeader`, an own property of each response (Express swaps the
 * prototype): node builds the head as usual, and the exchange takes it from there. The head is
 * marked sent, so node never writes it to the socket, and node's chunked framing is turned off:
 * the socket gets the body as it is.
 */
function storeHeader(this: http.ServerResponse & ResponseInternals, firstLine: string, headers: unknown): void {
  nodeStoreHeader.call(this, firstLine, headers);
  const chunked = this.chunkedEncoding;
  this.chunkedEncoding = false;
  this._headerSent = true;
  // The socket is res's from the start (assignSocket) until 'finish', after which no head is stored.
  (this.socket as unknown as StandInSocket | null)?.exchange.stored(this, chunked);
}

/** res 'close' after 'finish' on the next tick, as node:http's server emits it (emitCloseNT). */
function emitClose(res: http.ServerResponse & ResponseInternals): void {
  if (!res._closed) {
    res.destroyed = true;
    res._closed = true;
    res.emit('close');
  }
}

// The exchange's listeners, shared by all of them (no closures per request).
function onResponseFinish(this: http.ServerResponse): void {
  (this.socket as unknown as StandInSocket | null)?.exchange.onFinish();
}

function onSocketError(this: StandInSocket, err: Error): void {
  this.exchange.fail(err);
}

function onSocketClose(this: StandInSocket): void {
  const ex = this.exchange;
  if (!ex.finished && !ex.closed) ex.fail(new AppError('the listener destroyed the response before it was complete'));
}

/** What node:http's server does on its socket's drain (socketOnDrain). */
function onSocketDrain(this: StandInSocket): void {
  const res = this.exchange.res;
  if (res.finished) return;
  const r = res as unknown as Record<symbol, boolean>;
  if (kNeedDrain === undefined) res.emit('drain');
  else if (r[kNeedDrain]) {
    r[kNeedDrain] = false;
    res.emit('drain');
  }
}

/** The status line and header block node built, as TSGI's status and header list. */
interface Head {
  status: string;
  headers: HeaderList;
}

/** One request through a Node listener: req and res, the socket between them, the body taken back. */
class NodeExchange {
  readonly req: http.IncomingMessage;
  readonly res: http.ServerResponse & ResponseInternals;
  readonly socket: StandInSocket;
  head: Head | undefined;
  /** Body pieces written and not yet handed to the runner. */
  private queue: Piece[] = [];
  /** Length of what is in `queue` (bytes; characters for a string). */
  private queued = 0;
  /** Socket writes held until the runner takes what they wrote (res.write() waits on them). */
  private held: WriteCallback[] = [];
  private heldLength = 0;
  /** res emitted 'finish'. */
  finished = false;
  private failure: Error | undefined;
  closed = false;
  private wake: (() => void) | undefined;

  constructor(environ: Environ, fullPath: boolean) {
    const socket = new StandInSocket(environ, this);
    this.socket = socket;
    this.req = environRequest(socket, environ, fullPath);
    const res = new http.ServerResponse(this.req) as http.ServerResponse & ResponseInternals;
    this.res = res;
    // The web server in front dates the response. Chunked framing stays node's default for a
    // body of unknown length, so that res.end(body) gets node's Content-Length as on a real
    // HTTP/1.1 connection; storeHeader turns the framing itself off.
    res.sendDate = false;
    res.useChunkedEncodingByDefault = true;
    res._storeHeader = storeHeader;
    res.assignSocket(socket as unknown as Socket);
    res.on('finish', onResponseFinish);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
    socket.on('drain', onSocketDrain);
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

  /** node stored the response's head (storeHeader). */
  stored(res: ResponseInternals & http.ServerResponse, chunked: boolean): void {
    if (this.head) return;
    this.head = { status: statusOf(res.statusCode, res.statusMessage), headers: headerList(res._header!, chunked) };
    this.notify();
  }

  /** Resolves once the head was stored (or fails with why it never will be). */
  async waitHead(signal: AbortSignal): Promise<Head> {
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

  /** res ended and every byte it wrote is here (its socket holds nothing else). */
  get whole(): boolean {
    return this.res.finished && this.socket.writableLength === this.heldLength && this.res.outputData.length === 0;
  }

  /** The whole body (`whole`), in one piece when small; the writes it came from are released. */
  takeAll(): Piece[] {
    let out = this.queue;
    if (out.length > 1 && this.queued <= JOIN_LIMIT) out = [joinPieces(out)];
    this.queue = [];
    this.queued = 0;
    this.release();
    return out;
  }

  async next(): Promise<IteratorResult<Piece>> {
    for (;;) {
      const p = this.queue.shift();
      if (p !== undefined) {
        this.queued -= p.length;
        // The runner asks for the next piece once this one is on its way: the writes waiting
        // on it may go on (res.write() returns true again, 'drain' follows).
        if (this.queued <= TAKE_AHEAD) this.release();
        return { done: false, value: p };
      }
      this.release();
      // Writes that waited on the release may have come in.
      if (this.queue.length > 0) continue;
      if (this.failure) throw this.failure;
      if (this.finished || (this.res.finished && this.socket.writableLength === 0 && this.res.outputData.length === 0)) {
        return { done: true, value: undefined };
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  /** The runner is done with the response (sent whole, failed, or the client went away). */
  close(): void {
    if (this.closed) return;
    // Complete: res ended and the runner took every byte it wrote (as node:http's 'finish' means
    // every byte was handed to the system). tsgi.signal is left alone: it is made when first read.
    const complete = this.failure === undefined && this.res.finished && this.queue.length === 0 && this.socket.writableLength === this.heldLength;
    this.closed = true;
    this.queue = [];
    this.queued = 0;
    if (complete) {
      this.release(); // 'finish' follows, if it has not come yet (onFinish)
      return;
    }
    // The client went away or the response failed: what node:http's server does when the
    // connection breaks under a request (abortIncoming, then the socket's error and close):
    // req is aborted, writes still waiting fail, and res closes without 'finish'.
    const held = this.held;
    this.held = [];
    this.heldLength = 0;
    if (!this.req.complete && !this.req.destroyed) {
      this.req.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
    }
    if (!this.socket.destroyed) {
      (this.socket as unknown as { _hadError: boolean })._hadError = true;
      const err = Object.assign(new Error('the response could not be completed'), { code: 'ECONNRESET' });
      for (const cb of held) cb(err);
      if (!this.socket.destroyed) this.socket.destroy();
    }
  }

  /**
   * What a socket write carried: a body piece; or, before the head was stored, an interim 1xx
   * response (writeContinue, writeEarlyHints), which the front end answers itself: dropped.
   */
  written(chunk: Buffer | string, enc: BufferEncoding): void {
    if (this.closed || this.head === undefined || chunk.length === 0) return;
    const piece = typeof chunk === 'string' && enc !== 'utf8' && enc !== 'utf-8' ? Buffer.from(chunk, enc) : chunk;
    this.queue.push(piece);
    this.queued += piece.length;
    this.notify();
  }

  /**
   * The socket write of `n` (as the socket counts) is done now while the runner has little to
   * take, else once it took it: res.write() returns false past the socket's highWaterMark and
   * 'drain' follows as the front end takes the body.
   */
  wrote(n: number, cb: WriteCallback): void {
    if (this.closed || (this.queued <= TAKE_AHEAD && this.held.length === 0)) cb();
    else {
      this.held.push(cb);
      this.heldLength += n;
    }
  }

  /** res 'finish': what node:http's server does then (resOnFinish). */
  onFinish(): void {
    this.finished = true;
    const req = this.req as unknown as RequestInternals;
    // A body the listener never read is dropped.
    if (!req._consuming && !req._readableState.resumeScheduled) req._dump();
    this.res.detachSocket(this.socket as unknown as Socket);
    process.nextTick(emitClose, this.res);
    this.notify();
  }

  private release(): void {
    if (this.held.length === 0) return;
    const cbs = this.held;
    this.held = [];
    this.heldLength = 0;
    for (const cb of cbs) cb();
  }

  fail(err: Error): void {
    if (this.failure || this.finished) return;
    this.failure = err;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    if (w === undefined) return;
    this.wake = undefined;
    w();
  }
}

function joinPieces(pieces: Piece[]): Buffer {
  return Buffer.concat(pieces.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p)));
}

/**
 * The header block node built (`res._header`: `Name: value` lines after the status line) as a
 * header list, without the hop-by-hop headers (node's framing) nor, when node framed the body in
 * chunks, a Content-Length beside it (RFC 9112 6.3: the length is the chunks').
 */
function headerList(block: string, chunked: boolean): HeaderList {
  const out: HeaderList = [];
  const end = block.length - 2;
  let at = block.indexOf('\r\n') + 2;
  while (at < end) {
    let nl = block.indexOf('\r\n', at);
    if (nl < 0) nl = end;
    const colon = block.indexOf(':', at);
    if (colon > at && colon < nl && !hopByHop(block, at, colon - at) && !(chunked && sameName(block, at, colon - at, 'content-length'))) {
      // node wrote `name: value`; whitespace around the value is not part of it (RFC 9110 5.5).
      let value = block.slice(colon + 2, nl);
      if (value.length > 0 && (isSpace(value.charCodeAt(0)) || isSpace(value.charCodeAt(value.length - 1)))) value = value.trim();
      out.push([block.slice(at, colon), value]);
    }
    at = nl + 2;
  }
  return out;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/** Hop-by-hop headers are the server's (PEP 3333): node's framing, Connection and the rest; by length. */
const HOP_BY_HOP_BY_LENGTH: string[][] = [];
for (const n of HOP_BY_HOP) {
  (HOP_BY_HOP_BY_LENGTH[n.length] ??= []).push(n);
}

/** The header name at block[at, at + length) is hop-by-hop. */
function hopByHop(block: string, at: number, length: number): boolean {
  const names = HOP_BY_HOP_BY_LENGTH[length];
  if (names === undefined) return false;
  for (const n of names) if (sameName(block, at, length, n)) return true;
  return false;
}

/** block[at, at + length) is `lower` in any case (a token: letters, digits, '-' and the like). */
function sameName(block: string, at: number, length: number, lower: string): boolean {
  if (length !== lower.length) return false;
  for (let i = 0; i < length; i++) {
    const c = block.charCodeAt(at + i);
    if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== lower.charCodeAt(i)) return false;
  }
  return true;
}

let lastCode = 0;
let lastMessage = '';
let lastStatus = '';

/** `200 OK`: the status line's code and reason, as TSGI's startResponse takes them (the last one kept). */
function statusOf(code: number, message: string): string {
  if (code !== lastCode || message !== lastMessage) {
    lastCode = code;
    lastMessage = message;
    lastStatus = `${code} ${message}`;
  }
  return lastStatus;
}

/**
 * A Node request listener as a TSGI app. `req` is a real `http.IncomingMessage` (method, url,
 * headers, rawHeaders, httpVersion, socket.remoteAddress/encrypted) whose body streams from
 * `wsgi.input`; `res` is a real `http.ServerResponse`. Its head becomes the TSGI status and
 * headers (hop-by-hop ones left out); its writes are paced by the front end (`write()` returns
 * false and 'drain' follows), and it emits 'finish' and 'close' as on a node:http server.
 * `req.url` is PATH_INFO and QUERY_STRING: the path below the mount point SCRIPT_NAME, which is
 * `req.baseUrl` (with `req.originalUrl` the full path, as Express has them for a mounted
 * sub-app); with `fullPath`, the whole path.
 */
export function fromNodeListener(listener: NodeListener, options: FromAdapterOptions = {}): App {
  const fullPath = options.fullPath ?? false;
  if (typeof listener !== 'function') throw new TypeError('fromNodeListener() wants a (req, res) function');
  if (!internalsThere) throw new Error(`fromNodeListener(): this Node (${process.version}) has no ServerResponse._storeHeader or IncomingMessage._addHeaderLines`);
  return function nodeApp(environ, startResponse): Body | Promise<Body> {
    const ex = new NodeExchange(environ, fullPath);
    ex.run(listener);
    const head = ex.head;
    // A response whole when the listener returns (res.end(body) in the same turn) goes out at
    // once, in one piece.
    if (head !== undefined) return respond(ex, head, startResponse);
    return ex.waitHead(environ['tsgi.signal']).then(
      (h) => respond(ex, h, startResponse),
      (err: unknown) => {
        ex.close();
        throw err;
      },
    );
  };
}

function respond(ex: NodeExchange, head: Head, startResponse: StartResponse): Body {
  try {
    startResponse(head.status, head.headers);
  } catch (err) {
    ex.close();
    throw err;
  }
  const close = (): void => ex.close();
  if (ex.whole) return Object.assign(ex.takeAll(), { close });
  return {
    [Symbol.asyncIterator]: () => ({ next: () => ex.next() }),
    close,
  };
}
