// `bin/tsgi cgi APP` as a web server runs it, with no web server: the request in the environment
// and on stdin, the response read off stdout (Go's TestBeChildCGIProcess, RFC 3875). Each test
// spawns one process with a clean environment and races its exit against a timer.

import { type ChildProcess, spawn, type StdioOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCgiHead } from '../../src/runner/cgi-head.js';
import { app, ROOT, TSGI, within } from '../helpers/spawn.js';
import { installSingleFile, writeWrapper } from '../servers/helpers/cgi-programs.js';

const ROUTES = app('cgi-routes.mjs');
const MiB = 1024 * 1024;

const tmpDirs: string[] = [];
function tempDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `tsgi-cgi-${prefix}-`));
  tmpDirs.push(d);
  return d;
}
const children = new Set<ChildProcess>();
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

/** What a web server puts in a CGI program's environment for `GET /cgi-bin/app.cgi/PATH`. */
function requestEnv(pathInfo: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_SOFTWARE: 'test-harness/1',
    SERVER_NAME: 'example.test',
    SERVER_PORT: '8080',
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_ADDR: '127.0.0.1',
    REMOTE_ADDR: '127.0.0.2',
    REMOTE_PORT: '40000',
    REQUEST_METHOD: 'GET',
    SCRIPT_NAME: '/cgi-bin/app.cgi',
    SCRIPT_FILENAME: '/var/www/cgi-bin/app.cgi',
    PATH_INFO: pathInfo,
    QUERY_STRING: '',
    REQUEST_URI: `/cgi-bin/app.cgi${pathInfo}`,
    HTTP_HOST: 'example.test:8080',
    ...extra,
  };
}

interface CgiRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
  /** stderr lines that parse as JSON objects (tsgi's log records). */
  logs: Array<Record<string, unknown>>;
  /** stderr lines that are not JSON. */
  otherStderr: string[];
}

interface CgiOptions {
  /** The program and its arguments (default: node bin/tsgi cgi ROUTES). */
  command?: string[];
  env: Record<string, string>;
  /** Bytes for stdin, closed after them; 'open': bytes written, stdin left open; a number: an fd. */
  stdin?: Buffer | string | { bytes: Buffer | string; keepOpen: true } | number;
  ms?: number;
  /** Called with the child as soon as it is spawned (to hang up early, send signals, ...). */
  during?: (child: ChildProcess, out: { bytes(): number }) => void | Promise<void>;
}

/** Runs one CGI request to the end (bounded) and gives back the exit and both outputs. */
async function cgi(o: CgiOptions): Promise<CgiRun> {
  const [cmd, ...args] = o.command ?? [process.execPath, TSGI, 'cgi', ROUTES];
  const stdio: StdioOptions = [typeof o.stdin === 'number' ? o.stdin : o.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'];
  // A clean environment: only PATH and the request, as a web server gives it.
  const child = spawn(cmd!, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...o.env }, stdio });
  children.add(child);
  const out: Buffer[] = [];
  let outBytes = 0;
  let err = '';
  child.stdout!.on('data', (c: Buffer) => {
    out.push(c);
    outBytes += c.length;
  });
  child.stdout!.on('error', () => {});
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  if (child.stdin) {
    child.stdin.on('error', () => {});
    if (typeof o.stdin === 'object' && !Buffer.isBuffer(o.stdin)) child.stdin.write(o.stdin.bytes);
    else child.stdin.end(o.stdin as Buffer | string);
  }
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  try {
    await o.during?.(child, { bytes: () => outBytes });
    const { code, signal } = await within(closed, o.ms ?? 10_000, `the CGI process (pid ${child.pid}) to exit`);
    const lines = err.split('\n').filter((l) => l !== '');
    const logs: Array<Record<string, unknown>> = [];
    const otherStderr: string[] = [];
    for (const l of lines) {
      try {
        logs.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        otherStderr.push(l);
      }
    }
    return { code, signal, stdout: Buffer.concat(out), stderr: err, logs, otherStderr };
  } finally {
    child.stdin?.destroy();
    children.delete(child);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

/** The response on stdout: parsed head and the body after it. */
function response(r: CgiRun): { status: number; reason: string; headers: Array<[string, string]>; header(n: string): string[]; body: Buffer } {
  const head = parseCgiHead(r.stdout);
  if (!head) throw new Error(`no complete CGI head on stdout: ${JSON.stringify(r.stdout.toString('latin1').slice(0, 300))}; stderr: ${r.stderr}`);
  return {
    ...head,
    header: (n) => head.headers.filter(([k]) => k.toLowerCase() === n.toLowerCase()).map(([, v]) => v),
    body: r.stdout.subarray(head.bodyOffset),
  };
}

function json(r: CgiRun): Record<string, unknown> {
  const res = response(r);
  expect(res.status, r.stderr).toBe(200);
  // The app's JSON is text, sent as UTF-8 (byte-string values are chars 0-255 in it).
  return JSON.parse(res.body.toString('utf8')) as Record<string, unknown>;
}

// =============================================================================================

describe('environ from the environment (RFC 3875 4.1)', () => {
  it('passes every meta-variable through, server-specific ones too; HTTP_PROXY is dropped (httpoxy)', async () => {
    const vars = requestEnv('/env/x', {
      QUERY_STRING: 'a=1&b=%20',
      AUTH_TYPE: 'Basic',
      REMOTE_USER: 'alice',
      REMOTE_IDENT: 'ident',
      REMOTE_HOST: 'client.test',
      PATH_TRANSLATED: '/var/www/html/env/x',
      CONTENT_TYPE: 'text/plain',
      HTTP_ACCEPT: '*/*',
      HTTP_COOKIE: 'a=1; b=2',
      HTTP_X_FORWARDED_FOR: '192.0.2.1',
      HTTP_PROXY: 'http://evil.test:3128',
      UNIQUE_ID: 'aGVsbG8',
      REDIRECT_STATUS: '200',
      CONTEXT_DOCUMENT_ROOT: '/var/www/cgi-bin/',
    });
    const env = json(await cgi({ env: vars }));
    const { HTTP_PROXY: _dropped, ...expected } = vars;
    expect(env).toMatchObject(expected);
    expect(env).not.toHaveProperty('HTTP_PROXY');
    expect(env.PATH).toBe(process.env.PATH ?? '/usr/bin:/bin');
  });

  it('non-UTF-8 bytes in PATH_INFO, QUERY_STRING and headers reach the app as latin-1 (one char per byte)', async () => {
    // Node's spawn() would encode the env as UTF-8: the shell's printf puts the raw bytes in.
    const script = 'PATH_INFO=$(printf "/env/caf\\351/\\303\\251/\\377") QUERY_STRING=$(printf "q=\\351") HTTP_X_RAW=$(printf "\\200\\201") exec "$0" "$@"';
    const r = await cgi({ command: ['/bin/sh', '-c', script, process.execPath, TSGI, 'cgi', ROUTES], env: requestEnv('/unused') });
    const env = json(r);
    // Byte 0xE9 (latin-1 é on the wire), then the UTF-8 bytes C3 A9, then 0xFF.
    expect(env.PATH_INFO).toBe('/env/caf\u00e9/\u00c3\u00a9/\u00ff');
    expect(env.QUERY_STRING).toBe('q=\u00e9');
    expect(env.HTTP_X_RAW).toBe('\u0080\u0081');
  });

  it('wsgi.run_once true, wsgi.multiprocess true, wsgi.multithread false, tsgi.protocol cgi', async () => {
    const env = json(await cgi({ env: requestEnv('/env/flags') }));
    expect(env).toMatchObject({
      'wsgi.run_once': true,
      'wsgi.multiprocess': true,
      'wsgi.multithread': false,
      'tsgi.protocol': 'cgi',
      'wsgi.url_scheme': 'http',
    });
  });

  it('HTTPS=on makes wsgi.url_scheme https; HTTPS=off keeps http', async () => {
    expect(json(await cgi({ env: requestEnv('/env/tls', { HTTPS: 'on', SERVER_PORT: '443' }) }))['wsgi.url_scheme']).toBe('https');
    expect(json(await cgi({ env: requestEnv('/env/tls', { HTTPS: 'off' }) }))['wsgi.url_scheme']).toBe('http');
  });

  it('missing SCRIPT_NAME and PATH_INFO are empty strings (PEP 3333); QUERY_STRING may be absent', async () => {
    const { SCRIPT_NAME: _s, PATH_INFO: _p, QUERY_STRING: _q, REQUEST_URI: _u, ...rest } = requestEnv('');
    // With no PATH_INFO the route is '' -> 404, which still shows the environ did not break.
    const r = response(await cgi({ command: [process.execPath, TSGI, 'cgi', app('environ-echo.mjs')], env: rest }));
    const env = JSON.parse(r.body.toString()) as Record<string, unknown>;
    expect(env.SCRIPT_NAME).toBe('');
    expect(env.PATH_INFO).toBe('');
    expect(env).not.toHaveProperty('QUERY_STRING');
  });

  // Regression (fixed): PATH_INFO was derived from REQUEST_URI when absent; behind Apache a local
  // redirect to the program itself then ran it with the first request's path (servers test too).
  it('no PATH_INFO: empty, never taken from REQUEST_URI (after a rewrite or a local redirect it is the client\'s URL)', async () => {
    // What Apache sends when /cgi-bin/app.cgi/redirect-local redirected locally to /cgi-bin/app.cgi.
    const { PATH_INFO: _p, ...env } = requestEnv('', { REQUEST_URI: '/cgi-bin/app.cgi/redirect-local?to=/cgi-bin/app.cgi', REDIRECT_URL: '/cgi-bin/app.cgi/redirect-local', REDIRECT_STATUS: '200' });
    const res = response(await cgi({ env }));
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body.toString())).toEqual({ error: 'no route', SCRIPT_NAME: '/cgi-bin/app.cgi', PATH_INFO: '' });
  });
});

describe('the request body from stdin (RFC 3875 4.2)', () => {
  // Regression (fixed in adapter.ts): stdin was an fs.ReadStream, which reads 64 KiB ahead and took
  // bytes past CONTENT_LENGTH off stdin (RFC 3875 4.2: the script MUST NOT read them).
  it('reads exactly CONTENT_LENGTH bytes: the bytes after them stay unread on stdin', async () => {
    // stdin is a file shared with the test: its offset afterwards is what the process read.
    const dir = tempDir('stdin');
    const file = path.join(dir, 'body');
    fs.writeFileSync(file, 'hello=world' + 'EXTRA-BYTES-NOT-FOR-THE-APP'.repeat(5000));
    const fd = fs.openSync(file, 'r');
    try {
      const r = await cgi({ env: requestEnv('/body', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '11', CONTENT_TYPE: 'application/x-www-form-urlencoded' }), stdin: fd });
      expect(json(r)).toEqual({ body: 'hello=world', after: 0, contentLength: '11' });
      const rest = Buffer.alloc(16);
      expect(fs.readSync(fd, rest, 0, 16, null)).toBe(16);
      expect(rest.toString()).toBe('EXTRA-BYTES-NOT-');
    } finally {
      fs.closeSync(fd);
    }
  });

  it('extra bytes on a pipe are ignored, and a stdin left open after CONTENT_LENGTH bytes does not stall the response', async () => {
    const r = await cgi({
      env: requestEnv('/body', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '6' }),
      stdin: { bytes: 'abcdefGHIJKL', keepOpen: true },
      ms: 5_000,
    });
    expect(json(r)).toEqual({ body: 'abcdef', after: 0, contentLength: '6' });
    expect(r.code).toBe(0);
  });

  // Regression (fixed): without CONTENT_LENGTH stdin was read to end of file, so an app reading
  // wsgi.input hung on a stdin the server kept open, or got bytes that were no body.
  it('no CONTENT_LENGTH: no body, even with bytes waiting on a stdin that stays open', async () => {
    const r = await cgi({ env: requestEnv('/body', { REQUEST_METHOD: 'POST' }), stdin: { bytes: 'not a body', keepOpen: true }, ms: 5_000 });
    expect(json(r)).toEqual({ body: '', after: 0, contentLength: null });
  });

  it('CONTENT_LENGTH empty counts as absent: no body', async () => {
    const r = await cgi({ env: requestEnv('/body', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '' }), stdin: { bytes: 'xyz', keepOpen: true }, ms: 5_000 });
    expect(json(r)).toMatchObject({ body: '', after: 0 });
  });

  it('no CONTENT_LENGTH with Transfer-Encoding: chunked (Apache mod_cgi streams such uploads): stdin is read to its end', async () => {
    const r = await cgi({ env: requestEnv('/body', { REQUEST_METHOD: 'POST', HTTP_TRANSFER_ENCODING: 'chunked' }), stdin: 'streamed body' });
    expect(json(r)).toEqual({ body: 'streamed body', after: 0, contentLength: null });
  });

  it('stdin ending before CONTENT_LENGTH: 400, the app never sees a short body as whole', async () => {
    const r = await cgi({ env: requestEnv('/upload', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '100' }), stdin: 'only 16 bytes..!' });
    const res = response(r);
    expect(res.status).toBe(400);
    expect(res.body.toString()).toMatch(/ended after 16 of 100 bytes/);
  });

  it('a CONTENT_LENGTH that is not a number: 400, stdin not read', async () => {
    const res = response(await cgi({ env: requestEnv('/upload', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '12abc' }), stdin: { bytes: 'x', keepOpen: true }, ms: 5_000 }));
    expect(res.status).toBe(400);
    expect(res.body.toString()).toMatch(/CONTENT_LENGTH/);
  });

  it('10 MiB in through stdin and 10 MiB out through stdout, intact', async () => {
    const body = Buffer.alloc(10 * MiB);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31 + (i >>> 12)) & 0xff;
    const up = json(await cgi({ env: requestEnv('/upload', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(body.length) }), stdin: body, ms: 20_000 }));
    expect(up).toMatchObject({ length: body.length, sha256: createHash('sha256').update(body).digest('hex') });

    const n = 10 * MiB;
    const down = response(await cgi({ env: requestEnv('/download', { QUERY_STRING: `n=${n}` }), ms: 20_000 }));
    expect(down.body.length).toBe(n);
    const expected = Buffer.alloc(n);
    for (let i = 0; i < n; i++) expected[i] = (i * 7 + (i >>> 16)) & 0xff;
    expect(down.body.equals(expected)).toBe(true);
  });
});

describe('the response on stdout (RFC 3875 6)', () => {
  it('document response: Status line, the app\'s headers in order, Content-Length added, the body; exit 0', async () => {
    const r = await cgi({ command: [process.execPath, TSGI, 'cgi', app('hello.mjs')], env: requestEnv('/') });
    expect(r.stdout.toString('latin1')).toBe('Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('the Status: line keeps the code and reason (418 I\'m a teapot, 201 Created, 299 Custom Reason)', async () => {
    for (const s of ["418 I'm a teapot", '201 Created', '299 Custom Reason']) {
      const r = await cgi({ env: requestEnv('/status', { QUERY_STRING: `s=${encodeURIComponent(s)}` }) });
      expect(r.stdout.toString('latin1').split('\r\n')[0]).toBe(`Status: ${s}`);
    }
  });

  it('several Set-Cookie headers stay separate lines', async () => {
    const res = response(await cgi({ env: requestEnv('/cookies') }));
    expect(res.header('set-cookie')).toEqual(['a=1; Path=/', 'b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT', 'c=3; HttpOnly']);
  });

  it('HEAD: the status and headers (Content-Length kept), no body', async () => {
    const r = await cgi({ env: requestEnv('/head', { REQUEST_METHOD: 'HEAD' }) });
    expect(r.stdout.toString('latin1')).toBe('Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nX-Method: HEAD\r\n\r\n');
  });

  it('local redirect (6.2.2): 200 with only Location: /path and no body is written as just that Location line', async () => {
    const r = await cgi({ env: requestEnv('/redirect-local', { QUERY_STRING: 'to=/static.txt%3Fa%3D1' }) });
    expect(r.stdout.toString('latin1')).toBe('Location: /static.txt?a=1\r\n\r\n');
    expect(r.code).toBe(0);
  });

  // Regression (fixed): `Location: //host/x` (a network-path reference) was sent as a local redirect.
  it('not local redirects: "//host/path" (a network-path reference), or a Location beside other headers', async () => {
    const r = await cgi({ env: requestEnv('/redirect-local', { QUERY_STRING: 'to=//evil.test/x' }) });
    expect(r.stdout.toString('latin1')).toBe('Status: 200 OK\r\nLocation: //evil.test/x\r\nContent-Length: 0\r\n\r\n');
  });

  it('client redirect (6.2.4): Status 302 with the absolute Location and the body', async () => {
    const r = await cgi({ env: requestEnv('/redirect-client', { QUERY_STRING: 'to=https://example.test/next' }) });
    const res = response(r);
    expect(r.stdout.toString('latin1').startsWith('Status: 302 Found\r\nLocation: https://example.test/next\r\n')).toBe(true);
    expect(res.status).toBe(302);
    expect(res.body.toString()).toBe('see https://example.test/next\n');
  });

  it('NPH with --nph: an HTTP status line with SERVER_PROTOCOL instead of Status:', async () => {
    const r = await cgi({ command: [process.execPath, TSGI, 'cgi', '--nph', app('hello.mjs')], env: requestEnv('/') });
    expect(r.stdout.toString('latin1')).toBe('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n');
  });

  it('NPH from the script name (nph-*), on the fast path; HTTP/1.0 when SERVER_PROTOCOL is absent', async () => {
    const r = await cgi({ command: [process.execPath, TSGI, 'cgi', app('hello.mjs')], env: requestEnv('/', { SCRIPT_NAME: '/cgi-bin/nph-hello.cgi' }) });
    expect(r.stdout.toString('latin1')).toBe('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n');
    const { SERVER_PROTOCOL: _p, ...noProto } = requestEnv('/', { SCRIPT_NAME: '/cgi-bin/nph-hello.cgi' });
    const r10 = await cgi({ command: [process.execPath, TSGI, 'cgi', app('hello.mjs')], env: noProto });
    expect(r10.stdout.toString('latin1').split('\r\n')[0]).toBe('HTTP/1.0 200 OK');
    // Not nph-: a directory named nph-x does not count.
    const notNph = await cgi({ command: [process.execPath, TSGI, 'cgi', app('hello.mjs')], env: requestEnv('/', { SCRIPT_NAME: '/nph-dir/app.cgi' }) });
    expect(notNph.stdout.toString('latin1').split('\r\n')[0]).toBe('Status: 200 OK');
  });
});

describe('errors, hang-ups and logs', () => {
  it('an error before the headers: a proper Status: 500 response without details, one JSON error line on stderr', async () => {
    const r = await cgi({ env: requestEnv('/error-before') });
    const res = response(r);
    expect(res.status).toBe(500);
    expect(res.header('content-length')).toEqual([String(res.body.length)]);
    expect(res.body.toString()).toBe('Internal Server Error\n');
    expect(r.stdout.toString()).not.toContain('secret-detail');
    expect(r.otherStderr).toEqual([]);
    const errors = r.logs.filter((l) => l.level === 'error');
    expect(errors).toHaveLength(1);
    expect(JSON.stringify(errors[0])).toContain('secret-detail-4f2a');
    expect(r.code).toBe(0);
  });

  it('an error after the headers: the head and the partial body, an error line, exit status 1', async () => {
    const r = await cgi({ env: requestEnv('/error-after') });
    const res = response(r);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('partial-body\n');
    expect(r.logs.filter((l) => l.level === 'error')).toHaveLength(1);
    expect(r.code).toBe(1);
  });

  // Regression (fixed): the sink waited for a 'drain' that never comes on a broken pipe; the
  // process ended with exit code 13 (unsettled top-level await) and close() never ran.
  it('stdout closed by the reader mid-response (EPIPE): the app is stopped, close() runs once, exit 0, no stack trace', async () => {
    const mark = tempDir('mark');
    const r = await cgi({
      env: requestEnv('/forever', { QUERY_STRING: `mark=${mark}&s=15` }),
      ms: 10_000,
      async during(child, out) {
        await within(
          new Promise<void>((resolve) => {
            const check = () => (out.bytes() >= 256 * 1024 ? resolve() : setTimeout(check, 10));
            check();
          }),
          5_000,
          'the first 256 KiB',
        );
        child.stdout!.destroy();
      },
    });
    expect(r.code).toBe(0);
    expect(r.signal).toBeNull();
    expect(r.otherStderr).toEqual([]);
    expect(r.logs.filter((l) => l.level === 'error' || l.level === 'fatal')).toEqual([]);
    const marks = fs.readdirSync(mark);
    expect(marks).toHaveLength(1);
    expect(JSON.parse(fs.readFileSync(path.join(mark, marks[0]!), 'utf8'))).toMatchObject({ aborted: true, closed: 1 });
  });

  // Regression (fixed): SIGTERM killed the process at once (Node's default): close() never ran.
  it('SIGTERM from the web server mid-response (lighttpd on a hang-up): tsgi.signal aborts, close() runs, the process exits', async () => {
    const mark = tempDir('mark');
    const r = await cgi({
      env: requestEnv('/forever', { QUERY_STRING: `mark=${mark}&s=15` }),
      ms: 10_000,
      async during(child, out) {
        await within(
          new Promise<void>((resolve) => {
            const check = () => (out.bytes() >= 64 * 1024 ? resolve() : setTimeout(check, 10));
            check();
          }),
          5_000,
          'the first chunk',
        );
        child.kill('SIGTERM');
      },
    });
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    const marks = fs.readdirSync(mark);
    expect(marks).toHaveLength(1);
    expect(JSON.parse(fs.readFileSync(path.join(mark, marks[0]!), 'utf8'))).toMatchObject({ aborted: true, closed: 1 });
  });

  it('SIGTERM while an app that ignores tsgi.signal is still working: the process is gone within the 2.5 s grace, exit 1', async () => {
    const started = path.join(tempDir('slow'), 'started');
    const t0 = Date.now();
    let signalledAt = 0;
    const r = await cgi({
      command: [process.execPath, TSGI, 'cgi', app('slow.mjs')],
      env: requestEnv('/', { QUERY_STRING: `s=20&started=${encodeURIComponent(started)}` }),
      ms: 8_000,
      async during(child) {
        await within(
          new Promise<void>((resolve) => {
            const check = () => (fs.existsSync(started) ? resolve() : setTimeout(check, 10));
            check();
          }),
          5_000,
          'the app to start',
        );
        signalledAt = Date.now();
        child.kill('SIGTERM');
      },
    });
    expect(r.signal).toBeNull();
    expect(r.code).toBe(1);
    expect(r.stdout.length).toBe(0);
    const took = Date.now() - signalledAt;
    expect(took).toBeGreaterThanOrEqual(2_000);
    expect(took).toBeLessThan(4_500);
    expect(Date.now() - t0).toBeLessThan(8_000);
  });

  it('a missing app file: a 500 CGI response on stdout, the reason on stderr, exit 2', async () => {
    const r = await cgi({ command: [process.execPath, TSGI, 'cgi', app('no-such-app.mjs')], env: requestEnv('/') });
    const res = response(r);
    expect(res.status).toBe(500);
    expect(res.body.toString()).toBe('Internal Server Error\n');
    expect(r.stderr).toMatch(/^tsgi: app file not found: .*no-such-app\.mjs\n$/);
    expect(r.code).toBe(2);
  });

  it('a missing app file under an nph-* name: the 500 is an NPH response (HTTP status line)', async () => {
    const r = await cgi({ command: [process.execPath, TSGI, 'cgi', app('no-such-app.mjs')], env: requestEnv('/', { SCRIPT_NAME: '/cgi-bin/nph-app.cgi' }) });
    expect(r.stdout.toString('latin1')).toBe('HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 22\r\n\r\nInternal Server Error\n');
  });

  it('an app module that fails to load: a 500 CGI response, the reason on stderr, exit 2', async () => {
    const dir = tempDir('broken');
    const broken = path.join(dir, 'broken.mjs');
    fs.writeFileSync(broken, 'export default function (environ, startResponse) {\n  return [;\n}\n');
    const r = await cgi({ command: [process.execPath, TSGI, 'cgi', broken], env: requestEnv('/') });
    expect(response(r).status).toBe(500);
    expect(r.stderr).toMatch(/cannot load .*broken\.mjs/);
    expect(r.code).toBe(2);
  });

  // BUG (src/cli/cgi.ts, not the fast path): with an option (`cgi --nph APP`, --debug,
  // --log-level) bin/tsgi goes through commander and src/cli/cgi.ts, which loads the app itself:
  // a load failure is a usage error (one line on stderr, exit 2) with nothing on stdout, so the
  // web server answers "premature end of script headers" instead of tsgi's 500. Fix: make
  // src/cli/cgi.ts call `runCgiCommand(appSpec, opts)` from protocols/cgi/entry.js (it takes the
  // options now), like the fast path does.
  it('with an option (--nph), a missing app file is still a 500 CGI response on stdout', async () => {
    const r = await cgi({ command: [process.execPath, TSGI, 'cgi', '--nph', app('no-such-app.mjs')], env: requestEnv('/') });
    expect(r.stdout.toString('latin1')).toMatch(/^HTTP\/1\.1 500 Internal Server Error\r\n/);
  });

  // BUG (src/cli/cgi.ts, same path): the app module's top-level console.log lands on stdout,
  // before the response head, because stdout is only kept for the response once runCgi() starts.
  // Same fix: runCgiCommand() does keepStdoutForTheResponse() before loading the app.
  it('with an option (--nph), the app module\'s top-level console.log does not reach stdout', async () => {
    const dir = tempDir('noisy-top');
    const noisy = path.join(dir, 'noisy-top.mjs');
    fs.writeFileSync(noisy, "console.log('top-level noise');\nexport { default } from '" + app('hello.mjs') + "';\n");
    const r = await cgi({ command: [process.execPath, TSGI, 'cgi', '--nph', noisy], env: requestEnv('/') });
    expect(r.stdout.toString('latin1').startsWith('HTTP/1.1 200 OK\r\n')).toBe(true);
  });

  it('on the fast path (`cgi APP`), the app module\'s top-level console.log goes to stderr', async () => {
    const dir = tempDir('noisy-top');
    const noisy = path.join(dir, 'noisy-top.mjs');
    fs.writeFileSync(noisy, "console.log('top-level noise');\nexport { default } from '" + app('hello.mjs') + "';\n");
    const r = await cgi({ command: [process.execPath, TSGI, 'cgi', noisy], env: requestEnv('/') });
    expect(r.stdout.toString('latin1')).toBe('Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n');
    expect(r.stderr).toContain('top-level noise');
  });

  // Regression (fixed): console.log from the app went to stdout, into the response.
  it('logs only on stderr: wsgi.errors, console.log and console.error from the app never reach stdout', async () => {
    const r = await cgi({ env: requestEnv('/noisy') });
    expect(r.stdout.toString('latin1')).toBe('Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nquiet body\n');
    expect(r.stderr).toContain('from console.log');
    expect(r.stderr).toContain('from console.error');
    expect(r.logs.find((l) => l.msg === 'from wsgi.errors')).toMatchObject({ level: 'warn', stream: 'wsgi.errors' });
  });
});

describe('the two ways to write the CGI program (examples/cgi/)', () => {
  it('app.cgi: the shell wrapper execs bin/tsgi cgi APP, the process answers as tsgi', async () => {
    const dir = tempDir('wrapper');
    const wrapper = writeWrapper(dir, 'app.cgi', { root: ROOT, app: ROUTES });
    expect(fs.readFileSync(wrapper, 'utf8')).toMatch(/^#!\/bin\/sh\n[\s\S]*\nexec \S+\/bin\/tsgi cgi \S+cgi-routes\.mjs\n$/);
    const env = json(await cgi({ command: [wrapper], env: requestEnv('/env/wrapped', { SCRIPT_NAME: '/cgi-bin/app.cgi' }) }));
    expect(env).toMatchObject({ PATH_INFO: '/env/wrapped', 'wsgi.run_once': true, 'tsgi.protocol': 'cgi' });
  });

  it('app.cgi with examples/cgi/app.mjs, the app the example wrapper names', async () => {
    const dir = tempDir('wrapper');
    const wrapper = writeWrapper(dir, 'app.cgi', { root: ROOT, app: path.join(ROOT, 'examples/cgi/app.mjs') });
    const get = response(await cgi({ command: [wrapper], env: requestEnv('/hi', { QUERY_STRING: 'x=1' }) }));
    expect(get.body.toString()).toMatch(/^hello from \/cgi-bin\/app\.cgi\nPATH_INFO "\/hi", QUERY_STRING "x=1"\nserved over cgi/);
    const old = await cgi({ command: [wrapper], env: requestEnv('/old') });
    expect(old.stdout.toString()).toBe('Location: /index.html\r\n\r\n');
    const post = response(await cgi({ command: [wrapper], env: requestEnv('/', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '5' }), stdin: 'hello' }));
    expect(post.body.toString()).toBe('you sent 5 bytes: hello\n');
  });

  it('single-file.cgi: #!/usr/bin/env node, the app inside, tsgi/cgi loaded from node_modules beside it', async () => {
    const dir = tempDir('single');
    const file = installSingleFile(dir, 'single-file.cgi', ROOT);
    expect(fs.readFileSync(file, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
    const r = await cgi({
      command: [file],
      env: requestEnv('/some/path', { SCRIPT_NAME: '/cgi-bin/single-file.cgi', REQUEST_METHOD: 'POST', CONTENT_LENGTH: '7', QUERY_STRING: 'q=1' }),
      stdin: 'a=b&c=d',
    });
    expect(json(r)).toEqual({
      hello: 'from single-file.cgi',
      method: 'POST',
      scriptName: '/cgi-bin/single-file.cgi',
      pathInfo: '/some/path',
      query: 'q=1',
      body: 'a=b&c=d',
      runOnce: true,
      protocol: 'cgi',
    });
    expect(r.code).toBe(0);
  });

  it('single-file.cgi without tsgi installed beside it: a 500 and the reason on stderr', async () => {
    const dir = tempDir('single-missing');
    const file = path.join(dir, 'single-file.cgi');
    fs.copyFileSync(path.join(ROOT, 'examples/cgi/single-file.cgi'), file);
    fs.chmodSync(file, 0o755);
    const r = await cgi({ command: [file], env: requestEnv('/') });
    expect(response(r).status).toBe(500);
    expect(r.stderr).toMatch(/cannot load tsgi\/cgi/);
  });
});
