// CGI variables (latin-1 byte strings) -> the environ, with the wsgi.* and tsgi.* keys.
// Every protocol builds its environ here, so the rules (httpoxy, PATH_INFO, defaults) live once.

import { RequestError } from '../errors.js';
import type { Environ, ErrorStream, InputStream, Protocol } from '../types.js';
import { RequestAbort, type AbortFlag } from './abort.js';
import { fileWrapper } from './file-wrapper.js';

/** What the server tells every environ it builds. */
export interface ServerContext {
  protocol: Protocol;
  multithread: boolean;
  multiprocess: boolean;
  runOnce: boolean;
}

const VERSION: [1, 0] = [1, 0];

/**
 * environ['tsgi.signal'] is made on first read (an AbortController costs more than the rest of a
 * small request). One getter for every environ, reading the request's RequestAbort from a hidden
 * key: V8 then gives every environ the same shape, where a getter closure per request made each
 * one unique (defining it cost 1.7 µs against 0.35).
 */
const REQUEST_ABORT = Symbol('tsgi.requestAbort');
const LAZY_SIGNAL: PropertyDescriptor = {
  get(this: { [REQUEST_ABORT]: RequestAbort }): AbortSignal {
    return this[REQUEST_ABORT].signal;
  },
  // Middleware may put a signal of its own in its place, as it would any environ value.
  set(this: object, value: unknown): void {
    Object.defineProperty(this, 'tsgi.signal', { value, writable: true, enumerable: true, configurable: true });
  },
  enumerable: true,
  configurable: true,
};

/**
 * A new, empty object for the CGI variables that become the environ: a plain object (prototype
 * Object.prototype, constructor Object) made by a constructor, so that V8 sizes it by what it held
 * before and keeps its thirty-odd properties fast. An object literal given that many computed
 * keys turns into a dictionary: filling it took 1.3 µs against 0.45 µs (a 33-key environ).
 */
export const newVars: () => Record<string, string> = (() => {
  function Vars(): void {}
  Vars.prototype = Object.prototype;
  return () => new (Vars as unknown as new () => Record<string, string>)();
})();

/**
 * Turns `vars` (CGI meta-variables from the wire, one char per byte) into the environ, in place.
 * The `Proxy` request header never reaches the app as HTTP_PROXY (httpoxy, CVE-2016-5385).
 */
export function buildEnviron(
  vars: Record<string, string>,
  input: InputStream,
  errors: ErrorStream,
  signal: AbortFlag,
  ctx: ServerContext,
): Environ {
  const env = vars as Record<string, unknown>;
  if (vars.HTTP_PROXY !== undefined) delete env.HTTP_PROXY;
  if (vars.REQUEST_METHOD === undefined) env.REQUEST_METHOD = 'GET';
  if (vars.SCRIPT_NAME === undefined) env.SCRIPT_NAME = '';
  if (vars.PATH_INFO === undefined) env.PATH_INFO = pathFromRequestUri(vars.REQUEST_URI, vars.SCRIPT_NAME as string);
  if (vars.SERVER_PROTOCOL === undefined) env.SERVER_PROTOCOL = 'HTTP/1.0';
  const https = isHttps(vars);
  if (vars.SERVER_NAME === undefined) env.SERVER_NAME = hostName(vars.HTTP_HOST);
  if (vars.SERVER_PORT === undefined) env.SERVER_PORT = https ? '443' : '80';
  env['wsgi.version'] = VERSION;
  env['wsgi.url_scheme'] = https ? 'https' : 'http';
  env['wsgi.input'] = input;
  env['wsgi.errors'] = errors;
  env['wsgi.multithread'] = ctx.multithread;
  env['wsgi.multiprocess'] = ctx.multiprocess;
  env['wsgi.run_once'] = ctx.runOnce;
  env['wsgi.input_terminated'] = true;
  env['wsgi.file_wrapper'] = fileWrapper;
  env['tsgi.protocol'] = ctx.protocol;
  if (signal instanceof RequestAbort) {
    // A symbol key: no app or middleware that walks the names sees it (a plain store, where
    // defineProperty would cost a runtime call per request).
    env[REQUEST_ABORT as unknown as string] = signal;
    Object.defineProperty(env, 'tsgi.signal', LAZY_SIGNAL);
  } else env['tsgi.signal'] = signal;
  return env as Environ;
}

function isHttps(vars: Record<string, string>): boolean {
  const h = vars.HTTPS;
  if (h !== undefined) {
    const v = h.toLowerCase();
    if (v === 'on' || v === '1' || v === 'yes' || v === 'true') return true;
  }
  return vars.REQUEST_SCHEME === 'https';
}

function hostName(host: string | undefined): string {
  if (!host) return 'localhost';
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end > 0 ? host.slice(0, end + 1) : host;
  }
  const colon = host.indexOf(':');
  return colon >= 0 ? host.slice(0, colon) : host;
}

/** PATH_INFO for a front end that sent only REQUEST_URI: its path, decoded, past SCRIPT_NAME. */
function pathFromRequestUri(uri: string | undefined, scriptName: string): string {
  if (!uri) return '';
  const q = uri.indexOf('?');
  let path = percentDecode(q >= 0 ? uri.slice(0, q) : uri);
  if (scriptName && (path === scriptName || path.startsWith(scriptName + '/'))) path = path.slice(scriptName.length);
  return path;
}

/**
 * Decodes %XX escapes into one char per byte (latin-1), as PEP 3333 wants PATH_INFO:
 * `/caf%C3%A9` becomes `/caf\u00c3\u00a9`. Malformed escapes stay as they are.
 */
export function percentDecode(s: string): string {
  if (s.indexOf('%') < 0) return s;
  let out = '';
  let last = 0;
  for (let i = s.indexOf('%'); i >= 0 && i + 2 < s.length; i = s.indexOf('%', i + 1)) {
    const hi = hexValue(s.charCodeAt(i + 1));
    const lo = hexValue(s.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) continue;
    out += s.slice(last, i) + String.fromCharCode(hi * 16 + lo);
    last = i + 3;
    i += 2;
  }
  return out + s.slice(last);
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/**
 * CONTENT_LENGTH as a number: undefined when absent or empty (the body is then delimited by the
 * protocol), a RequestError (400) when it is not a plain decimal number.
 */
export function parseContentLength(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  if (!/^[0-9]{1,15}$/.test(value)) {
    throw new RequestError('TSGI_BAD_CONTENT_LENGTH', `invalid CONTENT_LENGTH ${JSON.stringify(value.slice(0, 40))}`, 400);
  }
  return Number(value);
}

/**
 * Adds one request header to `vars` as its CGI variable. A repeated header is joined as HTTP
 * joins it (", "; cookies with "; "); a repeated Content-Length or Content-Type keeps the first.
 */
export function addHeaderVar(vars: Record<string, string>, name: string, value: string): void {
  const key = cgiKey(name);
  if (key === null) return;
  const prev = vars[key];
  if (prev === undefined) vars[key] = value;
  else if (key !== 'CONTENT_LENGTH' && key !== 'CONTENT_TYPE') vars[key] = joinHeaderValues(key, prev, value);
}

/**
 * Two values of one header's CGI variable as one, the way HTTP joins a repeated field (RFC 9110
 * 5.3: ", "), cookies with "; " (RFC 6265 5.4).
 */
export function joinHeaderValues(key: string, prev: string, value: string): string {
  return prev + (key === 'HTTP_COOKIE' ? '; ' : ', ') + value;
}

/**
 * cgiHeaderName, remembered: a server sees the same handful of header names on every request
 * (AJP's codec even hands over the same string objects), so each is converted once. Bounded
 * against a client sending endless new names.
 */
const cgiKeys = new Map<string, string | null>();
function cgiKey(name: string): string | null {
  let key = cgiKeys.get(name);
  if (key === undefined) {
    key = cgiHeaderName(name);
    if (cgiKeys.size >= 1024) cgiKeys.clear();
    cgiKeys.set(name, key);
  }
  return key;
}

/** `Some-Header` -> `HTTP_SOME_HEADER`; null for names CGI cannot carry unambiguously. */
export function cgiHeaderName(name: string): string | null {
  // A header with an underscore would collide with its dashed twin once converted
  // (nginx and Apache drop them too); Proxy is httpoxy.
  if (name.indexOf('_') >= 0) return null;
  const upper = name.toUpperCase();
  if (upper === 'PROXY') return null;
  if (upper === 'CONTENT-TYPE') return 'CONTENT_TYPE';
  if (upper === 'CONTENT-LENGTH') return 'CONTENT_LENGTH';
  return 'HTTP_' + upper.replaceAll('-', '_');
}
