// A Fetch handler as a TSGI app, from the app's side: a `(Request) => Response` handler (Hono's
// app.fetch, `export default { fetch }`) gets a Request made from environ and its Response goes
// out through startResponse, its body read one chunk at a time as the front end takes it.

import { STATUS_CODES } from 'node:http';
import type { App, Body, Environ, HeaderList, InputStream } from '../types.js';
import { environHeaders, hasBody, HOP_BY_HOP, requestUrl } from './url.js';

/** A web-standard request handler: Hono's `app.fetch`, a `{ fetch }` module's method. */
// `any`: handlers type their env and context their own way (Hono: its Bindings).
export type FetchHandler = (request: Request, env?: any, ctx?: any) => Response | Promise<Response>;

/** An object served by its `fetch` method (a Hono app, `export default { fetch }`). */
export interface FetchApp {
  fetch: FetchHandler;
}

/** The third argument a handler gets: `waitUntil(promise)` runs work after the response. */
export interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
  passThroughOnException(): void;
  readonly props: Record<string, unknown>;
}

// undici refuses these as Request methods.
const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK']);
const NO_BODY_METHODS = new Set(['GET', 'HEAD']);
// Fetch's method normalization: these, in any case, are upper-cased; others stay as sent.
const NORMALIZED_METHODS = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT']);

/** `200 OK`: the code and the handler's statusText, or the standard reason phrase. */
export function statusLine(code: number, text: string | undefined): string {
  return `${code} ${text || STATUS_CODES[code] || 'Unknown'}`;
}

/**
 * A Fetch handler (or an object with a `fetch` method) as a TSGI app. The handler gets a
 * `Request` whose URL is rebuilt from environ (scheme, Host, PATH_INFO below the mount point
 * SCRIPT_NAME, as Hono's mount() does, and the query), whose body streams from `wsgi.input` and whose
 * `signal` is `tsgi.signal`; then `environ` (as `env`: REMOTE_ADDR and the rest) and an
 * execution context whose `waitUntil` promises are awaited in the body's `close()`, after the
 * response is finished.
 */
export interface FromAdapterOptions {
  /**
   * The URL's path is SCRIPT_NAME + PATH_INFO, the whole path the client asked for, instead of
   * the path below the mount point (the default, so that the app's routes work wherever it is
   * mounted and under CGI). For apps that route on the whole path. Same either way when
   * SCRIPT_NAME is empty.
   */
  fullPath?: boolean;
}

export function fromFetch(handler: FetchHandler | FetchApp, options: FromAdapterOptions = {}): App {
  const fullPath = options.fullPath ?? false;
  const fetch = typeof handler === 'function' ? handler : bindFetch(handler);
  return async function fetchApp(environ, startResponse) {
    const method = environ.REQUEST_METHOD;
    if (FORBIDDEN_METHODS.has(method.toUpperCase())) {
      startResponse('501 Not Implemented', [['Content-Type', 'text/plain; charset=utf-8']]);
      return [`${method} is not supported by Fetch handlers\n`];
    }
    const request = toRequest(environ, method, fullPath);
    const waits: Promise<unknown>[] = [];
    const ctx: ExecutionContext = {
      waitUntil: (p) => void waits.push(Promise.resolve(p).catch((err: unknown) => environ['wsgi.errors'].write(`waitUntil: ${String(err)}\n`))),
      passThroughOnException: () => {},
      props: {},
    };
    const response = await fetch(request, environ, ctx);
    if (!(response instanceof Response) && !isResponseLike(response)) {
      throw new TypeError(`the Fetch handler must return a Response, got ${response === null ? 'null' : typeof response}`);
    }
    if (response.type === 'error') throw new TypeError('the Fetch handler returned Response.error()');
    startResponse(statusLine(response.status, response.statusText), responseHeaders(response.headers));
    return responseBody(response, waits);
  };
}

function bindFetch(app: FetchApp): FetchHandler {
  if (!app || typeof app.fetch !== 'function') throw new TypeError('fromFetch() wants a function or an object with a fetch() method');
  return app.fetch.bind(app);
}

function isResponseLike(r: unknown): r is Response {
  return r !== null && typeof r === 'object' && typeof (r as Response).status === 'number' && 'headers' in r && 'body' in r;
}

/**
 * The Request for environ: URL from environ, headers from HTTP_*, body from wsgi.input, signal
 * tsgi.signal. `url`, `method` and `headers` are answered without building the Request; anything
 * else (body, signal, text(), passing it to fetch()) builds the real one first and is answered by
 * it (@hono/node-server's lazy request, as a Proxy): an AbortSignal and a Request cost more than
 * a whole small response, and most handlers never look past those three.
 */
export function toRequest(environ: Environ, method = environ.REQUEST_METHOD, fullPath = false): Request {
  let url: string | undefined;
  let headers: Headers | undefined;
  let real: Request | undefined;
  const getUrl = (): string => (url ??= requestUrl(environ, fullPath));
  const getHeaders = (): Headers => (headers ??= requestHeaders(environ));
  const build = (): Request => {
    if (real) return real;
    const init: RequestInit & { duplex?: 'half' } = { method, headers: getHeaders(), signal: environ['tsgi.signal'] };
    if (!NO_BODY_METHODS.has(method.toUpperCase()) && hasBody(environ)) {
      init.body = inputStream(environ['wsgi.input']);
      init.duplex = 'half';
    }
    return (real = new Request(getUrl(), init));
  };
  return new Proxy(Object.create(Request.prototype) as Request, {
    get(_target, key) {
      if (real === undefined) {
        if (key === 'url') return getUrl();
        // As the Request would have it: undici upper-cases the standard methods only.
        if (key === 'method') return NORMALIZED_METHODS.has(method.toUpperCase()) ? method.toUpperCase() : method;
        if (key === 'headers') return getHeaders();
        // Not a thenable: looking (Promise.resolve(request)) must not build it.
        if (key === 'then') return undefined;
      }
      const r = build();
      const v: unknown = Reflect.get(r, key, r);
      return typeof v === 'function' ? v.bind(r) : v;
    },
    has: (_target, key) => Reflect.has(build(), key),
    set: (_target, key, value) => Reflect.set(build(), key, value),
  });
}

function requestHeaders(environ: Environ): Headers {
  const headers = new Headers();
  for (const [name, value] of environHeaders(environ)) {
    try {
      headers.append(name, value);
    } catch {
      // a name undici will not take (not a token): the app can still read it from environ
    }
  }
  return headers;
}

/** wsgi.input as a pull-based ReadableStream: a chunk is read from the input only when asked for. */
export function inputStream(input: InputStream): ReadableStream<Uint8Array> {
  let it: AsyncIterator<Uint8Array> | undefined;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        it ??= input[Symbol.asyncIterator]();
        const r = await it.next();
        if (r.done) controller.close();
        else controller.enqueue(r.value);
      },
      cancel() {
        void Promise.resolve(it?.return?.()).catch(() => {});
      },
    },
    { highWaterMark: 0 },
  );
}

/** A Response's headers as TSGI's list: Set-Cookie kept one per value, hop-by-hop left out. */
export function responseHeaders(h: Headers): HeaderList {
  const out: HeaderList = [];
  const cookies = typeof h.getSetCookie === 'function' ? h.getSetCookie() : null;
  for (const [name, value] of h) {
    if (name === 'set-cookie' && cookies) continue;
    if (HOP_BY_HOP.has(name)) continue;
    out.push([name, value]);
  }
  if (cookies) for (const c of cookies) out.push(['set-cookie', c]);
  return out;
}

/**
 * The Response's body read chunk by chunk as the runner asks; close() cancels what is left. A
 * body that is already whole (a string, bytes: read to its end before the next event-loop turn)
 * becomes an array, so the runner sends it with its length in one write.
 */
async function responseBody(response: Response, waits: Promise<unknown>[]): Promise<Body> {
  const stream = response.body;
  const finish = async (): Promise<void> => {
    if (waits.length) await Promise.allSettled(waits);
  };
  if (!stream) return Object.assign([], { close: finish });
  const whole = staticBody(response);
  if (whole !== undefined) return Object.assign([whole], { close: finish });
  const reader = stream.getReader();
  let done = false;
  const close = async (): Promise<void> => {
    if (!done) {
      done = true;
      await reader.cancel().catch(() => {});
    }
    await finish();
  };
  const pending: Array<ReturnType<typeof reader.read>> = [];
  const first = reader.read();
  const r1 = await settledThisTurn(first);
  if (r1 === undefined) pending.push(first);
  else if (r1.done) {
    done = true;
    return Object.assign([], { close: finish });
  } else {
    const second = reader.read();
    const r2 = await settledThisTurn(second);
    if (r2?.done) {
      done = true;
      return Object.assign([r1.value], { close: finish });
    }
    pending.push(Promise.resolve(r1), second);
  }
  return {
    [Symbol.asyncIterator]: () => ({
      next: async () => {
        const r = await (pending.shift() ?? reader.read());
        if (r.done) done = true;
        return r as IteratorResult<Uint8Array>;
      },
      return: async () => ({ done: true, value: undefined }),
    }),
    close,
  };
}

let stateKey: symbol | null | undefined;

/**
 * The string or bytes a Response was made from (`new Response('Hello')`, Hono's c.text()), read
 * from undici's own record of it instead of through its stream: a stream read costs more than
 * the rest of a small response. Undefined whenever that record is not there as expected (another
 * undici, a stream body, a body already read): the stream is read then.
 */
function staticBody(response: Response): string | Uint8Array | undefined {
  if (stateKey === null || response.bodyUsed) return undefined;
  if (stateKey === undefined) {
    stateKey = Object.getOwnPropertySymbols(response).find((s) => s.description === 'state') ?? null;
    if (stateKey === null) return undefined;
  }
  const body = (response as unknown as Record<symbol, { body?: { source?: unknown; stream?: ReadableStream; length?: unknown } } | undefined>)[stateKey]?.body;
  if (!body || body.stream !== response.body || body.stream.locked) return undefined;
  const source = body.source;
  if (typeof source === 'string' && body.length === Buffer.byteLength(source)) return source;
  if (source instanceof Uint8Array && body.length === source.byteLength) return source;
  return undefined;
}

/** `p`'s result if it settles before the next event-loop turn, else undefined (p keeps going). */
function settledThisTurn<T>(p: Promise<T>): Promise<T | undefined> {
  p.catch(() => {}); // a rejection after the race is the iterator's to report
  let timer: NodeJS.Immediate | undefined;
  const later = new Promise<undefined>((resolve) => {
    timer = setImmediate(resolve, undefined);
  });
  return Promise.race([p, later]).finally(() => clearImmediate(timer));
}
