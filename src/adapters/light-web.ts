// Lightweight Request and Response for Fetch handlers, so that a small response costs what a small
// response should. Node 20's undici makes every Request and Response with a ReadableStream behind
// it (its constructor, makeTransferable), which costs more than the rest of a hello-world request;
// most handlers never look past a request's url, method and headers, and most responses are a
// string, bytes or nothing with a status and headers.
//
// - The request (`lightRequest`) answers url, method, headers and signal from environ, and
//   text(), json(), arrayBuffer() and bytes() by reading wsgi.input whole; anything else (body,
//   formData(), clone(), cache, passing it to `new Request()`) builds the real Request first
//   (its body a pull stream on wsgi.input) and is answered by it.
// - The response (`LightResponse`, which `overrideGlobalObjects()` makes the global Response)
//   records a string, bytes or null body with its status and headers; `fromFetch` sends those as
//   they are. Anything else about it (body, text(), clone(), ...) builds the real Response from
//   them and is answered by it; a body of any other kind (a stream, a Blob, FormData) builds the
//   real one at once.
//
// Both have the real class's prototype behind theirs, so `instanceof` holds, and are answered by
// the real object once it exists. The idea is @hono/node-server's (its lightweight Request and
// Response); this is tsgi's own code.

import { inspect } from 'node:util';
import type { Environ, InputStream } from '../types.js';
import { environHeaders, hasBody, requestHost, requestTarget } from './url.js';

// ---------------------------------------------------------------------------------------------
// The real classes, as they were before anything replaced the globals (kept on globalThis so
// that a second copy of this module finds the same ones).

interface Natives {
  Request: typeof Request;
  Response: typeof Response;
  Headers: typeof Headers;
}
const NATIVES = Symbol.for('tsgi.nativeFetchClasses');
const store = globalThis as unknown as Record<symbol, Natives | undefined>;
const natives: Natives = (store[NATIVES] ??= { Request: globalThis.Request, Response: globalThis.Response, Headers: globalThis.Headers });
export const NativeRequest = natives.Request;
export const NativeResponse = natives.Response;
const NativeHeaders = natives.Headers;

// undici keeps its state under symbols (Node 20, 22). Getters for them on the lightweight
// prototypes let undici's own code take a lightweight object for a real one (`new Request(req)`,
// `Response.prototype.text.call(res)`): each is the real object's.
const REQUEST_SLOTS = Object.getOwnPropertySymbols(new NativeRequest('http://localhost/'));
const RESPONSE_SLOTS = Object.getOwnPropertySymbols(new NativeResponse(''));
/** undici's record of a Response's state (its body's source among it), or undefined. */
export const RESPONSE_STATE: symbol | undefined = RESPONSE_SLOTS.find((s) => s.description === 'state');

type BodyInit = ConstructorParameters<typeof Response>[0];
type HeadersInit = ConstructorParameters<typeof Headers>[0];
type RequestInput = ConstructorParameters<typeof Request>[0];

const EMPTY = new Uint8Array(0);
const decoder = new TextDecoder();
const TEXT_PLAIN = 'text/plain;charset=UTF-8';
const NO_BODY_METHODS = new Set(['GET', 'HEAD']);
// Fetch's method normalization: these, in any case, are upper-cased; others stay as sent.
const NORMALIZED_METHODS = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT']);
const inspectCustom = Symbol.for('nodejs.util.inspect.custom');

const bodyUnusable = (): TypeError => new TypeError('Body is unusable: Body has already been read');

/**
 * Defines on `proto` every member of `nativeProto` it does not have itself, answered by the real
 * object `realOf(this)` (a getter by the real one's getter, a method by its method), and getters
 * for undici's state symbols `slots`.
 */
function delegateRest(proto: object, nativeProto: object, slots: symbol[], realOf: (self: object) => object): void {
  for (const key of Reflect.ownKeys(nativeProto)) {
    if (key === 'constructor' || Object.prototype.hasOwnProperty.call(proto, key)) continue;
    const d = Object.getOwnPropertyDescriptor(nativeProto, key)!;
    if (typeof d.get === 'function') {
      const get = d.get;
      Object.defineProperty(proto, key, {
        configurable: true,
        enumerable: d.enumerable,
        get(this: object) {
          return Reflect.apply(get, realOf(this), []);
        },
      });
    } else if (typeof d.value === 'function') {
      const method = d.value as (...args: unknown[]) => unknown;
      Object.defineProperty(proto, key, {
        configurable: true,
        enumerable: d.enumerable,
        writable: true,
        value: {
          [key as string](this: object, ...args: unknown[]) {
            return Reflect.apply(method, realOf(this), args);
          },
        }[key as string],
      });
    }
  }
  for (const slot of slots) {
    Object.defineProperty(proto, slot, {
      configurable: true,
      get(this: object) {
        return (realOf(this) as Record<symbol, unknown>)[slot];
      },
    });
  }
}

// ---------------------------------------------------------------------------------------------
// The request

// Hosts and request targets the URL parser leaves as they are: lower-case names that do not end in
// a number (which it would read as IPv4), no punycode, no default or odd port; paths without dot
// segments, backslashes or characters it would percent-encode. Anything else goes through `new URL()`.
const PLAIN_HOST = /^[a-z0-9-]+(?:\.[a-z0-9-]+)*\.?$/;
const NUMERIC_LABEL = /(?:^|\.)[0-9][0-9a-z]*\.?$/;
const DOTTED_QUAD = /^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;
const PLAIN_TARGET = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/%|[\]]*(?:\?[A-Za-z0-9\-._~!$&()*+,;=:@/?%|[\]]*)?$/;
// In the query too: a false alarm there only costs the parser.
const DOT_SEGMENT = /\/(?:\.|%2e)/i;

let lastAuthority = '';
let lastScheme = '';
let lastAuthorityPlain = false;

/** `authority` (host[:port]) is as the parser would write it back for `scheme` (the last one kept). */
function plainAuthority(scheme: string, authority: string): boolean {
  if (authority === lastAuthority && scheme === lastScheme) return lastAuthorityPlain;
  let host = authority;
  let plain = scheme === 'http' || scheme === 'https';
  const colon = authority.lastIndexOf(':');
  if (colon >= 0) {
    host = authority.slice(0, colon);
    const port = authority.slice(colon + 1);
    plain &&= /^[1-9][0-9]{0,4}$/.test(port) && Number(port) <= 65535 && port !== (scheme === 'https' ? '443' : '80');
  }
  plain &&= DOTTED_QUAD.test(host) || (PLAIN_HOST.test(host) && !NUMERIC_LABEL.test(host) && !host.includes('xn--'));
  lastAuthority = authority;
  lastScheme = scheme;
  lastAuthorityPlain = plain;
  return plain;
}

/** The URL as the parser has it, or `url` itself when the parser refuses it. */
function parsed(url: string): string {
  try {
    return new URL(url).href;
  } catch {
    return url;
  }
}

/**
 * The URL as a Request would give it back (`new Request(url).url`): the string itself when the
 * parser would leave it as it is, else what the parser makes of it; the string itself when the
 * parser refuses it (building the Request then throws, as it would have).
 */
export function normalizeUrl(url: string): string {
  const s = url.indexOf('://');
  let slash = url.indexOf('/', s + 3);
  if (slash < 0) slash = url.length;
  const target = url.slice(slash);
  if (s > 0 && plainAuthority(url.slice(0, s), url.slice(s + 3, slash)) && PLAIN_TARGET.test(target) && !DOT_SEGMENT.test(target)) return url;
  return parsed(url);
}

/** The request's URL from environ (requestUrl), as a Request would give it back. */
function environUrl(environ: Environ, fullPath: boolean): string {
  const scheme = environ['wsgi.url_scheme'] === 'https' ? 'https' : 'http';
  const authority = requestHost(environ);
  const target = requestTarget(environ, fullPath);
  const url = `${scheme}://${authority}${target}`;
  if (plainAuthority(scheme, authority) && PLAIN_TARGET.test(target) && !DOT_SEGMENT.test(target)) return url;
  return parsed(url);
}

/** The request headers environ carries, as a Headers (names a Headers will not take left out). */
export function requestHeaders(environ: Environ): Headers {
  const headers = new NativeHeaders();
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

const toArrayBuffer = (b: Uint8Array): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

/** The Request a Fetch handler gets: see the top of this file. Made by lightRequest(). */
class LightRequest {
  #environ: Environ;
  #rawMethod: string;
  #method: string;
  #fullPath: boolean;
  #hasBody: boolean;
  #url: string | undefined;
  #headers: Headers | undefined;
  #real: Request | undefined;
  /** text(), json(), arrayBuffer() or bytes() took the body from wsgi.input. */
  #consumed = false;

  constructor(environ: Environ, method: string, fullPath: boolean) {
    this.#environ = environ;
    this.#rawMethod = method;
    const upper = method.toUpperCase();
    this.#method = NORMALIZED_METHODS.has(upper) ? upper : method;
    this.#fullPath = fullPath;
    this.#hasBody = !NO_BODY_METHODS.has(upper) && hasBody(environ);
  }

  static is(v: unknown): v is LightRequest {
    return typeof v === 'object' && v !== null && #environ in v;
  }

  /** The real Request, built on first need: its body streams from wsgi.input (or is used up). */
  static realOf(self: object): Request {
    if (!LightRequest.is(self)) return self as Request;
    if (self.#real) return self.#real;
    const init: RequestInit & { duplex?: 'half' } = { method: self.#rawMethod, headers: self.headers };
    const signal = self.#environ['tsgi.signal'];
    if (signal) init.signal = signal;
    if (self.#hasBody) {
      init.body = self.#consumed ? new ReadableStream({ start: (c) => c.close() }) : inputStream(self.#environ['wsgi.input']);
      init.duplex = 'half';
    }
    const real = new NativeRequest(self.url, init);
    // Read already: the real one's body is used up too (bodyUsed, text() refused, clone() refused).
    if (self.#consumed) void real.body!.getReader().read().catch(() => {});
    return (self.#real = real);
  }

  get url(): string {
    return (this.#url ??= environUrl(this.#environ, this.#fullPath));
  }

  get method(): string {
    return this.#method;
  }

  get headers(): Headers {
    return this.#real ? this.#real.headers : (this.#headers ??= requestHeaders(this.#environ));
  }

  /** tsgi.signal: aborts when the client goes away (the real Request's follows it). */
  get signal(): AbortSignal {
    return this.#environ['tsgi.signal'] ?? LightRequest.realOf(this).signal;
  }

  get body(): ReadableStream<Uint8Array> | null {
    if (!this.#hasBody && !this.#real) return null;
    return LightRequest.realOf(this).body;
  }

  get bodyUsed(): boolean {
    return this.#consumed || (this.#real?.bodyUsed ?? false);
  }

  /** The whole body from wsgi.input, or undefined when the real Request answers (it exists). */
  #whole(): Promise<Uint8Array> | undefined {
    if (this.#real) return undefined;
    if (!this.#hasBody) return Promise.resolve(EMPTY);
    if (this.#consumed) return Promise.reject(bodyUnusable());
    this.#consumed = true;
    try {
      return this.#environ['wsgi.input'].read();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  text(): Promise<string> {
    const whole = this.#whole();
    return whole ? whole.then((b) => decoder.decode(b)) : this.#real!.text();
  }

  json(): Promise<unknown> {
    const whole = this.#whole();
    return whole ? whole.then((b) => JSON.parse(decoder.decode(b)) as unknown) : this.#real!.json();
  }

  arrayBuffer(): Promise<ArrayBuffer> {
    const whole = this.#whole();
    return whole ? whole.then(toArrayBuffer) : this.#real!.arrayBuffer();
  }

  bytes(): Promise<Uint8Array> {
    const whole = this.#whole();
    if (whole) return whole.then((b) => new Uint8Array(toArrayBuffer(b)));
    return (this.#real as unknown as { bytes(): Promise<Uint8Array> }).bytes();
  }

  [inspectCustom](depth: number, options: object): string {
    const shown = { method: this.method, url: this.url, headers: this.headers, real: this.#real };
    return `Request (lightweight) ${inspect(shown, { ...options, depth: depth < 0 ? null : depth - 1 })}`;
  }

  static {
    Object.setPrototypeOf(LightRequest.prototype, NativeRequest.prototype);
    // What the rest of Request has, the real one answers.
    delegateRest(LightRequest.prototype, NativeRequest.prototype, REQUEST_SLOTS, (self) => LightRequest.realOf(self));
    // Only where the real class has it.
    if (typeof (NativeRequest.prototype as { bytes?: unknown }).bytes !== 'function') delete (LightRequest.prototype as { bytes?: unknown }).bytes;
    Object.defineProperty(LightRequest.prototype, 'constructor', { value: NativeRequest, writable: true, configurable: true });
  }
}

/**
 * The Request for environ (a lightweight one, see above): URL from environ (scheme, Host,
 * PATH_INFO below SCRIPT_NAME unless `fullPath`, the query), headers from HTTP_*, body from
 * wsgi.input, signal tsgi.signal. `instanceof Request` holds.
 */
export function lightRequest(environ: Environ, method = environ.REQUEST_METHOD, fullPath = false): Request {
  return new LightRequest(environ, method, fullPath) as unknown as Request;
}

export const isLightRequest = (v: unknown): boolean => LightRequest.is(v);

// ---------------------------------------------------------------------------------------------
// The response

// Statuses a Response with a body may not have.
const isNullBodyStatus = (s: number): boolean => s === 101 || s === 103 || s === 204 || s === 205 || s === 304;
// RFC 9110 reason-phrase: HTAB, SP, VCHAR, obs-text.
const REASON_PHRASE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** What fromFetch sends for a lightweight Response that has not become a real one. */
export interface ResponseParts {
  status: number;
  statusText: string;
  /** The Response's headers, or undefined when nobody asked for them and none were given. */
  headers: Headers | undefined;
  /** The Content-Type to send when `headers` is undefined (a string body's text/plain). */
  contentType: string | null;
  body: string | Uint8Array | null;
}

/** Set by LightResponse.json() for the constructor it calls: the body is JSON. */
let jsonNext = false;

/**
 * A Response that keeps a string, bytes or null body with its status and headers as they were
 * given, and builds the real Response (undici's, its body a stream) only when asked for anything
 * more. Its prototype is the real Response.prototype's child, `instanceof Response` holds both
 * ways, and Response.json() makes one too; Response.redirect() and Response.error() are the real
 * ones. A Uint8Array body is not copied: it is sent as it is when the response goes out.
 */
export class LightResponse {
  #status = 200;
  #statusText = '';
  #body: string | Uint8Array | null = null;
  /** The Content-Type the body implies (text/plain for a string), for headers made later. */
  #type: string | null = null;
  #headers: Headers | undefined;
  #real: Response | undefined;

  constructor(body?: BodyInit | null, init?: ResponseInit) {
    const json = jsonNext;
    jsonNext = false;
    if (!this.#init(body, init, json)) {
      this.#real = json ? NativeResponse.json(JSON.parse(body as string), init) : new NativeResponse(body, init);
    }
  }

  /** Takes (body, init) as they are when they are the common kinds, and says whether it did. */
  #init(body: unknown, init: ResponseInit | undefined | null, json: boolean): boolean {
    let type: string | null = null;
    if (body === undefined || body === null) body = null;
    else if (typeof body === 'string') type = json ? 'application/json' : TEXT_PLAIN;
    else if (body instanceof ArrayBuffer) body = new Uint8Array(body);
    else if (!(body instanceof Uint8Array)) return false;
    let status = 200;
    let statusText = '';
    let headersInit: unknown;
    if (init !== undefined && init !== null) {
      if (typeof init !== 'object') return false;
      headersInit = init.headers;
      const s = init.status;
      if (s !== undefined) {
        if (typeof s !== 'number' || !Number.isInteger(s) || s < 200 || s > 599) return false;
        status = s;
      }
      const t = init.statusText;
      if (t !== undefined) {
        if (typeof t !== 'string' || !REASON_PHRASE.test(t)) return false;
        statusText = t;
      }
    }
    if (body !== null && isNullBodyStatus(status)) return false;
    if (headersInit !== undefined) {
      if (headersInit === null || typeof headersInit !== 'object') return false;
      // A copy, as the real Response makes (and the same TypeError for a bad name or value).
      const headers = new NativeHeaders(headersInit as HeadersInit);
      if (type !== null && !headers.has('content-type')) headers.append('content-type', type);
      this.#headers = headers;
    }
    this.#status = status;
    this.#statusText = statusText;
    this.#body = body as string | Uint8Array | null;
    this.#type = type;
    return true;
  }

  static is(v: unknown): v is LightResponse {
    return typeof v === 'object' && v !== null && #real in v;
  }

  /** The parts to send, or undefined when `v` is not a lightweight Response or is a real one now. */
  static parts(v: unknown): ResponseParts | undefined {
    if (!LightResponse.is(v) || v.#real) return undefined;
    return { status: v.#status, statusText: v.#statusText, headers: v.#headers, contentType: v.#type, body: v.#body };
  }

  /** The real Response: built on first need from the body, status and headers kept. */
  static realOf(self: object): Response {
    if (!LightResponse.is(self)) return self as Response;
    if (self.#real) return self.#real;
    const headers = self.#headers;
    // The Content-Type our body implies (application/json from json()), unless taken out since.
    const real = new NativeResponse(self.#body, {
      status: self.#status,
      statusText: self.#statusText,
      headers: headers ?? (self.#type === null ? undefined : [['content-type', self.#type]]),
    });
    if (headers && self.#type !== null && !headers.has('content-type')) real.headers.delete('content-type');
    return (self.#real = real);
  }

  static json(data: unknown, init?: ResponseInit): Response {
    const body = JSON.stringify(data) as string | undefined;
    if (body === undefined) return NativeResponse.json(data, init); // its TypeError
    jsonNext = true;
    try {
      return new LightResponse(body, init) as unknown as Response;
    } finally {
      jsonNext = false;
    }
  }

  static [Symbol.hasInstance](v: unknown): boolean {
    // Response: real and lightweight ones alike (both have the real prototype); a subclass: its own.
    return Function.prototype[Symbol.hasInstance].call(this === LightResponse ? NativeResponse : this, v);
  }

  get status(): number {
    return this.#real ? this.#real.status : this.#status;
  }

  get ok(): boolean {
    const s = this.status;
    return s >= 200 && s <= 299;
  }

  get statusText(): string {
    return this.#real ? this.#real.statusText : this.#statusText;
  }

  get headers(): Headers {
    if (this.#real) return this.#real.headers;
    return (this.#headers ??= new NativeHeaders(this.#type === null ? undefined : [['content-type', this.#type]]));
  }

  get type(): Response['type'] {
    return this.#real ? this.#real.type : 'default';
  }

  get url(): string {
    return this.#real ? this.#real.url : '';
  }

  get redirected(): boolean {
    return this.#real ? this.#real.redirected : false;
  }

  get bodyUsed(): boolean {
    return this.#real ? this.#real.bodyUsed : false;
  }

  [inspectCustom](depth: number, options: object): string {
    if (this.#real) return inspect(this.#real, { ...options, depth });
    const shown = { status: this.#status, statusText: this.#statusText, headers: this.headers, body: this.#body };
    return `Response (lightweight) ${inspect(shown, { ...options, depth: depth < 0 ? null : depth - 1 })}`;
  }

  static {
    Object.setPrototypeOf(LightResponse, NativeResponse); // Response.error(), Response.redirect()
    Object.setPrototypeOf(LightResponse.prototype, NativeResponse.prototype);
    // body, clone(), text(), json(), arrayBuffer(), blob(), formData(), bytes(): the real one's.
    delegateRest(LightResponse.prototype, NativeResponse.prototype, RESPONSE_SLOTS, (self) => LightResponse.realOf(self));
    Object.defineProperty(LightResponse, 'name', { value: 'Response' });
  }
}

/** A Response's real object: itself, or the real one behind a lightweight one (built if need be). */
export const realResponse = (r: Response): Response => LightResponse.realOf(r);

/** The global Request while overridden: takes a lightweight request for the real one it stands for. */
class RequestAcceptingLight extends NativeRequest {
  constructor(input: RequestInput, init?: RequestInit) {
    super(LightRequest.is(input) ? LightRequest.realOf(input) : input, init);
  }

  static override [Symbol.hasInstance](v: unknown): boolean {
    return Function.prototype[Symbol.hasInstance].call(this === RequestAcceptingLight ? NativeRequest : this, v);
  }

  static {
    Object.defineProperty(RequestAcceptingLight, 'name', { value: 'Request' });
  }
}

// ---------------------------------------------------------------------------------------------
// The globals

let saved: { Request: PropertyDescriptor | undefined; Response: PropertyDescriptor | undefined } | undefined;
const LIGHT = Symbol.for('tsgi.lightweightGlobals');

/**
 * Makes the global Response the lightweight one (so that a handler's `new Response('...')`,
 * Hono's c.text() and c.json(), cost no stream), and the global Request one that also takes a
 * lightweight request as its input. Once per process; restoreGlobalObjects() undoes it.
 */
export function overrideGlobalObjects(): void {
  const g = globalThis as unknown as Record<string | symbol, unknown>;
  if (saved || g[LIGHT]) return;
  saved = { Request: Object.getOwnPropertyDescriptor(globalThis, 'Request'), Response: Object.getOwnPropertyDescriptor(globalThis, 'Response') };
  Object.defineProperty(globalThis, 'Response', { value: LightResponse, writable: true, configurable: true, enumerable: false });
  Object.defineProperty(globalThis, 'Request', { value: RequestAcceptingLight, writable: true, configurable: true, enumerable: false });
  Object.defineProperty(globalThis, LIGHT, { value: true, configurable: true });
}

/** Puts the global Request and Response back as they were before overrideGlobalObjects(). */
export function restoreGlobalObjects(): void {
  if (!saved) return;
  for (const name of ['Request', 'Response'] as const) {
    const d = saved[name];
    if (d) Object.defineProperty(globalThis, name, d);
    else delete (globalThis as Record<string, unknown>)[name];
  }
  delete (globalThis as unknown as Record<symbol, unknown>)[LIGHT];
  saved = undefined;
}

/** The global Response is the lightweight one. */
export const globalsOverridden = (): boolean => globalThis.Response === (LightResponse as unknown);
