// urlMap(): longest prefix first on segment boundaries, SCRIPT_NAME/PATH_INFO moved as PEP 3333
// wants (checked by the validator on both sides), host and scheme mounts, 404 otherwise.

import { describe, expect, it } from 'vitest';
import { parseMountKey, urlMap } from '../../src/middleware/url-map.js';
import type { App } from '../../src/types.js';
import { call, linted } from './harness.js';

/** An app that answers "name SCRIPT_NAME|PATH_INFO". */
const echo = (name: string): App =>
  linted((environ, sr) => {
    sr('200 OK', [['Content-Type', 'text/plain']]);
    return [`${name} ${environ.SCRIPT_NAME}|${environ.PATH_INFO}`];
  });

const map = urlMap({
  '/': echo('root'),
  '/api': echo('api'),
  '/api/v2/': echo('v2'),
  '/caf\u00e9': echo('cafe'),
  '//admin.example.test/': echo('admin'),
  '//admin.example.test/api': echo('admin-api'),
  '//*.users.test/': echo('users'),
  'https://secure.test/': echo('secure'),
});

describe('urlMap', () => {
  it.each([
    ['/', 'root |/'],
    ['', 'root |'],
    ['/x/y', 'root |/x/y'],
    ['/api', 'api /api|'],
    ['/api/', 'api /api|/'],
    ['/api/users/1', 'api /api|/users/1'],
    ['/apix', 'root |/apix'], // not on a segment boundary
    ['/api/v2', 'v2 /api/v2|'],
    ['/api/v2/things', 'v2 /api/v2|/things'],
    ['/api/v20', 'api /api|/v20'],
    ['/caf\u00c3\u00a9/menu', 'cafe /caf\u00c3\u00a9|/menu'], // UTF-8 bytes of é in PATH_INFO
  ])('PATH_INFO %j -> %j', async (path, want) => {
    const r = await call(map, { PATH_INFO: path, HTTP_HOST: 'www.example.test' });
    expect(r.text).toBe(want);
  });

  it('adds to an existing SCRIPT_NAME', async () => {
    const r = await call(map, { SCRIPT_NAME: '/mount', PATH_INFO: '/api/x' });
    expect(r.text).toBe('api /mount/api|/x');
  });

  it.each([
    ['admin.example.test', '/', 'admin |/'],
    ['ADMIN.example.test:8080', '/api/x', 'admin-api /api|/x'],
    ['admin.example.test.', '/z', 'admin |/z'],
    ['alice.users.test', '/p', 'users |/p'],
    ['users.test', '/p', 'root |/p'], // the wildcard wants a subdomain
    ['other.test', '/api', 'api /api|'],
  ])('Host %j, path %j -> %j', async (host, path, want) => {
    const r = await call(map, { HTTP_HOST: host, PATH_INFO: path });
    expect(r.text).toBe(want);
  });

  it('without a Host header, SERVER_NAME is matched', async () => {
    const r = await call(map, { SERVER_NAME: 'admin.example.test', PATH_INFO: '/' });
    expect(r.text).toBe('admin |/');
  });

  it('a scheme-bound mount matches only that scheme', async () => {
    expect((await call(map, { HTTP_HOST: 'secure.test', PATH_INFO: '/a', HTTPS: 'on' })).text).toBe('secure |/a');
    expect((await call(map, { HTTP_HOST: 'secure.test', PATH_INFO: '/a' })).text).toBe('root |/a');
  });

  it('a host with a port matches only that port', async () => {
    const m = urlMap([{ host: 'h.test:8443', app: echo('port') }, { path: '/', app: echo('any') }]);
    expect((await call(m, { HTTP_HOST: 'h.test:8443' })).text).toBe('port |/');
    expect((await call(m, { HTTP_HOST: 'h.test' })).text).toBe('any |/');
  });

  it('404 when nothing matches, or the notFound app', async () => {
    const m = urlMap({ '/only': echo('only') });
    const r = await call(m, { PATH_INFO: '/other' });
    expect(r.status).toBe(404);
    const m2 = urlMap({ '/only': echo('only') }, { notFound: echo('fallback') });
    expect((await call(m2, { PATH_INFO: '/other' })).text).toBe('fallback |/other');
  });

  it('parses Paste-style keys', () => {
    expect(parseMountKey('/a')).toEqual({ path: '/a' });
    expect(parseMountKey('//h.test/a')).toEqual({ scheme: undefined, host: 'h.test', path: '/a' });
    expect(parseMountKey('https://h.test')).toEqual({ scheme: 'https', host: 'h.test', path: '/' });
  });

  it('refuses a mount path without a leading slash and a non-function app', () => {
    expect(() => urlMap({ api: echo('x') })).toThrow(/must start with \//);
    expect(() => urlMap({ '/x': 42 as unknown as App })).toThrow(/not a function/);
  });
});
