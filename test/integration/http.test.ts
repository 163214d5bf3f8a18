// `bin/tsgi serve` over real HTTP on loopback, from the client's side: the environ an app sees,
// bodies both ways, streaming, keep-alive, HEAD, errors before and after headers, request
// smuggling and a graceful SIGTERM. Every wait is bounded; every process is stopped by its pid.

import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchange, parseResponse, RawConn, request, tryConnect } from '../helpers/http.js';
import { app, run, serve, type Server, sleep, stopAll, within } from '../helpers/spawn.js';

const MiB = 1024 * 1024;
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** The bytes download.mjs produces (byte i is (i * 7 + (i >>> 16)) & 0xff). */
function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >>> 16)) & 0xff;
  return b;
}

/** Deterministic pseudo-random bytes (xorshift32), so a shifted or repeated block is caught. */
function noise(n: number, seed = 0x9e3779b9): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

async function* pieces(data: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
}

/** Waits (bounded) until `file` exists: the fixture made it when the request reached the app. */
async function appStarted(file: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!fs.existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`timeout: the request did not reach the app (${file}) within ${ms} ms`);
    await sleep(20);
  }
}

let n = 0;
const marker = (): string => path.join(tmp, `started-${++n}`);

let tmp: string;
const servers: Record<string, Server> = {};
const FIXTURES = [
  'environ-echo.mjs',
  'upload-sha.mjs',
  'upload-echo.mjs',
  'download.mjs',
  'stream.mjs',
  'head.mjs',
  'set-cookies.mjs',
  'error-after-headers.mjs',
  'hello.mjs',
  'endless.mjs',
  'overlong.mjs',
  'hop-by-hop.mjs',
] as const;
const port = (f: (typeof FIXTURES)[number]): number => servers[f]!.port;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsgi-http-'));
  const started = await Promise.all(FIXTURES.map((f) => serve(app(f))));
  FIXTURES.forEach((f, i) => (servers[f] = started[i]!));
});

afterAll(async () => {
  const codes = await Promise.all(FIXTURES.map((f) => servers[f]?.stop('SIGTERM').catch((e: Error) => e.message)));
  await stopAll();
  expect(codes.filter((c) => c !== 0 && c !== undefined), 'fixture servers that did not exit 0 on SIGTERM').toEqual([]);
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function environOf(path: string, o: Parameters<typeof request>[1] = {}): Promise<Record<string, unknown>> {
  const res = await request(port('environ-echo.mjs'), { ...o, path });
  expect(res.status).toBe(200);
  return JSON.parse(res.body.toString('utf8')) as Record<string, unknown>;
}

describe('environ over HTTP', () => {
  it('carries the method, raw query, paths, server and client address', async () => {
    const env = await environOf('/some/where?a=1&b=%20x&c=caf%C3%A9', { method: 'DELETE' });
    expect(env).toMatchObject({
      REQUEST_METHOD: 'DELETE',
      SCRIPT_NAME: '',
      PATH_INFO: '/some/where',
      QUERY_STRING: 'a=1&b=%20x&c=caf%C3%A9',
      SERVER_NAME: '127.0.0.1',
      SERVER_PORT: String(port('environ-echo.mjs')),
      SERVER_PROTOCOL: 'HTTP/1.1',
      REMOTE_ADDR: '127.0.0.1',
      HTTP_HOST: `127.0.0.1:${port('environ-echo.mjs')}`,
      'wsgi.url_scheme': 'http',
      'wsgi.multiprocess': false,
      'wsgi.run_once': false,
      'tsgi.protocol': 'http',
    });
  });

  it('takes the path and query of an absolute-form request target', async () => {
    const c = await RawConn.open(port('environ-echo.mjs'));
    try {
      c.write('GET http://example.com/abs/path?q=1 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n');
      const env = JSON.parse((await c.readResponse()).body.toString()) as Record<string, string>;
      expect([env.PATH_INFO, env.QUERY_STRING, env.SERVER_NAME]).toEqual(['/abs/path', 'q=1', 'example.com']);
    } finally {
      c.destroy();
    }
  });

  it('percent-decodes PATH_INFO into a latin-1 byte string: /caf%C3%A9 is "/caf\\u00c3\\u00a9"', async () => {
    const env = await environOf('/caf%C3%A9');
    expect(env.PATH_INFO).toBe('/caf\u00c3\u00a9');
  });

  it('passes a header value byte for byte as a latin-1 string', async () => {
    const c = await RawConn.open(port('environ-echo.mjs'));
    try {
      c.write(Buffer.concat([Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nX-Utf8: caf'), Buffer.from([0xc3, 0xa9]), Buffer.from('\r\nConnection: close\r\n\r\n')]));
      const r = await c.readResponse();
      expect(r.status).toBe(200);
      expect((JSON.parse(r.body.toString('utf8')) as Record<string, string>).HTTP_X_UTF8).toBe('caf\u00c3\u00a9');
    } finally {
      c.destroy();
    }
  });

  it('joins a repeated header with ", " and repeated Cookie headers with "; "', async () => {
    const env = await environOf('/', { headers: { 'X-Rep': ['one', 'two', 'three'], Cookie: ['a=1', 'b=2'] } });
    expect(env.HTTP_X_REP).toBe('one, two, three');
    expect(env.HTTP_COOKIE).toBe('a=1; b=2');
  });

  it('never turns a Proxy header into HTTP_PROXY (httpoxy)', async () => {
    const env = await environOf('/', { headers: { Proxy: 'http://evil.example:8080' } });
    expect(env).not.toHaveProperty('HTTP_PROXY');
    expect(Object.values(env)).not.toContain('http://evil.example:8080');
  });

  it('drops a header whose name has an underscore, keeps its dashed twin', async () => {
    const env = await environOf('/', { headers: { X_Forwarded_User: 'spoofed', 'X-Forwarded-User': 'real' } });
    expect(env.HTTP_X_FORWARDED_USER).toBe('real');
    expect(Object.values(env)).not.toContain('spoofed');
  });

  it('sets CONTENT_TYPE and CONTENT_LENGTH without the HTTP_ prefix', async () => {
    const env = await environOf('/form', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'a=1&b=2',
    });
    expect(env.CONTENT_TYPE).toBe('application/x-www-form-urlencoded');
    expect(env.CONTENT_LENGTH).toBe('7');
    expect(env).not.toHaveProperty('HTTP_CONTENT_TYPE');
    expect(env).not.toHaveProperty('HTTP_CONTENT_LENGTH');
  });

  it('has no CONTENT_LENGTH for a chunked request body', async () => {
    const env = await environOf('/', { method: 'POST', body: pieces(Buffer.from('abcdef'), 2) });
    expect(env.CONTENT_LENGTH ?? '').toBe('');
    expect(env.HTTP_TRANSFER_ENCODING).toBe('chunked');
  });
});

describe('bodies', () => {
  it('receives a 10 MiB upload intact (sha256 and length)', async () => {
    const data = noise(10 * MiB);
    const res = await request(port('upload-sha.mjs'), { method: 'POST', path: '/up', body: data, timeoutMs: 20_000 });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toMatchObject({ sha256: sha256(data), length: data.length });
  });

  it('receives a chunked upload (no Content-Length) intact', async () => {
    const data = noise(3 * MiB + 12345, 7);
    const res = await request(port('upload-sha.mjs'), { method: 'PUT', path: '/up', body: pieces(data, 100_000), timeoutMs: 20_000 });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toMatchObject({ sha256: sha256(data), length: data.length });
  });

  it('streams a 4 MiB upload back while it arrives (echo)', async () => {
    const data = noise(4 * MiB, 99);
    const res = await request(port('upload-echo.mjs'), { method: 'POST', path: '/echo', body: data, timeoutMs: 20_000 });
    expect(res.status).toBe(200);
    expect(res.complete).toBe(true);
    expect(res.body.length).toBe(data.length);
    expect(sha256(res.body)).toBe(sha256(data));
  });

  it('sends a 10 MiB download made of 64 KiB chunks intact (chunked)', async () => {
    const n = 10 * MiB + 3;
    const res = await request(port('download.mjs'), { path: `/dl?n=${n}`, timeoutMs: 20_000 });
    expect(res.status).toBe(200);
    expect(res.complete).toBe(true);
    expect(res.header('transfer-encoding')).toEqual(['chunked']);
    expect(res.body.length).toBe(n);
    expect(sha256(res.body)).toBe(sha256(pattern(n)));
  });

  it('sends a download with the app\'s Content-Length intact', async () => {
    const n = 2 * MiB + 1;
    const res = await request(port('download.mjs'), { path: `/dl?n=${n}&length=1`, timeoutMs: 20_000 });
    expect(res.status).toBe(200);
    expect(res.header('content-length')).toEqual([String(n)]);
    expect(res.header('transfer-encoding')).toEqual([]);
    expect(sha256(res.body)).toBe(sha256(pattern(n)));
  });
});

describe('the connection', () => {
  it('streams: the first chunk arrives while the app is still waiting', async () => {
    const flag = path.join(tmp, 'go-on');
    const c = await RawConn.open(port('stream.mjs'));
    try {
      c.write(`GET /s?file=${encodeURIComponent(flag)} HTTP/1.1\r\nHost: x\r\n\r\n`);
      await c.waitFor('first\n', 5_000);
      await sleep(200);
      expect(c.buf.includes('rest')).toBe(false);
      fs.writeFileSync(flag, '');
      const r = await c.readResponse({ ms: 5_000 });
      expect(r.status).toBe(200);
      expect(r.header('transfer-encoding')).toEqual(['chunked']);
      expect(r.body.toString()).toBe('first\nrest\n');
    } finally {
      c.destroy();
    }
  });

  it('keeps the connection alive for a second request, and answers pipelined ones in order', async () => {
    const c = await RawConn.open(port('environ-echo.mjs'));
    try {
      c.write('GET /one HTTP/1.1\r\nHost: x\r\n\r\n');
      const a = await c.readResponse();
      expect(JSON.parse(a.body.toString()).PATH_INFO).toBe('/one');
      expect(c.closed).toBe(false);
      c.write('GET /two HTTP/1.1\r\nHost: x\r\n\r\nGET /three HTTP/1.1\r\nHost: x\r\n\r\n');
      const b = await c.readResponse();
      const d = await c.readResponse();
      expect(JSON.parse(b.body.toString()).PATH_INFO).toBe('/two');
      expect(JSON.parse(d.body.toString()).PATH_INFO).toBe('/three');
      expect(c.closed).toBe(false);
    } finally {
      c.destroy();
    }
  });

  it('answers HEAD with the headers and no body, even when the app yields one', async () => {
    const c = await RawConn.open(port('head.mjs'));
    try {
      // The GET right behind the HEAD would be garbled by any stray body byte.
      c.write('HEAD / HTTP/1.1\r\nHost: x\r\n\r\nHEAD /?aware=1 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n');
      const h = await c.readResponse({ head: true });
      expect(h.status).toBe(200);
      expect(h.header('x-method')).toEqual(['HEAD']);
      expect(h.header('content-length')).toEqual(['12']);
      const h2 = await c.readResponse({ head: true });
      expect(h2.header('x-method')).toEqual(['HEAD']);
      expect(h2.header('content-length')).toEqual(['12']);
      const g = await c.readResponse();
      expect(g.header('x-method')).toEqual(['GET']);
      expect(g.body.toString()).toBe('hello world\n');
      await sleep(100);
      expect(c.buf.length).toBe(0);
    } finally {
      c.destroy();
    }
  });

  it('serves the next request on a connection whose 1 MiB body the app never read', async () => {
    const c = await RawConn.open(port('hello.mjs'));
    try {
      c.write(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${MiB}\r\n\r\n`);
      const body = noise(MiB, 3);
      for (let at = 0; at < body.length; at += 64 * 1024) c.write(body.subarray(at, at + 64 * 1024));
      c.write('GET /after HTTP/1.1\r\nHost: x\r\n\r\n');
      const a = await c.readResponse({ ms: 5_000 });
      const b = await c.readResponse({ ms: 5_000 });
      expect([a.status, a.body.toString()]).toEqual([200, 'hello\n']);
      expect([b.status, b.body.toString()]).toEqual([200, 'hello\n']);
    } finally {
      c.destroy();
    }
  });

  it('answers HTTP/1.0 without chunked framing, delimited by the close', async () => {
    const { data, closedByServer } = await exchange(port('stream.mjs'), 'GET /s HTTP/1.0\r\n\r\n');
    expect(closedByServer).toBe(true);
    const r = parseResponse(data, { eof: true })!;
    expect(r.status).toBe(200);
    expect(r.header('transfer-encoding')).toEqual([]);
    expect(r.body.toString()).toBe('first\nrest\n');
  });

  it('when the client goes away mid-stream: tsgi.signal aborts, the app stops and close() runs once', async () => {
    const marker = path.join(tmp, 'endless-closed');
    const c = await RawConn.open(port('endless.mjs'));
    c.write(`GET /?file=${encodeURIComponent(marker)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await c.waitFor('tick\n', 5_000);
    c.destroy();
    const deadline = Date.now() + 5_000;
    while (!fs.existsSync(marker) && Date.now() < deadline) await sleep(20);
    await sleep(300); // a second close() would land here
    expect(fs.existsSync(marker) ? fs.readFileSync(marker, 'utf8') : 'close() never ran').toBe('closed aborted=true\n');
  });

  it('keeps several Set-Cookie headers apart', async () => {
    const res = await request(port('set-cookies.mjs'), { path: '/' });
    expect(res.header('set-cookie')).toEqual(['a=1; Path=/', 'b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT', 'c=3; HttpOnly']);
  });
});

describe('app errors', () => {
  it('answers an error before headers with a 500 that carries no details, and logs the stack', async () => {
    const s = await serve(app('error-before-headers.mjs'));
    const res = await request(s.port, { path: '/' });
    const again = await request(s.port, { path: '/' }); // the server survives it
    expect(await s.stop('SIGTERM')).toBe(0);
    for (const r of [res, again]) {
      expect(r.status).toBe(500);
      expect(r.complete).toBe(true);
      const text = r.body.toString();
      expect(text).not.toMatch(/secret-detail|hunter2/);
      expect(text).not.toMatch(/\n\s+at /);
      expect(text).not.toContain('error-before-headers.mjs');
    }
    const logged = s.stderrLines().join('\n');
    expect(logged).toContain('secret-detail-4f2a');
    expect(logged).toContain('error-before-headers.mjs'); // the stack, in the log only
  });

  it('cuts a chunked response short after an error past the headers: no last chunk', async () => {
    const { data, closedByServer } = await exchange(port('error-after-headers.mjs'), 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(closedByServer).toBe(true);
    const text = data.toString('latin1');
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).toMatch(/transfer-encoding: chunked/i);
    expect(text).toContain('partial-body');
    expect(text).not.toMatch(/\r\n0\r\n\r\n$/);
    expect(parseResponse(data, { eof: true })).toBeNull(); // incomplete as a message
  });

  it('cuts a Content-Length response short after an error past the headers', async () => {
    const res = await request(port('error-after-headers.mjs'), { path: '/?length=100' });
    expect(res.status).toBe(200);
    expect(res.header('content-length')).toEqual(['100']);
    expect(res.complete).toBe(false);
    expect(res.body.length).toBeLessThan(100);
  });
});

describe('app rules', () => {
  it('honours the app\'s Content-Length: the excess is not sent and the next response is intact', async () => {
    const c = await RawConn.open(port('overlong.mjs'));
    try {
      c.write('GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n');
      const a = await c.readResponse();
      const b = await c.readResponse();
      expect([a.status, a.header('content-length'), a.body.toString()]).toEqual([200, ['5'], 'hello']);
      expect([b.status, b.header('content-length'), b.body.toString()]).toEqual([200, ['5'], 'hello']);
      await sleep(100);
      expect(c.buf.toString()).toBe('');
    } finally {
      c.destroy();
    }
  });

  it('answers 500 when the app sets a hop-by-hop header (Connection)', async () => {
    const res = await request(port('hop-by-hop.mjs'), { path: '/' });
    expect(res.status).toBe(500);
    expect(res.body.toString()).not.toContain('should not be sent');
  });
});

describe('limits and binds', () => {
  it('--max-body-size answers 413, for a Content-Length body and for a chunked one', async () => {
    const s = await serve(app('upload-sha.mjs'), { args: ['--max-body-size', '1k'] });
    const small = await request(s.port, { method: 'POST', path: '/', body: Buffer.alloc(1024, 1) });
    expect(small.status).toBe(200);
    const big = await request(s.port, { method: 'POST', path: '/', body: Buffer.alloc(2048, 1) });
    expect(big.status).toBe(413);
    const chunked = await request(s.port, { method: 'POST', path: '/', body: pieces(Buffer.alloc(4096, 1), 512) });
    expect(chunked.status).toBe(413);
    expect(await s.stop()).toBe(0);
  });

  it('--bind unix:PATH serves HTTP on a Unix socket made with mode 0660', async () => {
    const sock = path.join(tmp, 'http.sock');
    const p = run(['serve', app('environ-echo.mjs'), '--bind', `unix:${sock}`]);
    const deadline = Date.now() + 10_000;
    let res: Awaited<ReturnType<typeof request>> | undefined;
    while (!res && Date.now() < deadline) {
      res = fs.existsSync(sock) ? await request(0, { socketPath: sock, path: '/u?x=1', timeoutMs: 2_000 }).catch(() => undefined) : undefined;
      if (!res) await sleep(50);
    }
    expect(res, `no answer on ${sock}; stderr: ${p.stderrLines().join('\n')}`).toBeDefined();
    const env = JSON.parse(res!.body.toString()) as Record<string, unknown>;
    expect([env.PATH_INFO, env.QUERY_STRING, env['tsgi.protocol']]).toEqual(['/u', 'x=1', 'http']);
    expect(fs.statSync(sock).mode & 0o777).toBe(0o660);
    expect(await p.stop()).toBe(0);
  });
});

describe('request smuggling', () => {
  it('refuses Content-Length together with Transfer-Encoding with 400 and closes', async () => {
    const { data, closedByServer } = await exchange(
      port('environ-echo.mjs'),
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n' +
        '0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    expect(closedByServer).toBe(true);
    const text = data.toString('latin1');
    expect(text).toMatch(/^HTTP\/1\.1 400 /);
    expect(text).not.toContain('smuggled');
    expect(text.match(/HTTP\/1\.1 /g)).toHaveLength(1);
  });

  it('refuses a Transfer-Encoding that does not end in chunked with 400', async () => {
    const { data } = await exchange(port('environ-echo.mjs'), 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n');
    expect(data.toString('latin1')).toMatch(/^HTTP\/1\.1 400 /);
  });
});

describe('stopping', () => {
  it('on SIGTERM finishes the request in flight, refuses new connections and exits 0', async () => {
    const s = await serve(app('slow.mjs'));
    const t0 = Date.now();
    const started = marker();
    const inFlight = request(s.port, { path: `/?s=1.5&started=${encodeURIComponent(started)}`, timeoutMs: 10_000 });
    await appStarted(started);
    process.kill(s.pid, 'SIGTERM');
    // New connections are refused soon after the signal, while the slow request still runs.
    let refused = '';
    for (let i = 0; i < 40 && refused !== 'ECONNREFUSED'; i++) {
      refused = await tryConnect(s.port);
      if (refused !== 'ECONNREFUSED') await sleep(25);
    }
    expect(refused).toBe('ECONNREFUSED');
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(res.complete).toBe(true);
    expect(res.body.toString()).toBe('done after 1.5 s\n');
    const exit = await s.waitExit(10_000);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
  });

  // Regression (fixed): a response that finishes during shutdown still says "Connection: keep-alive" (and
  // Keep-Alive: timeout=5), then the drain sweep (src/net/protocols.ts, PROTOCOLS.http.drain)
  // closes the connection under the client. A client that sends its next request on that
  // connection loses it to a reset (RFC 9112 §9.6: a server that will close says
  // "Connection: close"). Fix: once draining, answer with `res.shouldKeepAlive = false`, e.g. in
  // HttpSink.start (src/protocols/http/server.ts) `if (!server.listening) res.shouldKeepAlive = false`
  // before writeHead, or a draining flag set by drain() that handleRequest reads.
  it('a response that finishes during shutdown says Connection: close', async () => {
    const s = await serve(app('slow.mjs'));
    const c = await RawConn.open(s.port);
    try {
      const started = marker();
      c.write(`GET /?s=0.6&started=${encodeURIComponent(started)} HTTP/1.1\r\nHost: x\r\n\r\n`);
      await appStarted(started);
      process.kill(s.pid, 'SIGTERM');
      const r = await c.readResponse({ ms: 5_000 });
      expect(r.body.toString()).toBe('done after 0.6 s\n');
      expect(await s.waitExit()).toEqual({ code: 0, signal: null });
      expect(r.header('connection').map((v) => v.toLowerCase())).toEqual(['close']);
    } finally {
      c.destroy();
      await s.stop().catch(() => {});
    }
  });

  it('on SIGTERM gives up on a request that outlives --graceful-timeout and still exits 0', async () => {
    const s = await serve(app('slow.mjs'), { args: ['--graceful-timeout', '0.5'] });
    const started = marker();
    const inFlight = request(s.port, { path: `/?s=5&started=${encodeURIComponent(started)}`, timeoutMs: 8_000 }).then(
      (r) => `status ${r.status} complete=${r.complete}`,
      (e: Error) => `failed: ${e.message}`,
    );
    await appStarted(started);
    const t0 = Date.now();
    expect(await s.stop('SIGTERM', 5_000)).toBe(0);
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(await inFlight).not.toMatch(/complete=true/);
  });

  it('on SIGTERM closes idle keep-alive connections and exits 0 at once', async () => {
    const s = await serve(app('hello.mjs'));
    const c = await RawConn.open(s.port);
    try {
      c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      expect((await c.readResponse()).status).toBe(200);
      const t0 = Date.now();
      expect(await s.stop('SIGTERM', 4_000)).toBe(0);
      // Well under node:http's 5 s keep-alive timeout: the idle connection did not hold it up.
      expect(Date.now() - t0).toBeLessThan(3_000);
      await c.waitClose(2_000);
    } finally {
      c.destroy();
    }
  });

  it('on SIGINT exits 0', async () => {
    const s = await serve(app('hello.mjs'));
    expect((await request(s.port, { path: '/' })).body.toString()).toBe('hello\n');
    expect(await s.stop('SIGINT')).toBe(0);
  });

  it('no fixture server went down during the tests (errors, aborts and smuggling included)', async () => {
    const codes = await Promise.all(
      FIXTURES.map((f) => within(tryConnect(servers[f]!.port), 3_000, `connect to ${f}`)),
    );
    expect(codes.every((c) => c === 'connected')).toBe(true);
  });
});
