// A TSGI app as a Fetch handler, from the handler's side: a Request in, its body fed to
// wsgi.input as the app reads; a Response out at the app's first chunk, its body a stream the
// app's chunks go into as the consumer reads them.

import { ClientGoneError } from '../errors.js';
import { createLineLogger, type Logger } from '../log-line.js';
import { RequestAbort } from '../runner/abort.js';
import { cgiHeaderName, joinHeaderValues, parseContentLength, percentDecode } from '../runner/environ.js';
import { Gateway, refusingApp, type Limits } from '../runner/gateway.js';
import type { BodyQueue } from '../runner/input.js';
import type { ResponseSink } from '../runner/sink.js';
import { statusCode } from '../runner/start-response.js';
import type { App, HeaderList } from '../types.js';

export interface ToFetchOptions {
  /** Where log lines go (JSON lines on standard error by default). */
  log?: Logger;
  /** Error responses carry the stack (never in production). */
  debug?: boolean;
  limits?: Partial<Limits>;
  /** The path prefix the app is mounted at: SCRIPT_NAME, taken off PATH_INFO. */
  scriptName?: string;
}

/**
 * A TSGI app as a Fetch handler: `(request) => Promise<Response>`. The request body is fed to
 * `wsgi.input` as the app reads it; the response body is a stream the app's chunks go into as
 * the consumer reads them. The request's `signal` (or cancelling the response body) is the
 * client going away. A second argument with `REMOTE_ADDR` (an environ) or `remoteAddress`
 * gives REMOTE_ADDR.
 */
export function toFetch(app: App, options: ToFetchOptions = {}): (request: Request, env?: unknown) => Promise<Response> {
  const gw = new Gateway({
    app,
    log: options.log ?? createLineLogger(),
    protocol: 'http',
    debug: options.debug,
    limits: options.limits,
  });
  const scriptName = (options.scriptName ?? '').replace(/\/+$/, '');
  return (request, env) =>
    new Promise<Response>((resolve) => {
      const abort = new RequestAbort();
      const sink = new FetchSink(resolve, abort);
      let vars: Record<string, string>;
      let input: BodyQueue;
      let refuse: Error | undefined;
      let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
      try {
        vars = requestVars(request, scriptName, env);
      } catch (err) {
        resolve(new Response(`Bad Request: ${(err as Error).message}\n`, { status: 400, headers: { 'content-type': 'text/plain' } }));
        return;
      }
      try {
        const length = request.body === null ? 0 : parseContentLength(vars.CONTENT_LENGTH);
        input = gw.bodyQueue(length, () => pump());
      } catch (err) {
        refuse = err as Error;
        input = gw.bodyQueue(0, () => {});
      }
      const onAbort = (): void => {
        input.fail(new ClientGoneError());
        abort.abort();
        sink.released();
      };
      if (request.signal.aborted) onAbort();
      else request.signal.addEventListener('abort', onAbort, { once: true });
      sink.onCancel = onAbort;

      let pumping = false;
      const pump = (): void => {
        if (pumping || !reader) return;
        pumping = true;
        void (async () => {
          try {
            for (;;) {
              const r = await reader!.read();
              if (r.done) {
                input.end();
                return;
              }
              if (!input.push(r.value)) return; // the queue asks for more through onDemand
            }
          } catch (err) {
            input.fail(err instanceof Error ? err : new Error(String(err)));
          } finally {
            pumping = false;
          }
        })();
      };
      if (!refuse && request.body !== null && !input.complete) {
        reader = request.body.getReader();
        pump();
      }
      void gw.handle(vars, input, sink, abort, undefined, refuse ? refusingApp(refuse) : undefined).then(() => {
        request.signal.removeEventListener('abort', onAbort);
        if (reader && !input.complete) void reader.cancel().catch(() => {});
        sink.settle();
      });
    });
}

/** CGI variables for a Request (RFC 3875 4.1), header values as the byte strings Headers keep. */
function requestVars(request: Request, scriptName: string, env: unknown): Record<string, string> {
  const url = new URL(request.url);
  const https = url.protocol === 'https:';
  let path = percentDecode(url.pathname);
  let script = '';
  if (scriptName && (path === scriptName || path.startsWith(scriptName + '/'))) {
    script = scriptName;
    path = path.slice(scriptName.length);
  }
  const vars: Record<string, string> = {
    REQUEST_METHOD: request.method,
    SCRIPT_NAME: script,
    PATH_INFO: path,
    QUERY_STRING: url.search.slice(1),
    REQUEST_URI: url.pathname + url.search,
    SERVER_NAME: url.hostname,
    SERVER_PORT: url.port || (https ? '443' : '80'),
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_SOFTWARE: 'tsgi',
    GATEWAY_INTERFACE: 'CGI/1.1',
    REQUEST_SCHEME: https ? 'https' : 'http',
    REMOTE_ADDR: '',
  };
  if (https) vars.HTTPS = 'on';
  if (env !== null && typeof env === 'object') {
    const e = env as { REMOTE_ADDR?: unknown; REMOTE_PORT?: unknown; remoteAddress?: unknown };
    if (typeof e.REMOTE_ADDR === 'string') vars.REMOTE_ADDR = e.REMOTE_ADDR;
    else if (typeof e.remoteAddress === 'string') vars.REMOTE_ADDR = e.remoteAddress;
    if (typeof e.REMOTE_PORT === 'string') vars.REMOTE_PORT = e.REMOTE_PORT;
  }
  for (const [name, value] of request.headers) {
    const key = cgiHeaderName(name);
    if (key === null) continue;
    const prev = vars[key];
    vars[key] = prev === undefined ? value : joinHeaderValues(key, prev, value);
  }
  vars.HTTP_HOST ??= url.host;
  // A streamed body of unknown length is read to its end, as a chunked upload is.
  if (request.body !== null && vars.CONTENT_LENGTH === undefined) vars.HTTP_TRANSFER_ENCODING ??= 'chunked';
  return vars;
}

/** The runner's response as a Response: resolved at start(), its body a stream fed by write(). */
class FetchSink implements ResponseSink {
  onCancel: (() => void) | undefined;
  private controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  private release: (() => void) | undefined;
  private resolved = false;
  private readonly resolve: (r: Response) => void;
  private readonly abortFlag: RequestAbort;

  constructor(resolve: (r: Response) => void, abort: RequestAbort) {
    this.resolve = resolve;
    this.abortFlag = abort;
  }

  start(status: string, headers: HeaderList, chunk: Uint8Array | null, last: boolean): void | Promise<void> {
    const code = statusCode(status);
    // A Response cannot be a 1xx; everything else maps one to one.
    if (code < 200) throw new RangeError(`a Fetch Response cannot carry status ${code}`);
    const h = new Headers();
    for (const [n, v] of headers) h.append(n, v);
    const init: ResponseInit = { status: code, statusText: status.slice(4), headers: h };
    const nullBody = code === 204 || code === 205 || code === 304;
    if (nullBody || (last && chunk === null)) return this.respond(new Response(null, init));
    if (last) return this.respond(new Response(chunk, init));
    const stream = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.controller = c;
        },
        pull: () => this.released(),
        cancel: () => {
          this.controller = undefined;
          this.onCancel?.();
        },
      },
      { highWaterMark: 1 },
    );
    this.respond(new Response(stream, init));
    if (chunk) return this.write(chunk);
  }

  write(chunk: Uint8Array): void | Promise<void> {
    const c = this.controller;
    if (!c || this.abortFlag.aborted) return;
    c.enqueue(chunk);
    if ((c.desiredSize ?? 0) > 0) return;
    return new Promise<void>((resolve) => {
      this.release = resolve;
    });
  }

  end(): void {
    const c = this.controller;
    this.controller = undefined;
    c?.close();
  }

  abort(error: Error): void {
    const c = this.controller;
    this.controller = undefined;
    try {
      c?.error(error);
    } catch {
      // already closed
    }
    this.released();
  }

  /** The consumer wants more, or went away: a write waiting for room may go on. */
  released(): void {
    const r = this.release;
    this.release = undefined;
    r?.();
  }

  /** The runner is done: a request that never got a response gets a 500 (never expected). */
  settle(): void {
    if (!this.resolved) this.respond(new Response('Internal Server Error\n', { status: 500 }));
  }

  private respond(r: Response): void {
    if (this.resolved) return;
    this.resolved = true;
    this.resolve(r);
  }
}
