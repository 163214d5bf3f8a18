// From the adapters' side: the request URL and headers a Fetch handler or a Node listener
// expects, rebuilt from environ's byte strings (PEP 3333 "URL Reconstruction",
// wsgiref.util.request_uri), and the response headers that are the server's, not the app's.

import { percentDecode } from '../runner/environ.js';
import type { Environ } from '../types.js';

// RFC 3986 pchar minus '%' (PATH_INFO is decoded: a '%' in it was %25), plus '/'.
const PATH_SAFE = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/]*$/;
// What a query may hold as it stands: printable ASCII but for space and '#'.
const QUERY_SAFE = /^[\x21\x22\x24-\x7e]*$/;
// A request target's path as a web server passes it on (REQUEST_URI): printable ASCII, no '#'.
const RAW_PATH = /^\/[\x21\x22\x24-\x3e\x40-\x7e]*$/;
// reg-name or IPv4, or an IP literal, with an optional port (RFC 3986 3.2.2).
const HOST = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=%]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{0,5})?$/;

const HEX = '0123456789ABCDEF';

/** Latin-1 byte string (one char per byte) -> a URL path: bytes outside pchar as %XX. */
export function encodePath(path: string): string {
  if (PATH_SAFE.test(path)) return path;
  let out = '';
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    const ch = path[i]!;
    if (c < 0x80 && PATH_SAFE.test(ch)) out += ch;
    else out += '%' + HEX[(c >> 4) & 15] + HEX[c & 15];
  }
  return out;
}

/** QUERY_STRING (raw bytes as latin-1) -> a valid query: controls, space, '#' and non-ASCII as %XX. */
export function encodeQuery(query: string): string {
  if (QUERY_SAFE.test(query)) return query;
  let out = '';
  for (let i = 0; i < query.length; i++) {
    const c = query.charCodeAt(i);
    if (c > 0x20 && c < 0x7f && c !== 0x23) out += query[i];
    else out += '%' + HEX[(c >> 4) & 15] + HEX[c & 15];
  }
  return out;
}

/**
 * The request target as the app sees it: PATH_INFO (the path below the mount point SCRIPT_NAME,
 * as Express sub-apps and Hono's mount() see theirs) and QUERY_STRING, re-encoded. REQUEST_URI's
 * own spelling is kept when it names the same resource (so that `%2F` or `|` reach the
 * framework as the client sent them), never after a rewrite changed the path.
 * `withScriptName` gives SCRIPT_NAME + PATH_INFO: the full path (Express's originalUrl).
 */
export function requestTarget(environ: Environ, withScriptName = false): string {
  const script = environ.SCRIPT_NAME ?? '';
  const info = environ.PATH_INFO ?? '';
  const full = script + info;
  let path: string | undefined;
  const uri = environ.REQUEST_URI;
  if (typeof uri === 'string' && uri.length > 0) {
    const q = uri.indexOf('?');
    const raw = q >= 0 ? uri.slice(0, q) : uri;
    if (RAW_PATH.test(raw) && raw.startsWith(script) && percentDecode(raw) === full) path = withScriptName ? raw : raw.slice(script.length);
  }
  if (path === undefined) path = encodePath(withScriptName ? full : info);
  if (!path.startsWith('/')) path = '/' + path;
  const query = environ.QUERY_STRING;
  return query ? `${path}?${encodeQuery(query)}` : path;
}

/** `host[:port]` for the URL: Host when it is a valid authority, else SERVER_NAME and SERVER_PORT. */
export function requestHost(environ: Environ): string {
  const host = environ.HTTP_HOST;
  if (typeof host === 'string' && HOST.test(host)) return host;
  let name = environ.SERVER_NAME || 'localhost';
  if (name.includes(':') && !name.startsWith('[')) name = `[${name}]`;
  if (!HOST.test(name)) name = 'localhost';
  const port = environ.SERVER_PORT;
  const scheme = environ['wsgi.url_scheme'];
  const standard = (scheme === 'https' && port === '443') || (scheme === 'http' && port === '80');
  return port && !standard && /^[0-9]{1,5}$/.test(port) ? `${name}:${port}` : name;
}

/**
 * The absolute URL of the request (PEP 3333's reconstruction, with Host first): below the mount
 * point, as requestTarget(), unless `withScriptName`.
 */
export function requestUrl(environ: Environ, withScriptName = false): string {
  const scheme = environ['wsgi.url_scheme'] === 'https' ? 'https' : 'http';
  return `${scheme}://${requestHost(environ)}${requestTarget(environ, withScriptName)}`;
}

/** HTTP_X_FORWARDED_FOR -> X-Forwarded-For: the header name a CGI variable stood for. */
export function headerNameOf(key: string): string | null {
  if (key === 'CONTENT_TYPE') return 'Content-Type';
  if (key === 'CONTENT_LENGTH') return 'Content-Length';
  if (!key.startsWith('HTTP_') || key.length === 5) return null;
  // HTTP_CONTENT_TYPE / HTTP_CONTENT_LENGTH (some front ends send both): the CGI ones win.
  if (key === 'HTTP_CONTENT_TYPE' || key === 'HTTP_CONTENT_LENGTH') return null;
  let out = '';
  let upper = true;
  for (let i = 5; i < key.length; i++) {
    const ch = key[i]!;
    if (ch === '_') {
      out += '-';
      upper = true;
    } else {
      out += upper ? ch : ch.toLowerCase();
      upper = false;
    }
  }
  return out;
}

/** The request headers environ carries, as [Name, value] pairs (Title-Case names). */
export function environHeaders(environ: Environ): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const key in environ) {
    const c = key.charCodeAt(0);
    if (c !== 0x48 /* H */ && c !== 0x43 /* C */) continue;
    const value = environ[key];
    if (typeof value !== 'string') continue;
    if (key === 'CONTENT_LENGTH' && value === '') continue;
    if (key === 'CONTENT_TYPE' && value === '') continue;
    const name = headerNameOf(key);
    if (name !== null) out.push([name, value]);
  }
  return out;
}

/** The HTTP/x.y of SERVER_PROTOCOL, or 1.1. */
export function httpVersionOf(environ: Environ): [major: number, minor: number] {
  const m = /^HTTP\/([0-9])(?:\.([0-9]))?$/i.exec(environ.SERVER_PROTOCOL ?? '');
  return m ? [Number(m[1]), Number(m[2] ?? 0)] : [1, 1];
}

/** The request has a body to read: a non-zero CONTENT_LENGTH, or a chunked one of unknown length. */
export function hasBody(environ: Environ): boolean {
  const cl = environ.CONTENT_LENGTH;
  if (cl !== undefined && cl !== '') return cl !== '0';
  return environ.HTTP_TRANSFER_ENCODING !== undefined;
}
