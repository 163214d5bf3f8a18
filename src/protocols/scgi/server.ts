// SCGI from the application's side: one request per connection. The netstring head becomes
// the environ, exactly CONTENT_LENGTH body bytes follow, and the response (a CGI head, then the
// body) ends when we close the connection.

import type net from 'node:net';
import { ClientGoneError, RequestError } from '../../errors.js';
import { cgiHeadText } from '../../runner/cgi-head.js';
import type { Gateway } from '../../runner/gateway.js';
import { refusingApp } from '../../runner/gateway.js';
import { RequestAbort } from '../../runner/abort.js';
import { percentDecode } from '../../runner/environ.js';
import { BodyQueue } from '../../runner/input.js';
import type { ResponseSink } from '../../runner/sink.js';
import type { HeaderList } from '../../types.js';
import type { ProtocolServer } from '../../net/protocols.js';
import { closeAfterWrite, createStreamServer, logProtocolError, writeList, type Connection } from '../../net/stream-server.js';
import { SocketReader } from '../../net/socket-reader.js';
import { RequestHeadDecoder } from './codec.js';

export function createScgiServer(gw: Gateway): ProtocolServer {
  return createStreamServer(gw, 'scgi', (socket) => new ScgiConnection(gw, socket));
}

/** A first body chunk up to this size is joined to the head (a copy); a larger one is not. */
const JOIN_LIMIT = 16384;

class ScgiConnection implements Connection, ResponseSink {
  private decoder: RequestHeadDecoder | null;
  private input: BodyQueue | null = null;
  private readonly ac = new RequestAbort();
  private running = false;
  private finished = false;
  private refused = false;
  private overrun = false;
  private drainWait: Promise<void> | null = null;
  private release: (() => void) | null = null;
  private readonly gw: Gateway;
  private readonly socket: net.Socket;
  /** The socket's bytes, read into a shared buffer: body bytes kept past a chunk go through keep(). */
  private readonly reader: SocketReader;
  /** 0 until the request head arrived (the shared sweeper's header timeout applies till then). */
  requests = 0;

  constructor(gw: Gateway, socket: net.Socket) {
    this.gw = gw;
    this.socket = socket;
    this.decoder = new RequestHeadDecoder({ maxHeaderBytes: gw.limits.maxHeaderBytes });
    this.reader = new SocketReader(socket, (chunk: Buffer) => this.data(chunk));
    socket.on('drain', () => this.wake());
    socket.on('close', () => this.closed());
  }

  idle(): boolean {
    return !this.running;
  }

  drain(): void {
    if (!this.running) this.socket.destroy();
  }

  private data(chunk: Buffer): void {
    if (this.decoder === null) {
      if (this.input) this.pushBody(chunk);
      return;
    }
    let head;
    try {
      head = this.decoder.push(chunk);
    } catch (err) {
      this.decoder = null;
      if (err instanceof RequestError) return this.refuse(err, {});
      logProtocolError(this.gw, 'scgi', err, this.socket.remoteAddress);
      this.socket.destroy();
      return;
    }
    if (head === null) return;
    this.decoder = null;
    const vars = head.headers;
    mountFromApacheProxy(vars);
    if (head.contentLength > this.gw.limits.maxBodyBytes) {
      return this.refuse(
        new RequestError('TSGI_BODY_TOO_LARGE', `request body of ${head.contentLength} bytes is over the limit of ${this.gw.limits.maxBodyBytes}`, 413),
        vars,
      );
    }
    this.input = new BodyQueue({
      length: head.contentLength,
      highWaterMark: this.gw.limits.bodyHighWaterMark,
      onDemand: () => this.socket.resume(),
    });
    // The client's own Content-Length, which nginx passes on as HTTP_CONTENT_LENGTH, over the
    // CONTENT_LENGTH of the netstring: the body the app gets is short (see pushBody).
    const told = vars.HTTP_CONTENT_LENGTH;
    if (told !== undefined && /^[0-9]{1,15}$/.test(told) && Number(told) > head.contentLength) {
      this.warnOverrun(`CONTENT_LENGTH is ${head.contentLength} but the request's Content-Length header says ${told}`);
    }
    if (head.body.length > 0) this.pushBody(head.body);
    this.run(vars);
  }

  private pushBody(bytes: Uint8Array): void {
    const input = this.input!;
    // Bytes past CONTENT_LENGTH are dropped (the queue never yields them), but a web server that
    // sends them is misconfigured: nginx with scgi_request_buffering off puts in CONTENT_LENGTH
    // only what it had read of the body when it connected, so the app gets a short body.
    if (bytes.length > input.remaining && !this.refused) this.warnOverrun('the web server sent more body than its CONTENT_LENGTH');
    if (!input.push(this.reader.keep(bytes))) this.socket.pause();
  }

  private warnOverrun(what: string): void {
    if (this.overrun) return;
    this.overrun = true;
    this.gw.log.warn(
      { code: 'TSGI_SCGI_BODY_OVERRUN' },
      `scgi: ${what}; the app gets a short body (nginx does this with scgi_request_buffering off: leave it on)`,
    );
  }

  // The runner answers err's status and logs it (once, at warn).
  private refuse(err: RequestError, vars: Record<string, string>): void {
    this.refused = true;
    this.input = new BodyQueue({ length: 0 });
    this.run(vars, refusingApp(err));
  }

  private run(vars: Record<string, string>, app?: Parameters<Gateway['handle']>[5]): void {
    this.running = true;
    this.requests = 1;
    void this.gw.handle(vars, this.input!, this, this.ac, undefined, app).then(() => {
      this.running = false;
    });
  }

  start(status: string, headers: HeaderList, chunk: Uint8Array | null, last: boolean): void | Promise<void> {
    const text = cgiHeadText(status, headers);
    if (chunk !== null && chunk.length <= JOIN_LIMIT) {
      // A small response: head and body in one buffer, one write.
      const out = Buffer.allocUnsafe(text.length + chunk.length) as Buffer & { latin1Write(s: string, offset: number): number };
      out.latin1Write(text, 0);
      out.set(chunk, text.length);
      if (!last) return this.write(out);
      this.socket.write(out);
      this.finish();
      return;
    }
    const head = Buffer.from(text, 'latin1');
    if (last) {
      // A large body is written from its own memory (one writev with the head), not copied.
      writeList(this.socket, chunk ? [head, chunk] : [head]);
      this.finish();
      return;
    }
    if (!chunk) return this.write(head);
    this.socket.cork();
    this.socket.write(head);
    const p = this.write(chunk);
    this.socket.uncork();
    return p;
  }

  write(chunk: Uint8Array): void | Promise<void> {
    if (this.socket.destroyed) {
      // Destroyed (a reset, EPIPE) but its 'close' not yet emitted: that waits for the handle to
      // close, a later turn of the event loop. Say so now, or a sync body would be pulled to its
      // end without yielding, and an endless one forever.
      this.closed();
      return;
    }
    if (this.socket.write(chunk)) return;
    this.drainWait ??= new Promise((resolve) => (this.release = resolve));
    return this.drainWait;
  }

  end(): void {
    if (this.finished) return;
    this.finish();
  }

  /**
   * The response is complete; SCGI says so by closing the connection. With the whole body in,
   * the web server has nothing more to send: close(2) at once (see closeAfterWrite). Otherwise
   * end our side and let the kernel take the unread rest: the web server already sent it whole
   * or will see the close.
   */
  private finish(): void {
    this.finished = true;
    if (this.input && this.input.remaining === 0 && !this.refused && !this.overrun) closeAfterWrite(this.socket);
    else this.socket.end();
  }

  abort(_error: Error): void {
    // SCGI's only end-of-response signal is the close: over TCP, a reset tells the web server
    // that the response broke off. A Unix socket has no reset (resetAndDestroy throws for one,
    // which took the whole server down): its close looks like the end of the response, so there
    // the web server can only tell when the app declared a Content-Length (docs/scgi.md).
    this.finished = true;
    try {
      this.socket.resetAndDestroy();
    } catch {
      this.socket.destroy();
    }
  }

  private wake(): void {
    const r = this.release;
    this.release = null;
    this.drainWait = null;
    r?.();
  }

  private closed(): void {
    if (!this.finished) {
      this.input?.fail(new ClientGoneError('scgi: the web server closed the connection'));
      this.ac.abort();
    }
    this.wake();
  }
}

// Apache mod_proxy_scgi ("ProxyPass /app/ scgi://127.0.0.1:4000/") sends SCRIPT_NAME as the whole
// decoded path and no PATH_INFO, leaving the backend to find its mount point (httpd manual,
// mod_proxy_scgi, "proxy-scgi-pathinfo"); with proxy-scgi-pathinfo set, its PATH_INFO is still
// percent-encoded and SCRIPT_NAME is cut where the two stop matching. Its SCRIPT_FILENAME is the
// proxied URL, "proxy:scgi://host:port/<path below the ProxyPass target>", percent-encoded: that
// path, decoded, is PATH_INFO, and what precedes it in the request path is SCRIPT_NAME.
const APACHE_PROXY_FILENAME = /^proxy:scgi:\/\/[^/]*(\/[^?]*)?/;

function mountFromApacheProxy(vars: Record<string, string>): void {
  const m = APACHE_PROXY_FILENAME.exec(vars.SCRIPT_FILENAME ?? '');
  if (!m) return;
  const below = percentDecode(m[1] ?? '/');
  // Apache's SCRIPT_NAME is its r->uri (decoded, dot segments and double slashes resolved), the
  // very path it mapped, when it sent no PATH_INFO; else the raw REQUEST_URI's path is all there is.
  const uri = vars.REQUEST_URI ?? '';
  const q = uri.indexOf('?');
  const full = vars.PATH_INFO === undefined ? vars.SCRIPT_NAME ?? '' : percentDecode(q >= 0 ? uri.slice(0, q) : uri);
  if (!full.startsWith('/')) return;
  // "ProxyPass /app scgi://h:p" and a request for /app itself: nothing below the mount.
  if (below === '/' && !full.endsWith('/')) {
    vars.SCRIPT_NAME = full;
    vars.PATH_INFO = '';
    return;
  }
  if (!full.endsWith(below)) return;
  vars.SCRIPT_NAME = full.slice(0, full.length - below.length);
  vars.PATH_INFO = below;
}
