// The HTTP/1.1 development server, from the server's side: node:http in, environ out, the
// response streamed back with backpressure (keep-alive, HEAD, chunked when no length is known).

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';
import { ClientGoneError, RequestError } from '../../errors.js';
import { addHeaderVar, newVars, parseContentLength, percentDecode } from '../../runner/environ.js';
import type { Gateway } from '../../runner/gateway.js';
import { RequestAbort } from '../../runner/abort.js';
import { BodyQueue } from '../../runner/input.js';
import type { ResponseSink } from '../../runner/sink.js';
import { REASONS } from '../../runner/run.js';
import { statusCode } from '../../runner/start-response.js';
import type { HeaderList } from '../../types.js';

export function createHttpServer(gw: Gateway): http.Server {
  const server = http.createServer({
    maxHeaderSize: gw.limits.maxHeaderBytes,
    requestTimeout: 0, // the app may stream for as long as it likes; idle/header timeouts below
    headersTimeout: gw.limits.headerTimeoutMs,
    // node checks headersTimeout only this often (default 30 s): a slowloris would get that long.
    connectionsCheckingInterval: Math.max(250, Math.min(30_000, gw.limits.headerTimeoutMs / 4 || 30_000)),
    keepAliveTimeout: 5_000,
    // A body of GET with both Transfer-Encoding and Content-Length is refused by llhttp (strict
    // mode): keep it that way (request smuggling).
    insecureHTTPParser: false,
  });
  server.maxConnections = gw.limits.maxConnections;
  server.on('request', (req, res) => handleRequest(gw, req, res));
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    if (timeout) gw.log.warn({ code: 'TSGI_HEADER_TIMEOUT' }, 'http: request head not received in time; connection closed');
    else gw.log.debug({ code: err.code }, `http: bad request from client: ${err.message}`);
    if (socket.writable && !socket.destroyed) {
      const status = timeout ? '408 Request Timeout' : err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      // The connection is done for: close it fully once the answer is out, whatever the peer does.
      socket.destroySoon();
    } else socket.destroy();
  });
  return server;
}

function handleRequest(gw: Gateway, req: http.IncomingMessage, res: http.ServerResponse): void {
  const ac = new RequestAbort();
  let vars: Record<string, string>;
  let length: number | undefined;
  let input: BodyQueue;
  try {
    vars = requestVars(req);
    length = requestBodyLength(req, vars);
    input = gw.bodyQueue(length, () => req.resume());
  } catch (err) {
    const e = err as RequestError;
    gw.log.warn({ code: e.code }, `http: ${e.message}`);
    const status = e.status ?? 400;
    res.writeHead(status, REASONS[status], { 'Content-Type': 'text/plain', Connection: 'close' });
    res.end(`${e.message}\n`);
    return;
  }
  if (length !== 0) {
    req.on('data', (chunk: Buffer) => {
      if (!input.push(chunk)) req.pause();
    });
    req.on('end', () => input.end());
  }
  const sink = new HttpSink(res);
  res.on('close', () => {
    if (!res.writableFinished) {
      input.fail(new ClientGoneError());
      ac.abort();
      sink.closed();
    }
  });
  void gw.handle(vars, input, sink, ac);
}

/** CGI variables for a node:http request (RFC 3875 §4.1), latin-1 as node decodes headers. */
function requestVars(req: http.IncomingMessage): Record<string, string> {
  let target = req.url ?? '/';
  if (!target.startsWith('/')) {
    // absolute-form (a proxy request) or '*'
    const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*/.exec(target);
    if (m) target = target.slice(m[0].length) || '/';
  }
  const q = target.indexOf('?');
  const path = q >= 0 ? target.slice(0, q) : target;
  const sock = req.socket;
  const vars = newVars();
  vars.REQUEST_METHOD = req.method ?? 'GET';
  vars.SCRIPT_NAME = '';
  vars.PATH_INFO = percentDecode(path);
  vars.QUERY_STRING = q >= 0 ? target.slice(q + 1) : '';
  vars.REQUEST_URI = target;
  vars.SERVER_PROTOCOL = `HTTP/${req.httpVersion}`;
  vars.REMOTE_ADDR = sock.remoteAddress ?? '';
  vars.REMOTE_PORT = String(sock.remotePort ?? '');
  vars.SERVER_PORT = String(sock.localPort ?? (sock.address() as AddressInfo).port ?? '');
  vars.SERVER_SOFTWARE = 'tsgi';
  vars.GATEWAY_INTERFACE = 'CGI/1.1';
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) addHeaderVar(vars, raw[i]!, raw[i + 1]!);
  const host = vars.HTTP_HOST;
  vars.SERVER_NAME = host ? host.replace(/:[0-9]*$/, '') : (sock.localAddress ?? 'localhost');
  if (!vars.SERVER_PORT && host) vars.SERVER_PORT = /:([0-9]+)$/.exec(host)?.[1] ?? '80';
  return vars;
}

/** The body's length: CONTENT_LENGTH, undefined for chunked bodies, 0 when there is none. */
function requestBodyLength(req: http.IncomingMessage, vars: Record<string, string>): number | undefined {
  if (req.headers['transfer-encoding'] !== undefined) {
    // llhttp already refuses Transfer-Encoding together with Content-Length.
    delete vars.CONTENT_LENGTH;
    return undefined;
  }
  return parseContentLength(vars.CONTENT_LENGTH) ?? 0;
}

/** The runner's response onto a node:http ServerResponse, with its backpressure. */
export class HttpSink implements ResponseSink {
  private drainWait: Promise<void> | null = null;
  private release: (() => void) | null = null;
  private readonly res: http.ServerResponse;

  constructor(res: http.ServerResponse) {
    this.res = res;
  }

  start(status: string, headers: HeaderList, chunk: Uint8Array | null, last: boolean): void | Promise<void> {
    const flat: string[] = [];
    for (const [n, v] of headers) flat.push(n, v);
    // Shutting down: this response is the connection's last, and says so.
    const server = (this.res.socket as { server?: { listening: boolean } } | null)?.server;
    if (server && !server.listening) this.res.shouldKeepAlive = false;
    this.res.writeHead(statusCode(status), status.slice(4), flat);
    if (last) {
      this.res.end(chunk ?? undefined);
      return;
    }
    if (chunk) return this.write(chunk);
    this.res.flushHeaders();
  }

  write(chunk: Uint8Array): void | Promise<void> {
    if (this.res.write(chunk)) return;
    if (!this.drainWait) {
      this.drainWait = new Promise<void>((resolve) => {
        this.release = resolve;
        this.res.once('drain', () => this.closed());
      });
    }
    return this.drainWait;
  }

  end(): void {
    if (!this.res.writableEnded) this.res.end();
  }

  abort(error: Error): void {
    this.closed();
    // Destroying the socket mid-body leaves a chunked response without its last chunk, or a
    // Content-Length response short: the client sees it incomplete.
    void error;
    this.res.destroy();
  }

  /** Drain or close: whoever waits may go on (and look at the signal). */
  closed(): void {
    const r = this.release;
    this.release = null;
    this.drainWait = null;
    r?.();
  }
}
