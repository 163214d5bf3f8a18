// staticFiles(): files through wsgi.file_wrapper with validators, conditional requests, single
// ranges and HEAD; a table of traversal attempts that must never reach a file outside the root.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRange, safeSegments, staticFiles } from '../../src/middleware/static-files.js';
import type { App } from '../../src/types.js';
import { call, linted } from './harness.js';

let base: string;
let root: string;
const BIN = Buffer.alloc(200_000);
for (let i = 0; i < BIN.length; i++) BIN[i] = (i * 7919) & 0xff;

beforeAll(() => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'tsgi-static-'));
  root = path.join(base, 'public');
  const outside = path.join(base, 'outside');
  fs.mkdirSync(path.join(root, 'sub'), { recursive: true });
  fs.mkdirSync(path.join(root, 'noindex'));
  fs.mkdirSync(path.join(root, '.well-known'));
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'TOP SECRET\n');
  fs.writeFileSync(path.join(base, 'public-sibling.txt'), 'TOP SECRET sibling\n');
  fs.writeFileSync(path.join(root, 'index.html'), '<h1>home</h1>\n');
  fs.writeFileSync(path.join(root, 'hello.txt'), 'hello world\n');
  fs.writeFileSync(path.join(root, 'data.bin'), BIN);
  fs.writeFileSync(path.join(root, 'empty.txt'), '');
  fs.writeFileSync(path.join(root, 'sub', 'index.html'), '<h1>sub</h1>\n');
  fs.writeFileSync(path.join(root, 'sub', 'style.css'), 'body{}\n');
  fs.writeFileSync(path.join(root, 'noindex', 'x.json'), '{}');
  fs.writeFileSync(path.join(root, '.secret'), 'TOP SECRET dotfile\n');
  fs.writeFileSync(path.join(root, '.well-known', 'security.txt'), 'Contact: mailto:x@example.test\n');
  fs.writeFileSync(path.join(root, 'café.txt'), 'café\n');
  fs.writeFileSync(path.join(root, 'no-ext'), 'raw');
  fs.symlinkSync('hello.txt', path.join(root, 'link-inside'));
  fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(root, 'link-outside'));
  fs.symlinkSync(outside, path.join(root, 'dirlink-outside'));
  fs.symlinkSync('../public-sibling.txt', path.join(root, 'link-sibling'));
});

afterAll(() => fs.rmSync(base, { recursive: true, force: true }));

const fallback: App = linted((environ, sr) => {
  sr('200 OK', [['Content-Type', 'text/plain']]);
  return [`app saw ${environ.PATH_INFO}`];
});

const get = (p: string, extra: Record<string, string> = {}, app?: App) => call(staticFiles(app, { root }), { PATH_INFO: p, ...extra });

describe('staticFiles: serving', () => {
  it('a file: body, Content-Type, Content-Length, ETag, Last-Modified, Accept-Ranges', async () => {
    const r = await get('/hello.txt');
    expect(r.status).toBe(200);
    expect(r.text).toBe('hello world\n');
    expect(r.header('Content-Type')).toBe('text/plain; charset=utf-8');
    expect(r.header('Content-Length')).toBe('12');
    expect(r.header('ETag')).toMatch(/^"[0-9a-f]+-c"$/);
    expect(new Date(r.header('Last-Modified')!).getTime()).toBe(Math.floor(fs.statSync(path.join(root, 'hello.txt')).mtimeMs / 1000) * 1000);
    expect(r.header('Accept-Ranges')).toBe('bytes');
  });

  it('a large binary file arrives whole, through wsgi.file_wrapper (its close() closes the file)', async () => {
    const r = await get('/data.bin');
    expect(r.header('Content-Type')).toBe('application/octet-stream');
    expect(Buffer.compare(r.body, BIN)).toBe(0);
  });

  it('uses the server\'s wsgi.file_wrapper', async () => {
    let used = 0;
    const app = staticFiles({ root });
    const wrapped: App = (environ, sr) => {
      const fw = environ['wsgi.file_wrapper']!;
      environ['wsgi.file_wrapper'] = (f, n) => {
        used++;
        return fw(f, n);
      };
      return app(environ, sr);
    };
    const r = await call(wrapped, { PATH_INFO: '/hello.txt' });
    expect(r.text).toBe('hello world\n');
    expect(used).toBe(1);
  });

  it('an empty file, a file without extension, a UTF-8 name', async () => {
    const e = await get('/empty.txt');
    expect(e.status).toBe(200);
    expect(e.header('Content-Length')).toBe('0');
    expect((await get('/no-ext')).header('Content-Type')).toBe('application/octet-stream');
    const c = await get('/caf\u00c3\u00a9.txt');
    expect(c.text).toBe('café\n');
  });

  it('index.html for a directory; /dir redirects to /dir/ (query kept, SCRIPT_NAME included)', async () => {
    expect((await get('/')).text).toBe('<h1>home</h1>\n');
    expect((await get('')).status).toBe(301);
    expect((await get('/sub/')).text).toBe('<h1>sub</h1>\n');
    const r = await call(staticFiles({ root }), { SCRIPT_NAME: '/static', PATH_INFO: '/sub', QUERY_STRING: 'a=1' });
    expect(r.status).toBe(301);
    expect(r.header('Location')).toBe('/static/sub/?a=1');
    expect((await get('/sub/style.css')).header('Content-Type')).toBe('text/css; charset=utf-8');
  });

  it('a directory without index, a missing file: 404, or the wrapped app', async () => {
    expect((await get('/noindex/')).status).toBe(404);
    expect((await get('/missing.txt')).status).toBe(404);
    expect((await get('/missing.txt', {}, fallback)).text).toBe('app saw /missing.txt');
    expect((await get('/hello.txt/', {}, fallback)).text).toBe('app saw /hello.txt/');
  });

  it('methods other than GET and HEAD go to the app', async () => {
    expect((await get('/hello.txt', { REQUEST_METHOD: 'POST' }, fallback)).text).toBe('app saw /hello.txt');
    expect((await get('/hello.txt', { REQUEST_METHOD: 'DELETE' })).status).toBe(404);
  });

  it('HEAD: the headers of GET, no body', async () => {
    const r = await get('/data.bin', { REQUEST_METHOD: 'HEAD' });
    expect(r.status).toBe(200);
    expect(r.header('Content-Length')).toBe(String(BIN.length));
    expect(r.body.length).toBe(0);
  });

  it('Cache-Control from maxAge/immutable; extra MIME types', async () => {
    const r = await call(staticFiles({ root, maxAge: 3600, immutable: true, mimeTypes: { '.txt': 'text/x-custom' } }), { PATH_INFO: '/hello.txt' });
    expect(r.header('Cache-Control')).toBe('public, max-age=3600, immutable');
    expect(r.header('Content-Type')).toBe('text/x-custom');
  });

  it('dotfiles: refused by default, .well-known served, all with dotfiles=allow', async () => {
    expect((await get('/.secret')).status).toBe(404);
    expect((await get('/.well-known/security.txt')).status).toBe(200);
    expect((await call(staticFiles({ root, dotfiles: 'allow' }), { PATH_INFO: '/.secret' })).status).toBe(200);
  });

  it('a symlink inside the root is followed', async () => {
    expect((await get('/link-inside')).text).toBe('hello world\n');
  });
});

describe('staticFiles: conditional requests', () => {
  it('If-None-Match: 304 with the validators, no body; * and lists; weak comparison', async () => {
    const etag = (await get('/hello.txt')).header('ETag')!;
    for (const inm of [etag, `W/${etag}`, `"nope", ${etag}`, '*']) {
      const r = await get('/hello.txt', { HTTP_IF_NONE_MATCH: inm });
      expect(r.status, inm).toBe(304);
      expect(r.header('ETag')).toBe(etag);
      expect(r.body.length).toBe(0);
    }
    expect((await get('/hello.txt', { HTTP_IF_NONE_MATCH: '"other"' })).status).toBe(200);
  });

  it('If-Modified-Since: 304 when not modified since; ignored when If-None-Match is there', async () => {
    const lm = (await get('/hello.txt')).header('Last-Modified')!;
    expect((await get('/hello.txt', { HTTP_IF_MODIFIED_SINCE: lm })).status).toBe(304);
    expect((await get('/hello.txt', { HTTP_IF_MODIFIED_SINCE: 'Thu, 01 Jan 1970 00:00:00 GMT' })).status).toBe(200);
    expect((await get('/hello.txt', { HTTP_IF_MODIFIED_SINCE: 'garbage' })).status).toBe(200);
    expect((await get('/hello.txt', { HTTP_IF_MODIFIED_SINCE: lm, HTTP_IF_NONE_MATCH: '"other"' })).status).toBe(200);
  });

  it('If-Match and If-Unmodified-Since: 412 when they fail', async () => {
    const etag = (await get('/hello.txt')).header('ETag')!;
    expect((await get('/hello.txt', { HTTP_IF_MATCH: '"other"' })).status).toBe(412);
    expect((await get('/hello.txt', { HTTP_IF_MATCH: etag })).status).toBe(200);
    expect((await get('/hello.txt', { HTTP_IF_MATCH: `W/${etag}` })).status).toBe(412); // strong comparison
    expect((await get('/hello.txt', { HTTP_IF_UNMODIFIED_SINCE: 'Thu, 01 Jan 1970 00:00:00 GMT' })).status).toBe(412);
  });
});

describe('staticFiles: ranges', () => {
  it.each([
    ['bytes=0-4', 0, 4],
    ['bytes=10-', 10, BIN.length - 1],
    ['bytes=-100', BIN.length - 100, BIN.length - 1],
    ['bytes=199990-999999', 199990, BIN.length - 1],
    ['BYTES = 5-5', 5, 5],
  ])('%s -> 206 with the right bytes and Content-Range', async (range, start, end) => {
    const r = await get('/data.bin', { HTTP_RANGE: range });
    expect(r.status).toBe(206);
    expect(r.header('Content-Range')).toBe(`bytes ${start}-${end}/${BIN.length}`);
    expect(r.header('Content-Length')).toBe(String(end - start + 1));
    expect(Buffer.compare(r.body, BIN.subarray(start, end + 1))).toBe(0);
  });

  it.each(['bytes=200000-', 'bytes=999999-1000000', 'bytes=-0'])('%s -> 416 with bytes */size', async (range) => {
    const r = await get('/data.bin', { HTTP_RANGE: range });
    expect(r.status).toBe(416);
    expect(r.header('Content-Range')).toBe(`bytes */${BIN.length}`);
  });

  it.each(['bytes=5-1', 'items=0-1', 'bytes=a-b', 'bytes=0-1,5-6', 'bytes=', 'bytes=-'])('%s -> the whole file (200)', async (range) => {
    const r = await get('/data.bin', { HTTP_RANGE: range });
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(BIN.length);
  });

  it('If-Range: the range only while the validator still matches', async () => {
    const first = await get('/data.bin');
    const etag = first.header('ETag')!;
    expect((await get('/data.bin', { HTTP_RANGE: 'bytes=0-0', HTTP_IF_RANGE: etag })).status).toBe(206);
    expect((await get('/data.bin', { HTTP_RANGE: 'bytes=0-0', HTTP_IF_RANGE: '"stale"' })).status).toBe(200);
    expect((await get('/data.bin', { HTTP_RANGE: 'bytes=0-0', HTTP_IF_RANGE: first.header('Last-Modified')! })).status).toBe(206);
    expect((await get('/data.bin', { HTTP_RANGE: 'bytes=0-0', HTTP_IF_RANGE: 'Thu, 01 Jan 1970 00:00:00 GMT' })).status).toBe(200);
  });

  it('an empty file has no satisfiable range', async () => {
    expect((await get('/empty.txt', { HTTP_RANGE: 'bytes=0-' })).status).toBe(416);
  });

  it('parseRange', () => {
    expect(parseRange('bytes=0-0', 1)).toEqual({ start: 0, end: 0 });
    expect(parseRange('bytes=-5', 3)).toEqual({ start: 0, end: 2 });
    expect(parseRange('bytes=3-', 3)).toBe('unsatisfiable');
  });
});

// Each: [what, PATH_INFO as the server hands it (decoded, latin-1 bytes), REQUEST_URI or undefined].
const NASTY: Array<[string, string, string | undefined]> = [
  ['dot-dot', '/../outside/secret.txt', '/../outside/secret.txt'],
  ['dot-dot after a directory', '/sub/../../outside/secret.txt', undefined],
  ['dot-dot alone', '/..', undefined],
  ['dot-dot to a sibling file', '/../public-sibling.txt', undefined],
  ['%2e%2e decoded by the server', '/../outside/secret.txt', '/%2e%2e/outside/secret.txt'],
  ['%2e%2e left encoded (a file literally named so)', '/%2e%2e/outside/secret.txt', '/%252e%252e/outside/secret.txt'],
  ['mixed .%2e', '/../outside/secret.txt', '/.%2e/outside/secret.txt'],
  ['encoded slash %2f', '/../outside/secret.txt', '/..%2foutside%2fsecret.txt'],
  ['encoded slash in a name', '/sub/style.css', '/sub%2Fstyle.css'],
  ['encoded backslash %5c', '/..\\outside\\secret.txt', '/..%5coutside%5csecret.txt'],
  ['backslashes', '/..\\..\\outside\\secret.txt', undefined],
  ['NUL before an extension', '/hello.txt\u0000.png', '/hello.txt%00.png'],
  ['NUL alone', '/\u0000', undefined],
  ['overlong UTF-8 dot (c0 ae)', '/\u00c0\u00ae\u00c0\u00ae/outside/secret.txt', '/%c0%ae%c0%ae/outside/secret.txt'],
  ['invalid UTF-8', '/\u00ff\u00fe', undefined],
  ['dot segment', '/./hello.txt', undefined],
  ['symlink to a file outside', '/link-outside', undefined],
  ['symlink to a directory outside', '/dirlink-outside/secret.txt', undefined],
  ['relative symlink to a sibling', '/link-sibling', undefined],
  ['absolute-looking double slash', '//etc/passwd', undefined],
  ['root-relative system path', '/etc/passwd', undefined],
  ['dotfile', '/.secret', undefined],
  ['dotfile through a directory', '/sub/../.secret', undefined],
  ['control character', '/hello.txt\n', undefined],
  ['deep dot-dots', `/${'../'.repeat(40)}etc/passwd`, undefined],
  ['Windows drive', '/C:/Windows/win.ini', undefined],
];

describe('staticFiles: traversal attempts never leave the root', () => {
  it.each(NASTY)('%s: %j', async (_what, pathInfo, uri) => {
    const vars: Record<string, string> = { PATH_INFO: pathInfo };
    if (uri !== undefined) vars.REQUEST_URI = uri;
    const alone = await call(staticFiles({ root }), vars, undefined, { noLint: pathInfo.includes('\u0000') });
    expect(alone.status).toBe(404);
    expect(alone.text).not.toContain('SECRET');
    expect(alone.text).not.toContain('root:');
    // With an app behind: the request goes on to it, never to a file.
    const through = await call(staticFiles(fallback, { root }), vars);
    expect(through.text).toMatch(/^app saw /);
  });

  it('safeSegments', () => {
    expect(safeSegments('/a/b//c/')).toEqual(['a', 'b', 'c']);
    expect(safeSegments('/a/../b')).toBeUndefined();
    expect(safeSegments('/.well-known/x')).toEqual(['.well-known', 'x']);
    expect(safeSegments('/.git/config')).toBeUndefined();
    expect(safeSegments('/.git/config', 'allow')).toEqual(['.git', 'config']);
  });
});
