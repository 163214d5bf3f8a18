// fromNodeListener and toNodeListener. In memory for the first: a (req, res) listener gets
// node:http's own IncomingMessage and ServerResponse, and what it writes comes back as TSGI's
// status, headers and chunks. toNodeListener runs on a real node:http server on loopback, and
// mounted in Express.

import { Buffer } from 'node:buffer';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromNodeListener, type NodeListener } from '../../src/adapters/node.js';
import { toNodeListener } from '../../src/adapters/to-node.js';
import { BodyQueue } from '../../src/runner/input.js';
import type { App, Environ } from '../../src/types.js';
import { deferred, makeRequest, memoryLogger, tick, until, within } from '../helpers/recording-sink.js';
import { ROOT } from '../helpers/spawn.js';

/** Runs `listener` for the environ `vars` (+ body); returns the request and what came out. */
async function run(listener: NodeListener, vars: Record<string, string> = {}, body?: string | string[]) {
  const r = makeRequest({ HTTP_HOST: 'example.test', ...vars }, body);
  const result = await within(r.run(fromNodeListener(listener)), 2000, 'the request');
  return { r, result };
}

describe('fromNodeListener: req', () => {
  it('is an http.IncomingMessage with method, url, headers, rawHeaders, httpVersion and the socket addresses', async () => {
    let req!: http.IncomingMessage;
    await run(
      (q, s) => {
        req = q;
        s.end();
      },
      {
        REQUEST_METHOD: 'DELETE',
        PATH_INFO: '/a b/caf\u00c3\u00a9',
        QUERY_STRING: 'x=1',
        SERVER_PROTOCOL: 'HTTP/1.0',
        REMOTE_ADDR: '192.0.2.7',
        REMOTE_PORT: '51000',
        SERVER_ADDR: '127.0.0.1',
        SERVER_PORT: '8080',
        HTTP_X_MULTI: 'one, two',
        HTTP_COOKIE: 'a=1; b=2',
        HTTPS: 'on',
      },
    );
    expect(req).toBeInstanceOf(http.IncomingMessage);
    expect(req.method).toBe('DELETE');
    expect(req.url).toBe('/a%20b/caf%C3%A9?x=1');
    expect(req.httpVersion).toBe('1.0');
    expect([req.httpVersionMajor, req.httpVersionMinor]).toEqual([1, 0]);
    expect(req.headers).toMatchObject({ host: 'example.test', 'x-multi': 'one, two', cookie: 'a=1; b=2' });
    expect(req.rawHeaders).toEqual(expect.arrayContaining(['Host', 'example.test', 'X-Multi', 'one, two']));
    expect(req.socket.remoteAddress).toBe('192.0.2.7');
    expect(req.socket.remotePort).toBe(51000);
    expect(req.socket.localPort).toBe(8080);
    expect((req.socket as unknown as { encrypted?: boolean }).encrypted).toBe(true);
  });

  it('no Host from the front end: one is made from SERVER_NAME and SERVER_PORT', async () => {
    let host: string | undefined;
    const r = makeRequest({ SERVER_NAME: 'backend', SERVER_PORT: '8000' });
    await r.run(fromNodeListener((q, s) => ((host = q.headers.host), s.end())));
    expect(host).toBe('backend:8000');
  });

  it('under a mount point: url is the path below it, baseUrl and originalUrl as Express has them', async () => {
    let req!: http.IncomingMessage & { baseUrl?: string; originalUrl?: string };
    await run((q, s) => ((req = q), s.end()), { SCRIPT_NAME: '/app', PATH_INFO: '/users/1', QUERY_STRING: 'v=2' });
    expect([req.url, req.baseUrl, req.originalUrl]).toEqual(['/users/1?v=2', '/app', '/app/users/1?v=2']);
  });

  it('fullPath: url is SCRIPT_NAME + PATH_INFO', async () => {
    let req!: http.IncomingMessage & { baseUrl?: string };
    const r = makeRequest({ SCRIPT_NAME: '/app', PATH_INFO: '/users/1', QUERY_STRING: 'v=2' });
    await r.run(fromNodeListener((q, s) => ((req = q), s.end()), { fullPath: true }));
    expect([req.url, req.baseUrl]).toEqual(['/app/users/1?v=2', undefined]);
  });

  it('the body streams from wsgi.input as the listener reads: data events, end, complete', async () => {
    const { r } = await run(
      (req, res) => {
        const parts: string[] = [];
        req.on('data', (c: Buffer) => parts.push(c.toString()));
        req.on('end', () => res.end(`${parts.join('|')} complete=${req.complete}`));
      },
      { REQUEST_METHOD: 'POST', CONTENT_TYPE: 'text/plain' },
      ['abc', 'def'],
    );
    expect(r.sink.text()).toBe('abc|def complete=true');
  });

  it('pull-based: a paused request reads no more of wsgi.input than its buffer holds', async () => {
    const r = makeRequest({ REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(1024 * 1024) }, undefined, { openBody: true });
    const input = new BodyQueue({ length: 1024 * 1024, highWaterMark: 64 * 1024 });
    r.environ['wsgi.input'] = input;
    const gotFirst = deferred<http.IncomingMessage>();
    const run = r.run(
      fromNodeListener((req, res) => {
        req.once('data', () => {
          req.pause();
          gotFirst.resolve(req);
        });
        req.on('end', () => res.end('done'));
      }),
    );
    let pushed = 0;
    while (pushed < 1024 * 1024 && input.push(Buffer.alloc(16 * 1024))) pushed += 16 * 1024;
    const req = await within(gotFirst.promise, 1000, 'the first data');
    await tick();
    // The queue told us to stop; the paused req holds at most its highWaterMark.
    expect(input.buffered).toBeGreaterThan(0);
    expect(req.readableLength).toBeLessThanOrEqual(req.readableHighWaterMark + 16 * 1024);
    req.resume();
    while (pushed < 1024 * 1024) {
      input.push(Buffer.alloc(16 * 1024));
      pushed += 16 * 1024;
      await tick();
    }
    await within(run, 2000, 'the run');
    expect(r.sink.text()).toBe('done');
  });
});

describe('fromNodeListener: res', () => {
  it('writeHead with a reason and an array of headers; Set-Cookie arrays become one header each', async () => {
    const { r } = await run((_q, res) => {
      res.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; Path=/']);
      res.setHeader('X-Later', 'yes');
      res.appendHeader('X-Dup', '1');
      res.appendHeader('X-Dup', '2');
      expect(res.getHeader('x-later')).toBe('yes');
      expect(res.getHeaders()).toMatchObject({ 'x-later': 'yes' });
      res.writeHead(201, 'Made It', ['Content-Type', 'text/plain']);
      expect(res.headersSent).toBe(true);
      res.end('created');
    });
    expect(r.sink.head.status).toBe('201 Made It');
    expect(r.sink.header('set-cookie')).toEqual(['a=1; Path=/', 'b=2; Path=/']);
    expect(r.sink.header('x-dup')).toEqual(['1', '2']);
    expect(r.sink.text()).toBe('created');
  });

  it('statusCode/statusMessage; a body ended at once goes out whole with node\'s Content-Length; no Date', async () => {
    const { r } = await run((_q, res) => {
      res.statusCode = 404;
      res.statusMessage = 'Nothing Here';
      res.end('gone');
    });
    expect(r.sink.head.status).toBe('404 Nothing Here');
    expect(r.sink.head.last).toBe(true);
    expect(r.sink.header('content-length')).toEqual(['4']);
    expect(r.sink.header('date')).toEqual([]);
  });

  it("node's chunked framing never reaches the body or the headers", async () => {
    const { r } = await run(async (_q, res) => {
      res.setHeader('Content-Type', 'text/plain');
      res.write('first ');
      await tick();
      res.write(Buffer.from('second '));
      await tick();
      res.end('last');
    });
    expect(r.sink.header('transfer-encoding')).toEqual([]);
    expect(r.sink.header('connection')).toEqual([]);
    expect(r.sink.text()).toBe('first second last');
    expect(r.sink.kinds.filter((k) => k === 'write').length).toBeGreaterThan(0);
  });

  it('a Transfer-Encoding: chunked set by the app, with trailers: unframed, trailers dropped', async () => {
    const { r } = await run((_q, res) => {
      res.writeHead(200, { 'Transfer-Encoding': 'chunked', Trailer: 'X-Sum', 'Content-Length': '999' });
      res.write('abc');
      res.addTrailers({ 'X-Sum': '3' });
      res.end('def');
    });
    expect(r.sink.text()).toBe('abcdef');
    // The app's 999 beside chunked is dropped; the body was whole, so the runner gave its length.
    expect(r.sink.header('content-length')).toEqual(['6']);
    expect(r.sink.header('trailer')).toEqual([]);
    expect(r.sink.kinds.at(-1)).toBe('end');
  });

  it('write() returns false while the front end is busy and drain follows (backpressure); finish then close', async () => {
    const r = makeRequest({}, undefined, { sink: { backpressure: true } });
    const events: string[] = [];
    const results: boolean[] = [];
    const full = deferred<void>();
    const run = r.run(
      fromNodeListener((_q, res) => {
        res.on('finish', () => events.push('finish'));
        res.on('close', () => events.push('close'));
        const big = Buffer.alloc(32 * 1024, 0x61);
        const writeMore = (): void => {
          for (;;) {
            if (results.length === 12) {
              res.end();
              return;
            }
            const ok = res.write(big);
            results.push(ok);
            if (!ok) {
              events.push('full');
              full.resolve();
              res.once('drain', () => {
                events.push('drain');
                writeMore();
              });
              return;
            }
          }
        };
        writeMore();
      }),
    );
    await within(full.promise, 1000, 'a full write');
    // The front end has taken nothing yet: res takes a little ahead, then write() says wait.
    expect(results.indexOf(false)).toBeGreaterThanOrEqual(0);
    expect(results.indexOf(false)).toBeLessThan(4);
    const before = results.length;
    for (let i = 0; i < 5; i++) await tick();
    expect(results.length).toBe(before);
    while (!r.sink.kinds.includes('end')) {
      r.sink.release();
      await tick();
    }
    await within(run, 2000, 'the run');
    expect(r.sink.collect().length).toBe(12 * 32 * 1024);
    expect(events.filter((e) => e === 'drain').length).toBeGreaterThan(1);
    expect(events.slice(-2)).toEqual(['finish', 'close']);
  });

  it('flushHeaders, 1xx interim responses and writeContinue do not end the head early', async () => {
    const { r } = await run(async (_q, res) => {
      res.writeContinue();
      res.writeEarlyHints({ link: '</style.css>; rel=preload' });
      res.setHeader('Content-Type', 'text/event-stream');
      res.flushHeaders();
      await tick();
      res.end('data: 1\n\n');
    });
    expect(r.sink.head.status).toBe('200 OK');
    expect(r.sink.header('content-type')).toEqual(['text/event-stream']);
    expect(r.sink.header('link')).toEqual([]);
    expect(r.sink.text()).toBe('data: 1\n\n');
  });

  it('HEAD and 204: no body', async () => {
    const head = await run((_q, res) => res.end('body'), { REQUEST_METHOD: 'HEAD' });
    expect(head.r.sink.collect().length).toBe(0);
    const none = await run((_q, res) => {
      res.statusCode = 204;
      res.end();
    });
    expect(none.r.sink.head.status).toBe('204 No Content');
  });

  it('a listener that throws, rejects or destroys the response before its head: 500', async () => {
    for (const listener of [
      () => {
        throw new Error('sync');
      },
      async () => {
        throw new Error('async');
      },
      (_q: http.IncomingMessage, res: http.ServerResponse) => void res.destroy(new Error('destroyed')),
      (_q: http.IncomingMessage, res: http.ServerResponse) => void res.destroy(),
    ] as NodeListener[]) {
      const { r } = await run(listener);
      expect(r.sink.head.status).toBe('500 Internal Server Error');
    }
  });

  it('a response destroyed after its head is aborted (incomplete on the wire)', async () => {
    const { r, result } = await run(async (_q, res) => {
      res.write('partial');
      await new Promise((resolve) => setTimeout(resolve, 5));
      res.destroy();
    });
    expect(r.sink.kinds).toEqual(['start', 'abort']);
    expect(result.outcome).toBe('error');
  });

  it('the client going away: req aborted, res closed without finish', async () => {
    const r = makeRequest({ REQUEST_METHOD: 'POST', CONTENT_LENGTH: '100' }, undefined, { openBody: true, releaseOnAbort: true });
    const events: string[] = [];
    const started = deferred();
    const run = r.run(
      fromNodeListener((req, res) => {
        req.on('aborted', () => events.push('req aborted'));
        req.on('close', () => events.push('req close'));
        res.on('finish', () => events.push('res finish'));
        res.on('close', () => events.push(`res close finished=${res.writableFinished}`));
        res.write('streaming');
        started.resolve();
      }),
    );
    await started.promise;
    await until(() => r.sink.kinds.includes('start'), 1000, 'the head');
    r.controller.abort();
    await within(run, 1000, 'the run');
    await until(() => events.includes('req close'), 1000, 'req close');
    expect(events).toContain('req aborted');
    expect(events).toContain('res close finished=false');
    expect(events).not.toContain('res finish');
  });

  it('an unread body is dropped after the response; res closes after finish', async () => {
    const events: string[] = [];
    const { r } = await run(
      (_q, res) => {
        res.on('close', () => events.push('close'));
        res.on('finish', () => events.push('finish'));
        res.end('ignored your body');
      },
      { REQUEST_METHOD: 'POST' },
      'x'.repeat(1000),
    );
    await until(() => events.length === 2, 1000, 'finish and close');
    expect(events).toEqual(['finish', 'close']);
    expect(r.sink.text()).toBe('ignored your body');
  });
});

describe('fromNodeListener: the response as one piece, and node:http\'s events', () => {
  it('writes in the same turn as end() go out as one start(..., last) with the whole length', async () => {
    const { r } = await run((_q, res) => {
      res.setHeader('Content-Type', 'text/plain');
      res.write('one ');
      res.write(Buffer.from('two '));
      res.end('three');
    });
    expect(r.sink.kinds).toEqual(['start', 'end']);
    expect(r.sink.head.last).toBe(true);
    expect(Buffer.from(r.sink.head.chunk!).toString()).toBe('one two three');
    expect(r.sink.header('content-length')).toEqual(['13']);
    expect(r.sink.header('transfer-encoding')).toEqual([]);
  });

  it('a whole response larger than one piece still goes out whole and in order', async () => {
    const parts = Array.from({ length: 5 }, (_, i) => Buffer.alloc(30 * 1024, 0x61 + i));
    const { r } = await run((_q, res) => {
      for (const p of parts) res.write(p);
      res.end();
    });
    expect(Buffer.from(r.sink.collect()).equals(Buffer.concat(parts))).toBe(true);
    expect(r.sink.kinds.at(-1)).toBe('end');
  });

  it('res.end(string) and its encodings: node\'s Content-Length matches the bytes sent', async () => {
    const utf8 = await run((_q, res) => res.end('caf\u00e9 \u2713'));
    expect(utf8.r.sink.header('content-length')).toEqual(['9']);
    expect(utf8.r.sink.text()).toBe('caf\u00e9 \u2713');
    const latin1 = await run((_q, res) => {
      res.write('caf\u00e9', 'latin1');
      res.end('6869', 'hex');
    });
    expect([...latin1.r.sink.collect()]).toEqual([0x63, 0x61, 0x66, 0xe9, 0x68, 0x69]);
  });

  it('header values: latin-1 as it is (one character a byte), whitespace around a value dropped', async () => {
    const { r } = await run((_q, res) => {
      res.setHeader('X-Latin', 'caf\u00e9');
      res.setHeader('X-Padded', '  v  ');
      res.setHeader('Connection', 'close');
      res.setHeader('Keep-Alive', 'timeout=5');
      res.end('ok');
    });
    expect(r.sink.header('x-latin')).toEqual(['caf\u00e9']);
    expect(r.sink.header('x-padded')).toEqual(['v']);
    expect(r.sink.header('connection')).toEqual([]);
    expect(r.sink.header('keep-alive')).toEqual([]);
  });

  it('HTTP/1.0: res.end(body) still gets its Content-Length', async () => {
    const { r } = await run((_q, res) => res.end('old'), { SERVER_PROTOCOL: 'HTTP/1.0' });
    expect(r.sink.header('content-length')).toEqual(['3']);
    expect(r.sink.text()).toBe('old');
  });

  it('after the response, as on node:http: prefinish, finish, then close; an unread GET ends and closes; res.socket let go', async () => {
    const events: string[] = [];
    let req!: http.IncomingMessage;
    let res!: http.ServerResponse;
    await run((q, s) => {
      req = q;
      res = s;
      q.on('end', () => events.push('req end'));
      q.on('close', () => events.push('req close'));
      s.on('prefinish', () => events.push('prefinish'));
      s.on('finish', () => events.push('finish'));
      s.on('close', () => events.push('close'));
      s.end('done');
    });
    await until(() => events.includes('req close') && events.includes('close'), 1000, 'the close events');
    expect(events.indexOf('prefinish')).toBeLessThan(events.indexOf('finish'));
    expect(events.indexOf('finish')).toBeLessThan(events.indexOf('close'));
    expect(events.indexOf('req end')).toBeLessThan(events.indexOf('req close'));
    expect(res.socket).toBeNull();
    expect(req.socket.remoteAddress).toBe('127.0.0.1');
    expect(res.headersSent).toBe(true);
    expect(res.writableFinished).toBe(true);
  });

  it('writeHead now, body later: the head waits for the body, and res.getHeaders() is node\'s', async () => {
    const { r } = await run(async (_q, res) => {
      res.writeHead(202, { 'X-Later': '1' });
      expect(res.headersSent).toBe(true);
      await tick();
      res.write('a');
      await tick();
      res.end('b');
    });
    expect(r.sink.head.status).toBe('202 Accepted');
    expect(r.sink.header('x-later')).toEqual(['1']);
    expect(r.sink.text()).toBe('ab');
  });

  it('the client going away after res.end() but before the front end took it all: close without finish', async () => {
    const r = makeRequest({}, undefined, { sink: { backpressure: true }, releaseOnAbort: true });
    let res!: http.ServerResponse;
    const events: string[] = [];
    const run = r.run(
      fromNodeListener((_q, s) => {
        res = s;
        s.on('finish', () => events.push('finish'));
        s.on('close', () => events.push('close'));
        for (let i = 0; i < 4; i++) s.write(Buffer.alloc(128 * 1024, 0x61));
        s.end();
      }),
    );
    await until(() => r.sink.kinds.includes('start'), 1000, 'the head');
    expect(res.writableEnded).toBe(true);
    r.controller.abort();
    const result = await within(run, 1000, 'the run');
    expect(result.outcome).toBe('aborted');
    await until(() => events.includes('close'), 1000, 'res close');
    for (let i = 0; i < 5; i++) await tick();
    expect(events).toEqual(['close']);
  });

  it('writeHead then destroy before any body: 500, nothing half-sent', async () => {
    const { r } = await run((_q, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.destroy();
    });
    expect(r.sink.head.status).toBe('500 Internal Server Error');
  });
});

describe('toNodeListener: a TSGI app on node:http, and mounted in Express', () => {
  const { log } = memoryLogger();
  let seenEnv: Environ | undefined;
  const app: App = async function* (environ, startResponse) {
    seenEnv = environ;
    const body = await environ['wsgi.input'].read();
    startResponse('200 OK', [
      ['Content-Type', 'text/plain'],
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2'],
    ]);
    yield `${environ.REQUEST_METHOD} ${environ.SCRIPT_NAME}|${environ.PATH_INFO}?${environ.QUERY_STRING} `;
    yield `${body.length} bytes`;
  };
  let server: http.Server;
  let port = 0;
  let express: { server: http.Server; port: number } | undefined;

  beforeAll(async () => {
    server = http.createServer(toNodeListener(app, { log }));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
    const { default: expressFn } = (await import(path.join(ROOT, 'node_modules/express/index.js'))) as { default: () => NodeListener & { use: (...a: unknown[]) => void } };
    const e = expressFn();
    e.use('/legacy', toNodeListener(app, { log }));
    const es = http.createServer(e);
    await new Promise<void>((r) => es.listen(0, '127.0.0.1', r));
    express = { server: es, port: (es.address() as AddressInfo).port };
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    if (express) await new Promise((r) => express!.server.close(r));
  });

  async function get(p: number, target: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`http://127.0.0.1:${p}${target}`, init);
  }

  it('GET: status, every Set-Cookie, the body streamed; environ from the request', async () => {
    const res = await get(port, '/caf%C3%A9?x=1');
    expect(res.status).toBe(200);
    expect(res.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    expect(await res.text()).toBe('GET |/caf\u00c3\u00a9?x=1 0 bytes');
    expect(seenEnv).toMatchObject({ REMOTE_ADDR: '127.0.0.1', SERVER_NAME: '127.0.0.1', SERVER_PORT: String(port), 'tsgi.protocol': 'http' });
  });

  it('POST: the body reaches wsgi.input', async () => {
    const res = await get(port, '/up', { method: 'POST', body: 'x'.repeat(100_000) });
    expect(await res.text()).toBe('POST |/up? 100000 bytes');
  });

  it("mounted with app.use('/legacy', ...): Express's mount path is SCRIPT_NAME", async () => {
    const res = await get(express!.port, '/legacy/page?y=2', { method: 'PUT', body: 'abc' });
    expect(await res.text()).toBe('PUT /legacy|/page?y=2 3 bytes');
  });
});
