// URL map (Paste's URLMap, werkzeug's DispatcherMiddleware): several apps under path prefixes,
// and under host names. The longest matching prefix wins, on segment boundaries (/api matches
// /api and /api/x, never /apix); the prefix moves from PATH_INFO to SCRIPT_NAME, as PEP 3333
// expects of a dispatcher, so each app sees the path below its mount point.

import { percentDecode } from '../runner/environ.js';
import type { App, Environ } from '../types.js';
import { encodeUtf8, respond } from './util.js';

export interface Mount {
  /** Path prefix (`/api`); `/` or empty for everything. Text, or %-encoded. */
  path?: string;
  /** Host name (`api.example.com`, with `:port` to match the port too, `*.example.com` for subdomains). */
  host?: string;
  /** Only for this URL scheme (`https`). */
  scheme?: 'http' | 'https';
  app: App;
}

/**
 * Mounts as a list, or as an object whose keys are `/path`, `//host/path` or
 * `https://host/path` (Paste's URLMap keys).
 */
export type MountTable = Record<string, App> | Mount[];

export interface UrlMapOptions {
  /** Answers requests no mount matches. Default: 404 Not Found. */
  notFound?: App;
}

interface Entry {
  prefix: string; // byte string, no trailing slash, '' for the root
  host?: string;
  wildcard: boolean;
  port?: string;
  scheme?: string;
  app: App;
}

/** Parses a URLMap key: `/path`, `//host/path`, `http://host/path`. */
export function parseMountKey(key: string): Omit<Mount, 'app'> {
  const m = /^(?:(https?):)?\/\/([^/]*)(\/.*)?$/i.exec(key);
  if (m) return { scheme: m[1]?.toLowerCase() as Mount['scheme'], host: m[2], path: m[3] ?? '/' };
  return { path: key };
}

/** Dispatches each request to the app mounted at the longest matching host and prefix. */
export function urlMap(mounts: MountTable, options: UrlMapOptions = {}): App {
  const list: Mount[] = Array.isArray(mounts) ? mounts : Object.entries(mounts).map(([k, app]) => ({ ...parseMountKey(k), app }));
  const entries = list.map(toEntry);
  // Host-bound mounts first (exact hosts before wildcards), then the longest prefix.
  entries.sort((a, b) => rank(b) - rank(a) || b.prefix.length - a.prefix.length);
  const notFound: App = options.notFound ?? ((_e, sr) => respond(sr, '404 Not Found', 'Not Found\n'));

  return function urlMapApp(environ, startResponse) {
    const path = environ.PATH_INFO ?? '';
    const { host, port } = requestHost(environ);
    for (const e of entries) {
      if (e.scheme && e.scheme !== environ['wsgi.url_scheme']) continue;
      if (e.host !== undefined) {
        if (e.wildcard ? !(host.endsWith(e.host) && host.length > e.host.length) : host !== e.host) continue;
        if (e.port !== undefined && e.port !== port) continue;
      }
      if (e.prefix && path !== e.prefix && !path.startsWith(e.prefix + '/')) continue;
      environ.SCRIPT_NAME = (environ.SCRIPT_NAME ?? '') + e.prefix;
      environ.PATH_INFO = path.slice(e.prefix.length);
      return e.app(environ, startResponse);
    }
    return notFound(environ, startResponse);
  };
}

function rank(e: Entry): number {
  return (e.host === undefined ? 0 : e.wildcard ? 2 : 4) + (e.port !== undefined ? 1 : 0);
}

function toEntry(m: Mount): Entry {
  if (typeof m.app !== 'function') throw new TypeError(`urlMap: the app mounted at ${m.host ?? ''}${m.path ?? '/'} is not a function`);
  let prefix = percentDecode(encodeUtf8(m.path ?? '/'));
  if (prefix && !prefix.startsWith('/')) throw new TypeError(`urlMap: mount path ${JSON.stringify(m.path)} must start with /`);
  prefix = prefix.replace(/\/+$/, '');
  const e: Entry = { prefix, app: m.app, wildcard: false, scheme: m.scheme };
  if (m.host) {
    let h = m.host.toLowerCase();
    const pm = /^(.*?)(?::([0-9]+))?$/.exec(h)!;
    h = pm[1]!;
    if (pm[2] !== undefined) e.port = pm[2];
    if (h.startsWith('*.')) {
      e.wildcard = true;
      h = h.slice(1); // '.example.com'
    }
    e.host = h.replace(/\.$/, '');
  }
  return e;
}

/** The host the client asked for (Host header, else SERVER_NAME), lower case, and its port. */
function requestHost(environ: Environ): { host: string; port: string } {
  const raw = (environ.HTTP_HOST as string | undefined) || environ.SERVER_NAME || '';
  let host = raw.toLowerCase();
  let port: string | undefined;
  const m = /^(\[[^\]]*\]|[^:]*)(?::([0-9]*))?$/.exec(host);
  if (m) {
    host = m[1]!;
    port = m[2] || undefined;
  }
  if (port === undefined) port = (environ.HTTP_HOST ? undefined : environ.SERVER_PORT) ?? (environ['wsgi.url_scheme'] === 'https' ? '443' : '80');
  return { host: host.replace(/\.$/, ''), port };
}
