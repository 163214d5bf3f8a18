// Proxy fix (werkzeug's ProxyFix): behind reverse proxies, the client's address, the scheme,
// the host and the path prefix the client used arrive in X-Forwarded-For/-Proto/-Host/-Port/
// -Prefix or in RFC 7239's Forwarded. Those headers are believed only when the request comes
// from a trusted proxy address, and then only as many hops from the right as there are proxies
// you run (x_for=1: the last one, written by your proxy; whatever the client wrote is further
// left and ignored).

import net from 'node:net';
import { percentDecode } from '../runner/environ.js';
import type { App, Environ } from '../types.js';

export interface ProxyFixOptions {
  /** Addresses and CIDR blocks of your proxies (`127.0.0.1`, `10.0.0.0/8`, `::1`). Default loopback only. */
  trusted?: string[];
  /** How many X-Forwarded-For values to trust (proxies in the chain). Default 1. */
  xFor?: number;
  /** How many X-Forwarded-Proto values to trust. Default 1. */
  xProto?: number;
  /** How many X-Forwarded-Host values to trust. Default 0. */
  xHost?: number;
  /** How many X-Forwarded-Port values to trust. Default 0. */
  xPort?: number;
  /** How many X-Forwarded-Prefix values to trust. Default 0. */
  xPrefix?: number;
  /** How many Forwarded (RFC 7239) elements to trust; its for/proto/host win over X-Forwarded-*. Default 0. */
  forwarded?: number;
}

/** What the proxy fix changed, as it was before: environ['tsgi.proxy_fix.orig']. */
export interface ProxyFixOrig {
  REMOTE_ADDR?: string;
  'wsgi.url_scheme': string;
  HTTPS?: string;
  HTTP_HOST?: string;
  SERVER_NAME: string;
  SERVER_PORT: string;
  SCRIPT_NAME: string;
}

/** A net.BlockList of addresses and CIDR blocks (IPv4 ones also matched in their ::ffff: form). */
export function trustList(entries: string[]): net.BlockList {
  const list = new net.BlockList();
  for (const raw of entries) {
    const entry = raw.trim();
    const [addr, bits] = entry.split('/') as [string, string | undefined];
    const type = net.isIP(addr);
    if (type === 0) throw new TypeError(`proxyFix: '${raw}' is not an IP address or CIDR block`);
    const family = type === 4 ? 'ipv4' : 'ipv6';
    if (bits === undefined) {
      list.addAddress(addr, family);
      if (type === 4) list.addAddress(`::ffff:${addr}`, 'ipv6');
      continue;
    }
    const prefix = Number(bits);
    if (!/^[0-9]+$/.test(bits) || prefix > (type === 4 ? 32 : 128)) throw new TypeError(`proxyFix: '${raw}' has a bad prefix length`);
    list.addSubnet(addr, prefix, family);
    if (type === 4) list.addSubnet(`::ffff:${addr}`, 96 + prefix, 'ipv6');
  }
  return list;
}

function isTrusted(list: net.BlockList, addr: string | undefined): boolean {
  if (!addr) return false;
  const type = net.isIP(addr);
  if (type === 0) return false;
  return list.check(addr, type === 4 ? 'ipv4' : 'ipv6');
}

/** The value `trusted` hops from the right of a comma-separated header, or undefined (werkzeug's _get_real_value). */
export function fromRight(value: string | undefined, trusted: number): string | undefined {
  if (!trusted || !value) return undefined;
  const values = value.split(',').map((v) => v.trim());
  if (values.length < trusted) return undefined;
  return values[values.length - trusted] || undefined;
}

/** RFC 7239 Forwarded: the elements, each a map of lower-case parameter names to values. */
export function parseForwarded(value: string): Array<Record<string, string>> {
  const out: Array<Record<string, string>> = [];
  // Split on commas and semicolons outside quoted strings.
  let el: Record<string, string> = {};
  let i = 0;
  const n = value.length;
  const skipWs = () => {
    while (i < n && (value[i] === ' ' || value[i] === '\t')) i++;
  };
  for (;;) {
    skipWs();
    const start = i;
    while (i < n && value[i] !== '=' && value[i] !== ',' && value[i] !== ';') i++;
    const name = value.slice(start, i).trim().toLowerCase();
    let v = '';
    if (value[i] === '=') {
      i++;
      skipWs();
      if (value[i] === '"') {
        i++;
        while (i < n && value[i] !== '"') {
          if (value[i] === '\\' && i + 1 < n) i++;
          v += value[i++];
        }
        i++; // the closing quote
        while (i < n && value[i] !== ',' && value[i] !== ';') i++;
      } else {
        const vs = i;
        while (i < n && value[i] !== ',' && value[i] !== ';') i++;
        v = value.slice(vs, i).trim();
      }
      if (name && !(name in el)) el[name] = v;
    }
    if (i >= n) {
      out.push(el);
      return out;
    }
    if (value[i] === ',') {
      out.push(el);
      el = {};
    }
    i++;
  }
}

/** A node address from X-Forwarded-For or Forwarded `for`: an IP, without port or brackets; undefined if not an IP. */
function nodeAddress(v: string | undefined): string | undefined {
  if (!v) return undefined;
  let s = v.trim();
  const br = /^\[([^\]]+)\](?::[0-9]+)?$/.exec(s);
  if (br) s = br[1]!;
  else if (/^[0-9.]+:[0-9]+$/.test(s)) s = s.slice(0, s.indexOf(':'));
  return net.isIP(s) ? s : undefined;
}

const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-_~!$&'()*+,;=%]+)(?::([0-9]{1,5}))?$/;

/** Rewrites the environ from the forwarding headers of trusted proxies. */
export function proxyFix(app: App, options: ProxyFixOptions = {}): App {
  const trusted = trustList(options.trusted ?? ['127.0.0.0/8', '::1']);
  const n = {
    for: options.xFor ?? 1,
    proto: options.xProto ?? 1,
    host: options.xHost ?? 0,
    port: options.xPort ?? 0,
    prefix: options.xPrefix ?? 0,
    forwarded: options.forwarded ?? 0,
  };
  for (const [k, v] of Object.entries(n)) {
    if (!Number.isInteger(v) || v < 0) throw new TypeError(`proxyFix: ${k} must be a whole number >= 0, got ${String(v)}`);
  }
  return function proxyFixApp(environ, startResponse) {
    if (isTrusted(trusted, environ.REMOTE_ADDR as string | undefined)) fix(environ, n);
    return app(environ, startResponse);
  };
}

function fix(environ: Environ, n: { for: number; proto: number; host: number; port: number; prefix: number; forwarded: number }): void {
  const orig: ProxyFixOrig = {
    REMOTE_ADDR: environ.REMOTE_ADDR as string | undefined,
    'wsgi.url_scheme': environ['wsgi.url_scheme'],
    HTTPS: environ.HTTPS as string | undefined,
    HTTP_HOST: environ.HTTP_HOST as string | undefined,
    SERVER_NAME: environ.SERVER_NAME,
    SERVER_PORT: environ.SERVER_PORT,
    SCRIPT_NAME: environ.SCRIPT_NAME,
  };
  const h = (name: string) => environ[name] as string | undefined;
  let fwd: Record<string, string> = {};
  const fwdHeader = h('HTTP_FORWARDED');
  if (n.forwarded && fwdHeader) {
    const els = parseForwarded(fwdHeader);
    if (els.length >= n.forwarded) fwd = els[els.length - n.forwarded]!;
  }

  const addr = nodeAddress(fwd.for) ?? nodeAddress(fromRight(h('HTTP_X_FORWARDED_FOR'), n.for));
  if (addr) environ.REMOTE_ADDR = addr;

  const proto = (fwd.proto ?? fromRight(h('HTTP_X_FORWARDED_PROTO'), n.proto))?.toLowerCase();
  if (proto === 'http' || proto === 'https') {
    environ['wsgi.url_scheme'] = proto;
    if (proto === 'https') environ.HTTPS = 'on';
    else delete environ.HTTPS;
  }

  const host = fwd.host ?? fromRight(h('HTTP_X_FORWARDED_HOST'), n.host);
  if (host && HOST.test(host)) {
    environ.HTTP_HOST = host;
    const m = /^(\[[^\]]+\]|[^:]+)(?::([0-9]+))?$/.exec(host)!;
    environ.SERVER_NAME = m[1]!;
    environ.SERVER_PORT = m[2] ?? (environ['wsgi.url_scheme'] === 'https' ? '443' : '80');
  } else if (proto === 'http' || proto === 'https') {
    // The scheme changed but not the host: a port that was the old scheme's default follows.
    const hostHeader = h('HTTP_HOST') ?? '';
    if (!/:[0-9]+$/.test(hostHeader.replace(/^\[[^\]]*\]/, ''))) environ.SERVER_PORT = proto === 'https' ? '443' : '80';
  }

  const port = fromRight(h('HTTP_X_FORWARDED_PORT'), n.port);
  if (port && /^[0-9]{1,5}$/.test(port)) {
    const current = environ.HTTP_HOST as string | undefined;
    if (current) {
      const name = /^(\[[^\]]+\]|[^:]+)/.exec(current)?.[1] ?? current;
      environ.HTTP_HOST = `${name}:${port}`;
    }
    environ.SERVER_PORT = port;
  }

  const prefix = fromRight(h('HTTP_X_FORWARDED_PREFIX'), n.prefix);
  if (prefix && prefix.startsWith('/') && !/[\x00-\x1f\x7f]/.test(prefix)) {
    environ.SCRIPT_NAME = percentDecode(prefix).replace(/\/+$/, '');
  }
  environ['tsgi.proxy_fix.orig'] = orig;
}
