// fromFetch and toFetch, in memory: the Request a Fetch handler gets from an environ (URL, headers,
// streamed body, signal), the Response it returns as TSGI's status, headers and chunks, and a
// TSGI app answering Requests. The runner's side is a RecordingSink (test/helpers).

import { Buffer } from 'node:buffer';
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { fromFetch } from '../../src/adapters/fetch.js';
import { toFetch } from '../../src/adapters/to-fetch.js';
import { BodyQueue } from '../../src/runner/input.js';
import type { App, Environ } from '../../src/types.js';
import { deferred, makeRequest, memoryLogger, tick, until, within } from '../helpers/recording-sink.js';

const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

/** Runs `h` through fromFetch for the environ `vars` (+ body) and gives back the request it saw. */
async function seen(vars: Record<string, string>, body?: string | string[]): Promise<{ request: Request; env: unknown; r: ReturnType<typeof makeRequest> }> {
  let request!: Request;
  let env: unknown;
  const app = fromFetch(async (req, e) => {
    request = req;
    env = e;
    return new Response(req.body ? await req.text() : 'no body');
  });
  const r = makeRequest(vars, body);
  await r.run(app);
  return { request, env, r };
}

describe('fromFetch: the Request', () => {
  it('URL from environ: scheme, Host, PATH_INFO re-encoded from latin-1 bytes, query as it came', async () => {
    const { request } = await seen({ HTTP_HOST: 'shop.test:8443', HTTPS: 'on', PATH_INFO: '/caf\u00c3\u00a9/a b', QUERY_STRING: 'q=1&r=%C3%A9' });
    expect(request.url).toBe('https://shop.test:8443/caf%C3%A9/a%20b?q=1&r=%C3%A9');
  });

  it('no Host: SERVER_NAME and a non-default SERVER_PORT; an invalid Host is not used', async () => {
    expect((await seen({ SERVER_NAME: 'backend', SERVER_PORT: '8080' })).request.url).toBe('http://backend:8080/');
    expect((await seen({ SERVER_NAME: 'backend', SERVER_PORT: '80' })).request.url).toBe('http://backend/');
    expect((await seen({ HTTP_HOST: 'bad host/x', SERVER_NAME: 'backend', SERVER_PORT: '80' })).request.url).toBe('http://backend/');
    expect((await seen({ SERVER_NAME: '::1', SERVER_PORT: '8000' })).request.url).toBe('http://[::1]:8000/');
  });

  it('raw bytes in QUERY_STRING (space, non-ASCII, #) become %XX; a valid query is left alone', async () => {
    expect((await seen({ HTTP_HOST: 'h', QUERY_STRING: 'a=b c&d=\u00e9#x' })).request.url).toBe('http://h/?a=b%20c&d=%E9%23x');
    expect((await seen({ HTTP_HOST: 'h', QUERY_STRING: "a=%20&b='&c=[]" })).request.url).toBe("http://h/?a=%20&b=%27&c=[]");
  });

  it('the path below SCRIPT_NAME (the mount point), with the client spelling from REQUEST_URI when it names the same path', async () => {
    const mounted = await seen({ HTTP_HOST: 'h', SCRIPT_NAME: '/app', PATH_INFO: '/a/b', REQUEST_URI: '/app/a/b' });
    expect(mounted.request.url).toBe('http://h/a/b');
    // %2F decodes to '/': REQUEST_URI keeps what the client meant.
    const slash = await seen({ HTTP_HOST: 'h', PATH_INFO: '/files/a/b', REQUEST_URI: '/files/a%2Fb?x' });
    expect(slash.request.url).toBe('http://h/files/a%2Fb');
    // A rewrite changed the path: REQUEST_URI is the client's, PATH_INFO wins.
    const rewritten = await seen({ HTTP_HOST: 'h', PATH_INFO: '/index', REQUEST_URI: '/pretty/url' });
    expect(rewritten.request.url).toBe('http://h/index');
    const empty = await seen({ HTTP_HOST: 'h', SCRIPT_NAME: '/app', PATH_INFO: '' });
    expect(empty.request.url).toBe('http://h/');
  });

  it('fullPath: SCRIPT_NAME + PATH_INFO, the whole path', async () => {
    let url = '';
    const r = makeRequest({ HTTP_HOST: 'h', SCRIPT_NAME: '/app', PATH_INFO: '/a b', REQUEST_URI: '/app/a%20b', QUERY_STRING: 'q' });
    await r.run(fromFetch((req) => ((url = req.url), new Response('')), { fullPath: true }));
    expect(url).toBe('http://h/app/a%20b?q');
  });

  it('headers from HTTP_* and CONTENT_*; environ is the env argument', async () => {
    const { request, env } = await seen(
      { REQUEST_METHOD: 'PUT', HTTP_X_REQUEST_ID: 'abc', HTTP_ACCEPT_LANGUAGE: 'fr', HTTP_COOKIE: 'a=1; b=2', CONTENT_TYPE: 'text/plain', REMOTE_ADDR: '10.1.2.3' },
      'hi',
    );
    expect(request.method).toBe('PUT');
    expect(request.headers.get('x-request-id')).toBe('abc');
    expect(request.headers.get('accept-language')).toBe('fr');
    expect(request.headers.get('cookie')).toBe('a=1; b=2');
    expect(request.headers.get('content-type')).toBe('text/plain');
    expect(request.headers.get('content-length')).toBe('2');
    expect((env as Environ).REMOTE_ADDR).toBe('10.1.2.3');
  });

  it('GET has no body; POST with CONTENT_LENGTH 0 has an empty one', async () => {
    expect((await seen({})).r.sink.text()).toBe('no body');
    const post = await seen({ REQUEST_METHOD: 'POST', CONTENT_LENGTH: '0' });
    expect(post.request.body).toBeNull();
  });

  it('the body streams from wsgi.input: the handler reads the first chunk before the rest has arrived', async () => {
    const r = makeRequest({ REQUEST_METHOD: 'POST', CONTENT_LENGTH: '10' }, undefined, { openBody: true });
    const input = new BodyQueue({ length: 10 });
    r.environ['wsgi.input'] = input;
    const firstSeen = deferred<string>();
    const app = fromFetch(async (req) => {
      const reader = req.body!.getReader();
      const first = await reader.read();
      firstSeen.resolve(text(first.value!));
      let rest = '';
      for (let c = await reader.read(); !c.done; c = await reader.read()) rest += text(c.value);
      return new Response(`${text(first.value!)}|${rest}`);
    });
    const run = r.run(app);
    input.push(Buffer.from('hello'));
    expect(await within(firstSeen.promise, 1000, 'first chunk')).toBe('hello');
    input.push(Buffer.from('world'));
    await within(run, 1000, 'the run');
    expect(r.sink.text()).toBe('hello|world');
  });

  it('pull-based: wsgi.input is read only as the handler reads (a handler that does not read takes nothing)', async () => {
    let reads = 0;
    const chunks = [Buffer.from('a'), Buffer.from('b'), Buffer.from('c')];
    const input = {
      async *[Symbol.asyncIterator]() {
        for (const c of chunks) {
          reads++;
          yield c;
        }
      },
      read: async () => new Uint8Array(0),
      readline: async () => new Uint8Array(0),
      readlines: async () => [],
    };
    const r = makeRequest({ REQUEST_METHOD: 'POST', CONTENT_LENGTH: '3' });
    r.environ['wsgi.input'] = input;
    let reader!: ReadableStreamDefaultReader<Uint8Array>;
    const app = fromFetch(async (req) => {
      reader = req.body!.getReader();
      await reader.read();
      return new Response('ok');
    });
    await r.run(app);
    await tick();
    expect(reads).toBe(1);
  });

  it('the signal is tsgi.signal: aborted when the client goes away', async () => {
    const r = makeRequest({}, undefined, { releaseOnAbort: true });
    const got = deferred<AbortSignal>();
    const app = fromFetch(async (req) => {
      got.resolve(req.signal);
      return new Response(new ReadableStream({ pull: () => new Promise(() => {}) }));
    });
    const run = r.run(app);
    const signal = await got.promise;
    expect(signal.aborted).toBe(false);
    r.controller.abort();
    await within(run, 1000, 'the run to end');
    expect(signal.aborted).toBe(true);
  });

  it('an object with fetch() is called as a method (this is the object)', async () => {
    const r = makeRequest({ PATH_INFO: '/x' });
    await r.run(fromFetch({ name: 'obj', fetch(this: { name: string }, req: Request) { return new Response(`${this.name} ${new URL(req.url).pathname}`); } } as never));
    expect(r.sink.text()).toBe('obj /x');
  });

  it('CONNECT and TRACE, which a Request cannot carry, are answered 501', async () => {
    const r = makeRequest({ REQUEST_METHOD: 'TRACE' });
    await r.run(fromFetch(() => new Response('never')));
    expect(r.sink.head.status).toBe('501 Not Implemented');
  });
});

describe('fromFetch: the Response', () => {
  it('status with statusText, or the standard reason phrase', async () => {
    const r1 = makeRequest();
    await r1.run(fromFetch(() => new Response('x', { status: 418, statusText: 'Short And Stout' })));
    expect(r1.sink.head.status).toBe('418 Short And Stout');
    const r2 = makeRequest();
    await r2.run(fromFetch(() => new Response(null, { status: 404 })));
    expect(r2.sink.head.status).toBe('404 Not Found');
    const r3 = makeRequest();
    await r3.run(fromFetch(() => new Response(null, { status: 299 })));
    expect(r3.sink.head.status).toBe('299 Unknown');
  });

  it('every Set-Cookie kept, repeated headers as Headers joins them, hop-by-hop headers dropped', async () => {
    const r = makeRequest();
    await r.run(
      fromFetch(() => {
        const h = new Headers([['Content-Type', 'text/plain']]);
        h.append('Set-Cookie', 'a=1; Path=/');
        h.append('Set-Cookie', 'b=2, with comma; Path=/');
        h.append('Vary', 'Accept');
        h.append('Vary', 'Cookie');
        h.set('Transfer-Encoding', 'chunked');
        h.set('Connection', 'keep-alive');
        return new Response('body', { headers: h });
      }),
    );
    expect(r.sink.header('set-cookie')).toEqual(['a=1; Path=/', 'b=2, with comma; Path=/']);
    expect(r.sink.header('vary')).toEqual(['Accept, Cookie']);
    expect(r.sink.header('transfer-encoding')).toEqual([]);
    expect(r.sink.header('connection')).toEqual([]);
  });

  it('a whole body (a string) goes out in one piece with its length', async () => {
    const r = makeRequest();
    await r.run(fromFetch(() => new Response('Hello, world!')));
    expect(r.sink.kinds).toEqual(['start', 'end']);
    expect(r.sink.head.last).toBe(true);
    expect(r.sink.header('content-length')).toEqual(['13']);
  });

  it("the handler's Content-Length is honoured", async () => {
    const r = makeRequest();
    await r.run(fromFetch(() => new Response(new ReadableStream({ start: (c) => (c.enqueue(new TextEncoder().encode('12345')), c.close()) }), { headers: { 'Content-Length': '5' } })));
    expect(r.sink.header('content-length')).toEqual(['5']);
    expect(r.sink.text()).toBe('12345');
  });

  it('a streamed body is read one chunk at a time as the sink drains (backpressure)', async () => {
    let pulls = 0;
    const r = makeRequest({}, undefined, { sink: { backpressure: true } });
    const body = new ReadableStream<Uint8Array>(
      {
        pull(c) {
          pulls++;
          if (pulls > 5) c.close();
          else c.enqueue(new TextEncoder().encode(`chunk ${pulls}\n`));
        },
      },
      { highWaterMark: 0 },
    );
    const run = r.run(fromFetch(() => new Response(body)));
    await until(() => r.sink.waiting === 1, 1000, 'the first chunk at the sink');
    await tick();
    await tick();
    const before = pulls;
    expect(before).toBeLessThanOrEqual(2); // the chunk at the sink and at most one read ahead
    for (let i = 0; i < 10 && !r.sink.kinds.includes('end'); i++) {
      r.sink.release();
      await tick();
      await tick();
    }
    await within(run, 1000, 'the run');
    expect(r.sink.text()).toBe('chunk 1\nchunk 2\nchunk 3\nchunk 4\nchunk 5\n');
  });

  it('the client going away cancels the Response body stream; waitUntil work runs after the response', async () => {
    const cancelled = deferred<unknown>();
    const r = makeRequest({}, undefined, { releaseOnAbort: true });
    const timeline = r.sink.timeline;
    const run = r.run(
      fromFetch((_req, _env, ctx) => {
        ctx.waitUntil(new Promise<void>((resolve) => setTimeout(() => (timeline.push('waitUntil done'), resolve()), 20)));
        return new Response(
          new ReadableStream({
            start: (c) => c.enqueue(new TextEncoder().encode('first')),
            pull: () => new Promise(() => {}),
            cancel: (reason) => cancelled.resolve(reason),
          }),
        );
      }),
    );
    await until(() => r.sink.kinds.includes('start'), 1000, 'the first chunk');
    r.controller.abort();
    await within(cancelled.promise, 1000, 'cancel()');
    const result = await within(run, 1000, 'the run');
    expect(result.outcome).toBe('aborted');
    expect(timeline).toContain('waitUntil done');
  });

  it('waitUntil promises are awaited in close(), after end()', async () => {
    const r = makeRequest();
    await r.run(
      fromFetch((_req, _env, ctx) => {
        ctx.waitUntil(new Promise<void>((resolve) => setTimeout(() => (r.sink.timeline.push('background'), resolve()), 10)));
        return new Response('done');
      }),
    );
    expect(r.sink.timeline).toEqual(['start', 'end', 'background']);
  });

  it('a handler that throws, or returns no Response, is a 500; an error mid-body aborts', async () => {
    const r1 = makeRequest();
    await r1.run(fromFetch(() => Promise.reject(new Error('nope'))));
    expect(r1.sink.head.status).toBe('500 Internal Server Error');
    const r2 = makeRequest();
    await r2.run(fromFetch((() => 'not a response') as never));
    expect(r2.sink.head.status).toBe('500 Internal Server Error');
    const r3 = makeRequest();
    let n = 0;
    await r3.run(
      fromFetch(
        () =>
          new Response(
            new ReadableStream({
              pull: async (c) => {
                await new Promise((resolve) => setTimeout(resolve, 5));
                if (n++ === 0) c.enqueue(new TextEncoder().encode('partial'));
                else c.error(new Error('broken'));
              },
            }),
          ),
      ),
    );
    expect(r3.sink.kinds).toEqual(['start', 'abort']);
  });

  it('a Hono app: routing, params, JSON, c.env is environ', async () => {
    const app = new Hono<{ Bindings: Environ }>();
    app.get('/u/:id', (c) => c.json({ id: c.req.param('id'), remote: c.env.REMOTE_ADDR, q: c.req.query('q') }));
    const r = makeRequest({ PATH_INFO: '/u/7', QUERY_STRING: 'q=%C3%A9', REMOTE_ADDR: '192.0.2.9' });
    await r.run(fromFetch(app));
    expect(JSON.parse(r.sink.text())).toEqual({ id: '7', remote: '192.0.2.9', q: 'é' });
  });
});

describe('toFetch: a TSGI app answering Requests', () => {
  const { log } = memoryLogger();

  it('environ from the Request; status, headers (every Set-Cookie) and body back', async () => {
    let env!: Environ;
    const app: App = (environ, startResponse) => {
      env = environ;
      startResponse('201 Made It', [
        ['Content-Type', 'text/plain'],
        ['Set-Cookie', 'a=1'],
        ['Set-Cookie', 'b=2'],
      ]);
      return ['created'];
    };
    const res = await toFetch(app, { log })(
      new Request('https://example.test:8443/caf%C3%A9/x?q=%20&r=1', {
        method: 'POST',
        headers: { 'X-Thing': 'v', 'Content-Type': 'text/plain', 'Content-Length': '3' },
        body: 'abc',
      }),
      { REMOTE_ADDR: '10.0.0.7' },
    );
    expect(res.status).toBe(201);
    expect(res.statusText).toBe('Made It');
    expect(res.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    expect(await res.text()).toBe('created');
    expect(env).toMatchObject({
      REQUEST_METHOD: 'POST',
      SCRIPT_NAME: '',
      PATH_INFO: '/caf\u00c3\u00a9/x',
      QUERY_STRING: 'q=%20&r=1',
      SERVER_NAME: 'example.test',
      SERVER_PORT: '8443',
      HTTPS: 'on',
      HTTP_HOST: 'example.test:8443',
      HTTP_X_THING: 'v',
      CONTENT_TYPE: 'text/plain',
      CONTENT_LENGTH: '3',
      REMOTE_ADDR: '10.0.0.7',
      'wsgi.url_scheme': 'https',
      'tsgi.protocol': 'http',
    });
  });

  it('scriptName: the mount point goes to SCRIPT_NAME', async () => {
    let env!: Environ;
    const handler = toFetch(
      (environ, sr) => {
        env = environ;
        sr('200 OK', []);
        return [];
      },
      { log, scriptName: '/legacy' },
    );
    await handler(new Request('http://h/legacy/page'));
    expect([env.SCRIPT_NAME, env.PATH_INFO]).toEqual(['/legacy', '/page']);
  });

  it('a streamed request body of unknown length reaches wsgi.input whole', async () => {
    const app: App = async (environ, sr) => {
      const body = await environ['wsgi.input'].read();
      sr('200 OK', []);
      return [`${environ.CONTENT_LENGTH ?? 'none'} ${body.length} ${environ.HTTP_TRANSFER_ENCODING}`];
    };
    const parts = ['a'.repeat(100_000), 'b'.repeat(300_000), 'c'];
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (const p of parts) c.enqueue(new TextEncoder().encode(p));
        c.close();
      },
    });
    const res = await toFetch(app, { log })(new Request('http://h/', { method: 'POST', body: stream, duplex: 'half' } as RequestInit));
    expect(await res.text()).toBe('none 400001 chunked');
  });

  it('the response streams: the consumer has the first chunk before the app produced the second', async () => {
    const second = deferred();
    const app: App = async function* (_e, sr) {
      sr('200 OK', [['Content-Type', 'text/plain']]);
      yield 'one ';
      await second.promise;
      yield 'two';
    };
    const res = await toFetch(app, { log })(new Request('http://h/'));
    const reader = res.body!.getReader();
    expect(text((await within(reader.read(), 1000, 'first chunk')).value!)).toBe('one ');
    second.resolve();
    expect(text((await reader.read()).value!)).toBe('two');
    expect((await reader.read()).done).toBe(true);
  });

  it('backpressure: the app is not run ahead of the consumer', async () => {
    let produced = 0;
    const app: App = function* (_e, sr) {
      sr('200 OK', []);
      for (let i = 0; i < 100; i++) {
        produced++;
        yield `chunk ${i}\n`;
      }
    };
    const res = await toFetch(app, { log })(new Request('http://h/'));
    await tick();
    await tick();
    expect(produced).toBeLessThanOrEqual(3);
    expect((await res.text()).split('\n')).toHaveLength(101);
    expect(produced).toBe(100);
  });

  it('cancelling the response body is the client going away: tsgi.signal aborts, close() runs once', async () => {
    let signal!: AbortSignal;
    let closes = 0;
    const app: App = (environ, sr) => {
      signal = environ['tsgi.signal'];
      sr('200 OK', []);
      return Object.assign(
        (async function* () {
          for (;;) {
            yield 'tick\n';
            await new Promise((r) => setTimeout(r, 5));
          }
        })(),
        { close: () => void closes++ },
      );
    };
    const res = await toFetch(app, { log })(new Request('http://h/'));
    const reader = res.body!.getReader();
    await reader.read();
    await reader.cancel();
    await until(() => closes === 1, 1000, 'close()');
    expect(signal.aborted).toBe(true);
  });

  it('the request signal aborting is the client going away', async () => {
    const ac = new AbortController();
    let signal!: AbortSignal;
    const closed = deferred();
    const app: App = (environ, sr) => {
      signal = environ['tsgi.signal'];
      sr('200 OK', []);
      return Object.assign(
        (async function* () {
          yield 'x';
          await new Promise(() => {});
        })(),
        { close: () => closed.resolve() },
      );
    };
    const res = await toFetch(app, { log })(new Request('http://h/', { signal: ac.signal }));
    await res.body!.getReader().read();
    ac.abort();
    await within(closed.promise, 1000, 'close()');
    expect(signal.aborted).toBe(true);
  });

  it('an error before the headers is a 500; after them the body stream errors', async () => {
    const early = await toFetch(() => {
      throw new Error('early');
    }, { log })(new Request('http://h/'));
    expect(early.status).toBe(500);
    const late = await toFetch(async function* (_e, sr) {
      sr('200 OK', []);
      yield 'partial';
      throw new Error('late');
    }, { log })(new Request('http://h/'));
    expect(late.status).toBe(200);
    await expect(late.text()).rejects.toThrow();
  });

  it('HEAD and 204 have no body; a body over the limit is 413', async () => {
    const app: App = (environ, sr) => {
      sr(environ.PATH_INFO === '/none' ? '204 No Content' : '200 OK', [['Content-Type', 'text/plain']]);
      return ['hello'];
    };
    const f = toFetch(app, { log, limits: { maxBodyBytes: 4 } });
    const head = await f(new Request('http://h/', { method: 'HEAD' }));
    expect(head.body).toBeNull();
    const none = await f(new Request('http://h/none'));
    expect(none.status).toBe(204);
    expect(none.body).toBeNull();
    const big = await f(new Request('http://h/', { method: 'POST', body: 'too long', headers: { 'content-length': '8' } }));
    expect(big.status).toBe(413);
  });
});
