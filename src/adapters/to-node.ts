// A TSGI app as a node:http request listener, from the listener's side: the request's fields
// and body become the environ and wsgi.input, the response goes onto the ServerResponse with its
// backpressure (as the HTTP server does), under any mount point Express gives it.

import type http from 'node:http';
import type { Socket } from 'node:net';
import { ClientGoneError } from '../errors.js';
import { createLineLogger, type Logger } from '../log-line.js';
import { RequestAbort } from '../runner/abort.js';
import { addHeaderVar, parseContentLength, percentDecode } from '../runner/environ.js';
import { HttpSink } from '../protocols/http/server.js';
import { Gateway, refusingApp, type Limits } from '../runner/gateway.js';
import type { BodyQueue } from '../runner/input.js';
import type { App } from '../types.js';

export interface ToNodeListenerOptions {
  /** Where log lines go (JSON lines on standard error by default). */
  log?: Logger;
  /** Error responses carry the stack (never in production). */
  debug?: boolean;
  limits?: Partial<Limits>;
}

type MountedRequest = http.IncomingMessage & { baseUrl?: string; originalUrl?: string };

/**
 * A TSGI app as a node:http request listener: `http.createServer(toNodeListener(app))`, or
 * mounted in Express with `app.use('/legacy', toNodeListener(tsgiApp))`, where Express's mount
 * path becomes SCRIPT_NAME. Mount it before any body parser: the app reads the body itself.
 */
export function toNodeListener(app: App, options: ToNodeListenerOptions = {}): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const gw = new Gateway({
    app,
    log: options.log ?? createLineLogger(),
    protocol: 'http',
    debug: options.debug,
    limits: options.limits,
  });
  return (req: MountedRequest, res) => {
    const abort = new RequestAbort();
    let vars: Record<string, string>;
    let input: BodyQueue;
    let refuse: Error | undefined;
    try {
      vars = nodeRequestVars(req);
    } catch (err) {
      res.writeHead(400, { 'Content-Type': 'text/plain' }).end(`${(err as Error).message}\n`);
      return;
    }
    try {
      let length: number | undefined;
      if (req.headers['transfer-encoding'] !== undefined) delete vars.CONTENT_LENGTH;
      else length = parseContentLength(vars.CONTENT_LENGTH) ?? 0;
      input = gw.bodyQueue(length, () => req.resume());
    } catch (err) {
      refuse = err as Error;
      input = gw.bodyQueue(0, () => {});
    }
    if (!refuse && !input.complete) {
      if (req.readableEnded) input.end();
      else {
        req.on('data', (chunk: Buffer) => {
          if (!input.push(chunk)) req.pause();
        });
        req.on('end', () => input.end());
        req.on('error', (err) => input.fail(err));
      }
    }
    const sink = new HttpSink(res);
    res.on('close', () => {
      if (!res.writableFinished) {
        input.fail(new ClientGoneError());
        abort.abort();
        sink.closed();
      }
    });
    void gw.handle(vars, input, sink, abort, undefined, refuse ? refusingApp(refuse) : undefined);
  };
}

/** CGI variables for a node:http request; under an Express mount, SCRIPT_NAME is the mount path. */
function nodeRequestVars(req: MountedRequest): Record<string, string> {
  const target = req.url ?? '/';
  const q = target.indexOf('?');
  const path = q >= 0 ? target.slice(0, q) : target;
  const sock = req.socket as Socket & { encrypted?: boolean };
  const https = sock?.encrypted === true;
  const base = typeof req.baseUrl === 'string' ? req.baseUrl : '';
  const vars: Record<string, string> = {
    REQUEST_METHOD: req.method ?? 'GET',
    SCRIPT_NAME: percentDecode(base),
    PATH_INFO: percentDecode(path),
    QUERY_STRING: q >= 0 ? target.slice(q + 1) : '',
    REQUEST_URI: typeof req.originalUrl === 'string' ? req.originalUrl : target,
    SERVER_PROTOCOL: `HTTP/${req.httpVersion}`,
    SERVER_SOFTWARE: 'tsgi',
    GATEWAY_INTERFACE: 'CGI/1.1',
    REMOTE_ADDR: sock?.remoteAddress ?? '',
    REQUEST_SCHEME: https ? 'https' : 'http',
  };
  if (sock?.remotePort !== undefined) vars.REMOTE_PORT = String(sock.remotePort);
  if (https) vars.HTTPS = 'on';
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) addHeaderVar(vars, raw[i]!, raw[i + 1]!);
  const host = vars.HTTP_HOST;
  const m = host ? /^(\[[^\]]*\]|[^:]*)(?::([0-9]+))?$/.exec(host) : null;
  vars.SERVER_NAME = m?.[1] || sock?.localAddress || 'localhost';
  vars.SERVER_PORT = m?.[2] ?? (host ? (https ? '443' : '80') : String(sock?.localPort ?? (https ? 443 : 80)));
  return vars;
}
