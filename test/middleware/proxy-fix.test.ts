// proxyFix(): forwarding headers believed only from trusted addresses, counted in hops from the
// right like werkzeug's ProxyFix, RFC 7239 Forwarded, and what each rewrites in the environ.

import { describe, expect, it } from 'vitest';
import { fromRight, parseForwarded, proxyFix, trustList } from '../../src/middleware/proxy-fix.js';
import type { App, Environ } from '../../src/types.js';
import { call, linted } from './harness.js';

let seen: Environ | undefined;
const capture: App = linted((environ, sr) => {
  seen = { ...environ };
  sr('200 OK', [['Content-Type', 'text/plain']]);
  return ['ok'];
});

async function through(options: Parameters<typeof proxyFix>[1], vars: Record<string, string>): Promise<Environ> {
  seen = undefined;
  await call(proxyFix(capture, options), { REMOTE_ADDR: '127.0.0.1', SERVER_NAME: 'backend', SERVER_PORT: '8000', HTTP_HOST: 'backend:8000', ...vars });
  return seen!;
}

describe('proxyFix', () => {
  it('defaults: x_for=1, x_proto=1 from a loopback proxy', async () => {
    const e = await through({}, { HTTP_X_FORWARDED_FOR: '203.0.113.7', HTTP_X_FORWARDED_PROTO: 'https' });
    expect(e.REMOTE_ADDR).toBe('203.0.113.7');
    expect(e['wsgi.url_scheme']).toBe('https');
    expect(e.HTTPS).toBe('on');
    expect(e.HTTP_HOST).toBe('backend:8000'); // x_host=0: untouched
    expect(e['tsgi.proxy_fix.orig']).toMatchObject({ REMOTE_ADDR: '127.0.0.1', 'wsgi.url_scheme': 'http', HTTP_HOST: 'backend:8000' });
  });

  it('ignores the headers from an address that is not trusted', async () => {
    const e = await through({ trusted: ['10.0.0.0/8'] }, { REMOTE_ADDR: '192.0.2.1', HTTP_X_FORWARDED_FOR: '203.0.113.7', HTTP_X_FORWARDED_PROTO: 'https' });
    expect(e.REMOTE_ADDR).toBe('192.0.2.1');
    expect(e['wsgi.url_scheme']).toBe('http');
    expect(e['tsgi.proxy_fix.orig']).toBeUndefined();
  });

  it('trusts CIDR blocks, IPv6, and IPv4 seen as ::ffff:', async () => {
    for (const addr of ['10.1.2.3', '::ffff:10.1.2.3', 'fd00::5']) {
      const e = await through({ trusted: ['10.0.0.0/8', 'fd00::/8'] }, { REMOTE_ADDR: addr, HTTP_X_FORWARDED_FOR: '198.51.100.1' });
      expect(e.REMOTE_ADDR, addr).toBe('198.51.100.1');
    }
    expect(() => trustList(['nonsense'])).toThrow(/not an IP/);
    expect(() => trustList(['10.0.0.0/33'])).toThrow(/prefix/);
  });

  it('counts hops from the right: what the client wrote further left is never taken', async () => {
    // client sent "X-Forwarded-For: 1.1.1.1"; proxy A appended the client's real address, then B.
    const xff = '1.1.1.1, 203.0.113.9, 10.0.0.2';
    expect((await through({ xFor: 1 }, { HTTP_X_FORWARDED_FOR: xff })).REMOTE_ADDR).toBe('10.0.0.2');
    expect((await through({ xFor: 2 }, { HTTP_X_FORWARDED_FOR: xff })).REMOTE_ADDR).toBe('203.0.113.9');
    // Fewer values than hops: nothing is believed.
    expect((await through({ xFor: 4 }, { HTTP_X_FORWARDED_FOR: xff })).REMOTE_ADDR).toBe('127.0.0.1');
    expect(fromRight('a, b, c', 3)).toBe('a');
    expect(fromRight('a', 0)).toBeUndefined();
  });

  it('x_host, x_port, x_prefix', async () => {
    const e = await through(
      { xHost: 1, xPort: 1, xPrefix: 1 },
      { HTTP_X_FORWARDED_HOST: 'www.example.test', HTTP_X_FORWARDED_PORT: '8443', HTTP_X_FORWARDED_PROTO: 'https', HTTP_X_FORWARDED_PREFIX: '/app/' },
    );
    expect(e.HTTP_HOST).toBe('www.example.test:8443');
    expect(e.SERVER_NAME).toBe('www.example.test');
    expect(e.SERVER_PORT).toBe('8443');
    expect(e.SCRIPT_NAME).toBe('/app');
    const e2 = await through({ xHost: 1 }, { HTTP_X_FORWARDED_HOST: 'www.example.test', HTTP_X_FORWARDED_PROTO: 'https' });
    expect(e2.SERVER_PORT).toBe('443');
    const e3 = await through({ xPrefix: 1 }, { HTTP_X_FORWARDED_PREFIX: '/caf%C3%A9' });
    expect(e3.SCRIPT_NAME).toBe('/caf\u00c3\u00a9');
  });

  it('junk values are not believed', async () => {
    const e = await through(
      { xHost: 1, xPrefix: 1, xPort: 1 },
      {
        HTTP_X_FORWARDED_FOR: 'not-an-ip',
        HTTP_X_FORWARDED_PROTO: 'gopher',
        HTTP_X_FORWARDED_HOST: 'evil.test/path',
        HTTP_X_FORWARDED_PORT: 'eighty',
        HTTP_X_FORWARDED_PREFIX: 'relative',
      },
    );
    expect(e.REMOTE_ADDR).toBe('127.0.0.1');
    expect(e['wsgi.url_scheme']).toBe('http');
    expect(e.HTTP_HOST).toBe('backend:8000');
    expect(e.SERVER_PORT).toBe('8000');
    expect(e.SCRIPT_NAME).toBe('');
  });

  it('X-Forwarded-For with ports and brackets', async () => {
    expect((await through({}, { HTTP_X_FORWARDED_FOR: '[2001:db8::1]:4711' })).REMOTE_ADDR).toBe('2001:db8::1');
    expect((await through({}, { HTTP_X_FORWARDED_FOR: '192.0.2.60:1234' })).REMOTE_ADDR).toBe('192.0.2.60');
    expect((await through({}, { HTTP_X_FORWARDED_FOR: '2001:db8::2' })).REMOTE_ADDR).toBe('2001:db8::2');
  });

  it('RFC 7239 Forwarded, when enabled, wins over X-Forwarded-*', async () => {
    const fwd = 'for=1.1.1.1;proto=http, for="[2001:db8:cafe::17]:4711";proto=https;host="shop.example.test";by=_hidden';
    const e = await through({ forwarded: 1, xHost: 1 }, { HTTP_FORWARDED: fwd, HTTP_X_FORWARDED_FOR: '9.9.9.9', HTTP_X_FORWARDED_HOST: 'other.test' });
    expect(e.REMOTE_ADDR).toBe('2001:db8:cafe::17');
    expect(e['wsgi.url_scheme']).toBe('https');
    expect(e.HTTP_HOST).toBe('shop.example.test');
    const off = await through({}, { HTTP_FORWARDED: fwd });
    expect(off.REMOTE_ADDR).toBe('127.0.0.1');
    const hidden = await through({ forwarded: 1, xFor: 0 }, { HTTP_FORWARDED: 'for=_gazonk' });
    expect(hidden.REMOTE_ADDR).toBe('127.0.0.1');
  });

  it('parseForwarded: quoted strings with commas and semicolons, case-insensitive names', () => {
    expect(parseForwarded('For="a,b;c";Proto=https, for=x')).toEqual([{ for: 'a,b;c', proto: 'https' }, { for: 'x' }]);
    expect(parseForwarded('')).toEqual([{}]);
    expect(parseForwarded('for="\\"q\\""')).toEqual([{ for: '"q"' }]);
    expect(parseForwarded('garbage;;,,=;for')).toHaveLength(3);
  });

  it('refuses bad hop counts', () => {
    expect(() => proxyFix(capture, { xFor: -1 })).toThrow(/whole number/);
  });
});
