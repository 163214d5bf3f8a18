// A Fetch handler as a TSGI app, from the app's side: a `(Request) => Response` handler (Hono's
// app.fetch, `export default { fetch }`) gets a Request made from environ and its Response goes
// out through startResponse, its body read one chunk at a time as the front end takes it.

import { STATUS_CODES } from 'node:http';
import type { App, Body, Environ, HeaderList, StartResponse } from '../types.js';
import { LightResponse, lightRequest, overrideGlobalObjects, RESPONSE_STATE, type ResponseParts } from './light-web.js';
import { HOP_BY_HOP } from '../runner/start-response.js';

export { inputStream } from './light-web.js';

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

const STANDARD_LINES: Record<number, string> = {};

/** `200 OK`: the code and the handler's statusText, or the standard reason phrase. */
export function statusLine(code: number, text: string | undefined): string {
  if (!text) return (STANDARD_LINES[code] ??= `${code} ${STATUS_CODES[code] || 'Unknown'}`);
  return `${code} ${text}`;
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
  /**
   * Make the global `Response` a lightweight one for the whole process (and the global `Request`
   * one that also takes tsgi's lightweight requests): a handler's `new Response('...')`, Hono's
   * `c.text()` and `c.json()` then record their body, status and headers and tsgi sends those as
   * they are, with no stream built (the real Response is built only when the handler asks it for
   * more: `body`, `text()`, `clone()`...). `bin/tsgi serve` and `bin/tsgi cgi` turn it on for a
   * Fetch handler (unless `TSGI_OVERRIDE_GLOBALS=0`); off by default here, since it changes a
   * global of the whole process. docs/frameworks.md, "Lightweight Request and Response".
   */
  overrideGlobalObjects?: boolean;
}

export function fromFetch(handler: FetchHandler | FetchApp, options: FromAdapterOptions = {}): App {
  const fullPath = options.fullPath ?? false;
  const fetch = typeof handler === 'function' ? handler : bindFetch(handler);
  if (options.overrideGlobalObjects) overrideGlobalObjects();
  // Not async: a handler that answers at once (Hono's sync routes) is answered at once.
  return function fetchApp(environ, startResponse) {
    const method = environ.REQUEST_METHOD;
    if (FORBIDDEN_METHODS.has(method.toUpperCase())) {
      startResponse('501 Not Implemented', [['Content-Type', 'text/plain; charset=utf-8']]);
      return [`${method} is not supported by Fetch handlers\n`];
    }
    const ctx = new Context(environ);
    const result = fetch(lightRequest(environ, method, fullPath), environ, ctx);
    if (result != null && typeof (result as Partial<PromiseLike<Response>>).then === 'function') {
      return Promise.resolve(result).then((response) => respond(response, startResponse, ctx));
    }
    return respond(result as Response, startResponse, ctx);
  };
}

/** The handler's execution context: waitUntil() promises, awaited in the body's close(). */
class Context implements ExecutionContext {
  waits: Promise<unknown>[] | undefined;
  #props: Record<string, unknown> | undefined;
  readonly #environ: Environ;

  constructor(environ: Environ) {
    this.#environ = environ;
  }

  waitUntil(promise: Promise<unknown>): void {
    const errors = this.#environ['wsgi.errors'];
    (this.waits ??= []).push(Promise.resolve(promise).catch((err: unknown) => errors.write(`waitUntil: ${String(err)}\n`)));
  }

  passThroughOnException(): void {}

  get props(): Record<string, unknown> {
    return (this.#props ??= {});
  }

  set props(value: Record<string, unknown>) {
    this.#props = value;
  }

  /** Waits for the waitUntil() work (the body's close()). */
  finish(): Promise<void> | undefined {
    return this.waits?.length ? Promise.allSettled(this.waits).then(() => {}) : undefined;
  }
}

function respond(response: Response, startResponse: StartResponse, ctx: Context): Body | Promise<Body> {
  // A lightweight Response (the global one, overrideGlobalObjects): its parts as they are.
  const parts = LightResponse.parts(response);
  if (parts) {
    startResponse(statusLine(parts.status, parts.statusText), partsHeaders(parts));
    const chunks = parts.body === null ? [] : [parts.body];
    return Object.assign(chunks, { close: () => ctx.finish() });
  }
  if (!(response instanceof Response) && !isResponseLike(response)) {
    throw new TypeError(`the Fetch handler must return a Response, got ${response === null ? 'null' : typeof response}`);
  }
  const real = LightResponse.realOf(response);
  if (real.type === 'error') throw new TypeError('the Fetch handler returned Response.error()');
  startResponse(statusLine(real.status, real.statusText), responseHeaders(real.headers));
  return responseBody(real, ctx);
}

function partsHeaders(parts: ResponseParts): HeaderList {
  if (parts.headers) return responseHeaders(parts.headers);
  return parts.contentType === null ? [] : [['content-type', parts.contentType]];
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
 * tsgi.signal. A lightweight one (light-web.ts): `url`, `method`, `headers`, `signal` and reading
 * the whole body are answered without building the Request; anything else builds the real one
 * first and is answered by it: an AbortSignal and a Request cost more than a whole small
 * response, and most handlers never look past those.
 */
export function toRequest(environ: Environ, method = environ.REQUEST_METHOD, fullPath = false): Request {
  return lightRequest(environ, method, fullPath);
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
async function responseBody(response: Response, ctx: Context): Promise<Body> {
  const stream = response.body;
  const finish = async (): Promise<void> => {
    await ctx.finish();
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

/**
 * The string or bytes a Response was made from (`new Response('Hello')`, Hono's c.text()), read
 * from undici's own record of it instead of through its stream: a stream read costs more than
 * the rest of a small response. Undefined whenever that record is not there as expected (another
 * undici, a stream body, a body already read): the stream is read then.
 */
function staticBody(response: Response): string | Uint8Array | undefined {
  if (RESPONSE_STATE === undefined || response.bodyUsed) return undefined;
  const body = (response as unknown as Record<symbol, { body?: { source?: unknown; stream?: ReadableStream; length?: unknown } } | undefined>)[RESPONSE_STATE]?.body;
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
