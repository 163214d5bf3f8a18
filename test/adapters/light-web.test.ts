// The lightweight Request and Response (src/adapters/light-web.ts) against the real ones: what
// they expose is what a real Request or Response made from the same things exposes (fast-check
// over generated requests and responses), `instanceof` holds, whatever is not answered directly
// is answered by a real object built on demand, and overrideGlobalObjects() makes the global
// Response the lightweight one that fromFetch sends without a stream.

import { Buffer } from 'node:buffer';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { Hono } from 'hono';
import { deleteCookie, setCookie } from 'hono/cookie';
import { stream } from 'hono/streaming';
import { afterEach, describe, expect, it } from 'vitest';
import { fromFetch } from '../../src/adapters/fetch.js';
import { adaptExport } from '../../src/adapters/index.js';
import {
  globalsOverridden,
  isLightRequest,
  LightResponse,
  lightRequest,
  NativeRequest,
  NativeResponse,
  normalizeUrl,
  overrideGlobalObjects,
  restoreGlobalObjects,
} from '../../src/adapters/light-web.js';
import { toFetch } from '../../src/adapters/to-fetch.js';
import { requestUrl } from '../../src/adapters/url.js';
import { BodyQueue } from '../../src/runner/input.js';
import { deferred, makeRequest, memoryLogger, tick, within } from '../helpers/recording-sink.js';

const Light = LightResponse as unknown as typeof Response;
const run = { numRuns: 200, interruptAfterTimeLimit: 10_000 };

/** What a thunk does: its value, or the class of what it threw. */
function outcome<T>(f: () => T): { ok: true; value: T } | { ok: false; error: string } {
  try {
    return { ok: true, value: f() };
  } catch (err) {
    return { ok: false, error: (err as Error).constructor.name };
  }
}

/** An environ for a request (makeRequest's), and the lightweight Request for it. */
function requestFor(vars: Record<string, string>, body?: string | Uint8Array | Array<string | Uint8Array>) {
  const r = makeRequest(vars, body);
  return { ...r, request: lightRequest(r.environ) };
}

afterEach(() => restoreGlobalObjects());

// ---------------------------------------------------------------------------------------------
// The request

describe('the lightweight Request', () => {
  it('is a Request: instanceof, toString tag, constructor, a real one from new Request(it)', async () => {
    const { request } = requestFor({ REQUEST_METHOD: 'PUT', HTTP_HOST: 'h', PATH_INFO: '/a', HTTP_X_ONE: '1', CONTENT_TYPE: 'text/plain' }, 'hello');
    expect(request).toBeInstanceOf(Request);
    expect(Object.prototype.toString.call(request)).toBe('[object Request]');
    expect(request.constructor).toBe(NativeRequest);
    expect(isLightRequest(request)).toBe(true);
    const copy = new Request(request);
    expect(isLightRequest(copy)).toBe(false);
    expect([copy.method, copy.url, copy.headers.get('x-one')]).toEqual(['PUT', 'http://h/a', '1']);
    expect(await copy.text()).toBe('hello');
  });

  it('url, method and headers as a real Request made from environ has them, over generated requests', () => {
    const label = fc.stringMatching(/^[a-zA-Z0-9-]{1,6}$/);
    const environ = fc.record({
      REQUEST_METHOD: fc.constantFrom('GET', 'get', 'Post', 'PATCH', 'patch', 'DELETE', 'options', 'PROPFIND', 'head'),
      HTTP_HOST: fc.oneof(
        fc.tuple(fc.array(label, { minLength: 1, maxLength: 3 }), fc.constantFrom('', ':80', ':443', ':8080', ':080', ':65535')).map(([l, p]) => l.join('.') + p),
        fc.constantFrom('127.0.0.1', '127.1', '[::1]:8000', 'EXAMPLE.com', 'a.b.123', 'xn--bcher-kva.example', '10.0.0.256'),
      ),
      HTTPS: fc.constantFrom('on', 'off'),
      PATH_INFO: fc.array(fc.string({ unit: fc.constantFrom('a', 'Z', '0', ' ', '%', 'é', '|', '.', '..', '\\', '[', '^', '{', '`', "'", '"', '~', ';', '@'), maxLength: 5 }), { maxLength: 4 }).map((s) => '/' + s.join('/')),
      QUERY_STRING: fc.string({ unit: fc.constantFrom('a', '=', '&', ' ', '%', '2', 'e', "'", '"', '<', '`', '{', '|', '?', '/', '.', 'é', '#'), maxLength: 10 }),
      HTTP_X_THING: fc.stringMatching(/^[!-~]([ !-~]{0,10}[!-~])?$/),
      HTTP_COOKIE: fc.constantFrom('a=1; b=2', 'x=y'),
    });
    fc.assert(
      fc.property(environ, (vars) => {
        const { environ: env, request } = requestFor(vars);
        const real = outcome(() => new NativeRequest(requestUrl(env), { method: vars.REQUEST_METHOD, headers: request.headers }));
        if (!real.ok) {
          // The URL the real one refuses: building the real one (anything past url) throws the same.
          expect(outcome(() => request.cache)).toEqual(real);
          return;
        }
        expect(request.url).toBe(real.value.url);
        expect(request.method).toBe(real.value.method);
        expect([...request.headers]).toEqual([...real.value.headers]);
        // And the real one behind it (built now, for cache) agrees.
        expect(request.cache).toBe('default');
        expect([request.url, request.method]).toEqual([real.value.url, real.value.method]);
      }),
      run,
    );
  });

  it('normalizeUrl is the URL parser: the string itself only where the parser leaves it alone', () => {
    const host = fc.oneof(
      fc.stringMatching(/^[a-zA-Z0-9.-]{1,12}$/),
      fc.constantFrom('127.1', '0x7f.0.0.1', '1.2.3.4', '999.1.1.1', 'a.1', 'a.1a', 'a.0x1', 'xn--a', 'xn--bcher-kva', '[::1]', 'a..b', 'a.'),
    );
    const port = fc.constantFrom('', ':', ':0', ':80', ':443', ':8080', ':08080', ':65536', ':99999', ':1');
    const part = fc.oneof(
      fc.string({ unit: fc.constantFrom('a', '/', '.', '%2e', '%2E', '%', '\\', ' ', '|', '[', ']', '^', '{', '}', '`', "'", '"', '<', '>', '~', '@', ':', 'é', '\t', '?'), maxLength: 10 }),
      // What the parser mostly leaves alone, and dot segments.
      fc.string({ unit: fc.constantFrom('a', '/', '.', '..', '%2e', '%2E', '%', '|', '~', '@', ':', "'"), maxLength: 10 }),
    );
    const plainHost = fc.oneof(host, fc.stringMatching(/^[a-z0-9-]{1,5}(\.[a-z0-9-]{1,5}){0,2}$/));
    fc.assert(
      fc.property(fc.constantFrom('http', 'https'), plainHost, port, part, fc.option(part), (scheme, h, p, path, query) => {
        const url = `${scheme}://${h}${p}/${path}${query === null ? '' : '?' + query}`;
        let expected: string;
        try {
          expected = new URL(url).href;
        } catch {
          expected = url;
        }
        expect(normalizeUrl(url)).toBe(expected);
      }),
      { numRuns: 2000 },
    );
  });

  it('text(), json(), arrayBuffer(), bytes() read wsgi.input whole; then the body is used, as a real one', async () => {
    const payload = '{"a":1,"é":"\u2603"}';
    for (const method of ['text', 'json', 'arrayBuffer', 'bytes'] as const) {
      const { request, environ } = requestFor({ REQUEST_METHOD: 'POST', CONTENT_TYPE: 'application/json' }, ['{"a":1,', '"é":"\u2603"}']);
      const real = new NativeRequest('http://h/', { method: 'POST', body: payload });
      expect(request.bodyUsed).toBe(false);
      const got = await (request as unknown as Record<string, () => Promise<unknown>>)[method]!();
      const want = await (real as unknown as Record<string, () => Promise<unknown>>)[method]!();
      expect(got).toEqual(want);
      expect(request.bodyUsed).toBe(real.bodyUsed);
      await expect(request.text()).rejects.toBeInstanceOf(TypeError);
      await expect(real.text()).rejects.toBeInstanceOf(TypeError);
      expect(() => request.clone()).toThrow(TypeError);
      expect(() => new Request(request)).toThrow(TypeError);
      expect(request.body?.locked).toBe(true);
      expect(await environ['wsgi.input'].read()).toHaveLength(0);
    }
  });

  it('json() of a body that is not JSON is a SyntaxError; a UTF-8 BOM is skipped, bad bytes are U+FFFD', async () => {
    await expect(requestFor({ REQUEST_METHOD: 'POST' }, 'nope').request.json()).rejects.toBeInstanceOf(SyntaxError);
    const bytes = new Uint8Array([0xef, 0xbb, 0xbf, 0x68, 0x69, 0xff]);
    const want = await new NativeRequest('http://h/', { method: 'POST', body: bytes }).text();
    expect(await requestFor({ REQUEST_METHOD: 'POST' }, bytes).request.text()).toBe(want);
  });

  it('no body (GET, HEAD, CONTENT_LENGTH 0): body null, text() empty every time, bodyUsed false', async () => {
    for (const vars of [{}, { REQUEST_METHOD: 'HEAD' }, { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '0' }] as Array<Record<string, string>>) {
      const { request } = requestFor(vars);
      expect(request.body).toBeNull();
      expect(await request.text()).toBe('');
      expect(await request.text()).toBe('');
      expect(new Uint8Array(await request.arrayBuffer())).toHaveLength(0);
      expect(request.bodyUsed).toBe(false);
      await expect(request.json()).rejects.toBeInstanceOf(SyntaxError);
    }
  });

  it('body: a stream read from wsgi.input as it is read (backpressure), the real one building on demand', async () => {
    let reads = 0;
    const chunks = [Buffer.from('abc'), Buffer.from('def'), Buffer.from('ghi')];
    const r = makeRequest({ REQUEST_METHOD: 'POST', CONTENT_LENGTH: '9' });
    r.environ['wsgi.input'] = {
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
    const request = lightRequest(r.environ);
    const reader = request.body!.getReader();
    expect(request.bodyUsed).toBe(false);
    expect(Buffer.from((await within(reader.read(), 1000, 'first chunk')).value!).toString()).toBe('abc');
    await tick();
    await tick();
    expect(reads).toBe(1); // nothing read ahead of the reader
    expect(Buffer.from((await reader.read()).value!).toString()).toBe('def');
    expect(reads).toBe(2);
    expect(Buffer.from((await reader.read()).value!).toString()).toBe('ghi');
    expect((await reader.read()).done).toBe(true);
    expect(request.bodyUsed).toBe(true);
    await expect(request.text()).rejects.toBeInstanceOf(TypeError);
  });

  it('the body streams as it arrives: the first chunk is read before the rest has come', async () => {
    const r = makeRequest({ REQUEST_METHOD: 'POST', CONTENT_LENGTH: '6' }, undefined, { openBody: true });
    const input = new BodyQueue({ length: 6 });
    r.environ['wsgi.input'] = input;
    const reader = lightRequest(r.environ).body!.getReader();
    const first = reader.read();
    input.push(Buffer.from('abc'));
    expect(Buffer.from((await within(first, 1000, 'first chunk')).value!).toString()).toBe('abc');
    input.push(Buffer.from('def'));
    input.end();
    expect(Buffer.from((await reader.read()).value!).toString()).toBe('def');
    expect((await reader.read()).done).toBe(true);
  });

  it('formData(): urlencoded and multipart, through the real one', async () => {
    const urlencoded = requestFor({ REQUEST_METHOD: 'POST', CONTENT_TYPE: 'application/x-www-form-urlencoded' }, 'a=1&b=%C3%A9&a=2');
    const form = await urlencoded.request.formData();
    expect([form.getAll('a'), form.get('b')]).toEqual([['1', '2'], 'é']);
    const fd = new FormData();
    fd.append('field', 'value');
    fd.append('file', new Blob(['file body'], { type: 'text/plain' }), 'f.txt');
    const encoded = new NativeRequest('http://h/', { method: 'POST', body: fd });
    const body = new Uint8Array(await encoded.arrayBuffer());
    const multipart = requestFor({ REQUEST_METHOD: 'POST', CONTENT_TYPE: encoded.headers.get('content-type')! }, body);
    const parsed = await multipart.request.formData();
    expect(parsed.get('field')).toBe('value');
    const file = parsed.get('file') as File;
    expect([file.name, file.type, await file.text()]).toEqual(['f.txt', 'text/plain', 'file body']);
  });

  it('clone() tees the body; the other Request members are the real one’s', async () => {
    const { request } = requestFor({ REQUEST_METHOD: 'POST', HTTP_HOST: 'h' }, 'twice');
    const copy = request.clone();
    expect(await copy.text()).toBe('twice');
    expect(await request.text()).toBe('twice');
    const real = new NativeRequest('http://h/', { method: 'POST', body: 'x' });
    const { request: other } = requestFor({ REQUEST_METHOD: 'POST', HTTP_HOST: 'h' }, 'x');
    for (const k of ['cache', 'credentials', 'destination', 'integrity', 'keepalive', 'mode', 'redirect', 'referrer', 'referrerPolicy', 'duplex'] as const) {
      expect([k, other[k]]).toEqual([k, real[k]]);
    }
  });

  it('signal is tsgi.signal: it aborts when the client goes away', () => {
    const { request, environ, controller } = requestFor({});
    expect(request.signal).toBe(environ['tsgi.signal']);
    expect(request.signal.aborted).toBe(false);
    controller.abort();
    expect(request.signal.aborted).toBe(true);
  });

  it('util.inspect shows it without building the real one', () => {
    const { request } = requestFor({ HTTP_HOST: 'h', PATH_INFO: '/x' });
    expect(inspect(request)).toContain('Request (lightweight)');
    expect(inspect(request)).toContain('http://h/x');
  });
});

// ---------------------------------------------------------------------------------------------
// The response

type BodyKind = 'null' | 'undefined' | 'string' | 'empty' | 'bytes' | 'buffer' | 'arraybuffer' | 'stream' | 'blob' | 'params' | 'dataview';

function makeBody(kind: BodyKind, text: string): ConstructorParameters<typeof Response>[0] {
  const bytes = new TextEncoder().encode(text);
  switch (kind) {
    case 'null':
      return null;
    case 'undefined':
      return undefined;
    case 'string':
      return text;
    case 'empty':
      return '';
    case 'bytes':
      return bytes;
    case 'buffer':
      return Buffer.from(text);
    case 'arraybuffer':
      return bytes.buffer;
    case 'dataview':
      return new DataView(bytes.buffer);
    case 'stream':
      return new ReadableStream({ start: (c) => (c.enqueue(bytes), c.close()) });
    case 'blob':
      return new Blob([text], { type: 'text/x-blob' });
    case 'params':
      return new URLSearchParams({ q: text });
  }
}

const headerName = fc.constantFrom('x-a', 'X-B', 'content-type', 'Content-Type', 'set-cookie', 'vary', 'bad name', 'content-length');
const headerValue = fc.constantFrom('1', ' padded ', 'text/html', 'a=1; Path=/', 'b=2, c', 'bad\nvalue', 'é');
const responseCase = fc.record({
  kind: fc.constantFrom<BodyKind>('null', 'undefined', 'string', 'empty', 'bytes', 'buffer', 'arraybuffer', 'stream', 'blob', 'params', 'dataview'),
  text: fc.string({ maxLength: 20 }),
  init: fc.option(
    fc.record(
      {
        status: fc.constantFrom<unknown>(200, 201, 204, 205, 304, 404, 599, 600, 199, 101, '201', 200.5, -1, undefined),
        statusText: fc.constantFrom<unknown>('', 'Fine', 'Tab\there', 'bad\nphrase', 'caf\u00e9', '\u2603', undefined),
        headers: fc.oneof(
          fc.array(fc.tuple(headerName, headerValue), { maxLength: 4 }),
          fc.dictionary(headerName, headerValue, { maxKeys: 3 }),
          fc.array(fc.tuple(headerName, headerValue), { maxLength: 4 }).map((l) => {
            const h = new Headers();
            for (const [n, v] of l) {
              try {
                h.append(n, v);
              } catch {
                // not a valid pair: left out
              }
            }
            return h;
          }),
          fc.constant(undefined),
        ),
      },
      { requiredKeys: [] },
    ),
    { nil: undefined },
  ),
});

/** Everything a Response exposes, read the same way from either. */
async function describeResponse(r: Response) {
  const before = {
    status: r.status,
    statusText: r.statusText,
    ok: r.ok,
    type: r.type,
    url: r.url,
    redirected: r.redirected,
    bodyUsed: r.bodyUsed,
    headers: [...r.headers],
    cookies: r.headers.getSetCookie(),
    hasBody: r.body !== null,
  };
  const copy = r.clone();
  const text = await r.text();
  return { ...before, text, cloneText: await copy.text(), usedAfter: r.bodyUsed, again: (await r.text().then(() => 'read', (e: Error) => e.constructor.name)) };
}

describe('the lightweight Response', () => {
  it('exposes what the real one does, or throws the same, over generated bodies and inits', async () => {
    await fc.assert(
      fc.asyncProperty(responseCase, async (c) => {
        const init = c.init as ResponseInit | undefined;
        const real = outcome(() => new NativeResponse(makeBody(c.kind, c.text), init));
        const light = outcome(() => new Light(makeBody(c.kind, c.text), init));
        if (!real.ok || !light.ok) {
          expect(light).toEqual(real);
          return;
        }
        expect(light.value).toBeInstanceOf(Response);
        // What fromFetch would send for it, before anything built the real one.
        const parts = LightResponse.parts(light.value);
        if (parts) {
          expect(parts.status).toBe(real.value.status);
          const sent = parts.headers ? [...parts.headers] : parts.contentType === null ? [] : [['content-type', parts.contentType]];
          expect(sent).toEqual([...real.value.headers]);
          const body = parts.body === null ? '' : typeof parts.body === 'string' ? parts.body : Buffer.from(parts.body).toString('utf8');
          expect(body).toBe(await real.value.clone().text());
        }
        expect(await describeResponse(light.value)).toEqual(await describeResponse(real.value));
      }),
      run,
    );
  });

  it('only string, bytes and null bodies stay lightweight; parts() is undefined once the real one is built', () => {
    expect(LightResponse.parts(new Light('x'))).toBeDefined();
    expect(LightResponse.parts(new Light(new Uint8Array(1)))).toBeDefined();
    expect(LightResponse.parts(new Light(null, { status: 204 }))).toBeDefined();
    expect(LightResponse.parts(new Light(new Blob(['x'])))).toBeUndefined();
    expect(LightResponse.parts(new Light(new ReadableStream()))).toBeUndefined();
    expect(LightResponse.parts(new NativeResponse('x'))).toBeUndefined();
    const r = new Light('x');
    void r.body;
    expect(LightResponse.parts(r)).toBeUndefined();
  });

  it('headers changed before the body is read are the real one’s; a Content-Type taken out stays out', async () => {
    const r = new Light('hello', { headers: { 'x-a': '1' } });
    r.headers.set('x-b', '2');
    r.headers.append('set-cookie', 'a=1');
    r.headers.append('set-cookie', 'b=2');
    expect(LightResponse.parts(r)!.headers!.getSetCookie()).toEqual(['a=1', 'b=2']);
    const copy = r.clone();
    expect([...copy.headers]).toEqual([...r.headers]);
    expect(copy.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    expect(copy.headers.get('x-b')).toBe('2');
    const plain = new Light('x');
    plain.headers.delete('content-type');
    expect(plain.headers.has('content-type')).toBe(false);
    expect((await plain.blob()).type).toBe('');
    expect(plain.headers.has('content-type')).toBe(false);
  });

  it('Response.json() as the real one: body, Content-Type, status, headers, and its TypeErrors', async () => {
    const cases: Array<[unknown, ResponseInit | undefined]> = [
      [{ a: 1, b: ['é'] }, undefined],
      [[1, 2], { status: 201, headers: { 'x-a': '1' } }],
      ['s', { headers: { 'content-type': 'application/vnd.x+json' } }],
      [null, { status: 404, statusText: 'Gone Fishing' }],
    ];
    for (const [data, init] of cases) {
      const light = LightResponse.json(data, init);
      const real = NativeResponse.json(data, init);
      expect(LightResponse.parts(light)).toBeDefined();
      expect(await describeResponse(light)).toEqual(await describeResponse(real));
      // Built without anyone asking for the headers first: the Content-Type is still JSON's.
      const fresh = LightResponse.json(data, init);
      expect(await fresh.text()).toBe(JSON.stringify(data));
      expect(fresh.headers.get('content-type')).toBe(real.headers.get('content-type'));
    }
    expect(() => LightResponse.json(undefined)).toThrow(TypeError);
    expect(() => LightResponse.json(1n)).toThrow(TypeError);
    expect(() => LightResponse.json({}, { status: 204 })).toThrow(TypeError);
    expect(() => LightResponse.json({}, { status: 1000 })).toThrow(RangeError);
  });

  it('Response.redirect() and Response.error() are the real ones; instanceof holds both ways', () => {
    const redirect = Light.redirect('http://h/next', 303);
    expect([redirect.status, redirect.headers.get('location')]).toEqual([303, 'http://h/next']);
    expect(() => redirect.headers.set('x', 'y')).toThrow(TypeError); // immutable, as the real one's
    expect(Light.error().type).toBe('error');
    expect(redirect).toBeInstanceOf(Light);
    expect(new NativeResponse('x')).toBeInstanceOf(Light);
    expect(new Light('x')).toBeInstanceOf(NativeResponse);
    expect(new Light('x')).toBeInstanceOf(Light);
    expect({}).not.toBeInstanceOf(Light);
    expect(Object.prototype.toString.call(new Light('x'))).toBe('[object Response]');
    expect(Light.name).toBe('Response');
  });

  it('a subclass is its own: instanceof it, its methods, the Response members working', async () => {
    class Mine extends Light {
      hello(): string {
        return `status ${this.status}`;
      }
    }
    const m = new Mine('body', { status: 201 });
    expect(m).toBeInstanceOf(Mine);
    expect(m).toBeInstanceOf(Light);
    expect(new Light('x')).not.toBeInstanceOf(Mine);
    expect(m.hello()).toBe('status 201');
    expect(await m.text()).toBe('body');
  });

  it('undici’s own methods take it for a real one (its state is the real one’s)', async () => {
    const r = new Light('through the prototype', { status: 202 });
    expect(await NativeResponse.prototype.text.call(r)).toBe('through the prototype');
    expect(Reflect.get(NativeResponse.prototype, 'status', r)).toBe(202);
  });

  it('a body of bytes is not copied: sent as it is then (the documented difference)', () => {
    const bytes = new Uint8Array([1, 2, 3]);
    const r = new Light(bytes);
    expect(LightResponse.parts(r)!.body).toBe(bytes);
  });
});

// ---------------------------------------------------------------------------------------------
// The globals, and fromFetch with them

describe('overrideGlobalObjects', () => {
  it('makes the global Response the lightweight one and the global Request take lightweight requests; restore undoes it', () => {
    const before = globalThis.Response;
    expect(globalsOverridden()).toBe(false);
    fromFetch(() => new Response(''), { overrideGlobalObjects: true });
    expect(globalsOverridden()).toBe(true);
    expect(globalThis.Response).toBe(LightResponse);
    expect(new Response('x')).toBeInstanceOf(NativeResponse);
    expect(new Request('http://h/')).toBeInstanceOf(NativeRequest);
    expect(new NativeRequest('http://h/')).toBeInstanceOf(Request);
    const { request } = requestFor({ HTTP_HOST: 'h', REQUEST_METHOD: 'POST' }, 'x');
    expect(new Request(request, { headers: { 'x-a': '1' } }).headers.get('x-a')).toBe('1');
    restoreGlobalObjects();
    expect(globalThis.Response).toBe(before);
    expect(globalThis.Request).toBe(NativeRequest);
  });

  it('on where the CLI serves a Fetch handler (adaptExport), unless TSGI_OVERRIDE_GLOBALS=0; off for fromFetch by default', async () => {
    fromFetch(() => new Response(''));
    expect(globalsOverridden()).toBe(false);
    await adaptExport({ fetch: () => new Response('') }, undefined, 'the export');
    expect(globalsOverridden()).toBe(true);
    restoreGlobalObjects();
    await adaptExport((_req: Request) => new Response(''), 'fetch', 'the export');
    expect(globalsOverridden()).toBe(true);
    restoreGlobalObjects();
    process.env.TSGI_OVERRIDE_GLOBALS = '0';
    try {
      await adaptExport({ fetch: () => new Response('') }, undefined, 'the export');
      expect(globalsOverridden()).toBe(false);
    } finally {
      delete process.env.TSGI_OVERRIDE_GLOBALS;
    }
    // A Node listener or a TSGI app: the globals are left alone.
    await adaptExport((_e: unknown, _s: unknown) => [], undefined, 'the export');
    expect(globalsOverridden()).toBe(false);
  });

  it('fromFetch sends a lightweight Response as it is: status, headers (every Set-Cookie), body, no stream', async () => {
    overrideGlobalObjects();
    let returned: Response | undefined;
    const app = new Hono();
    app.get('/text', (c) => c.text('Hello, world!'));
    app.get('/cookies', (c) => {
      setCookie(c, 'a', '1', { path: '/' });
      setCookie(c, 'b', '2, with comma', { path: '/' });
      deleteCookie(c, 'old');
      c.header('Vary', 'Accept');
      return c.json({ ok: true }, 201);
    });
    app.get('/bytes', (c) => c.body(new Uint8Array([104, 105]), 200, { 'Content-Type': 'application/octet-stream' }));
    app.get('/empty', (c) => c.body(null, 204));
    app.get('/redirect', (c) => c.redirect('/text'));
    app.get('/stream', (c) => stream(c, async (s) => void (await s.write('one'), await s.write('two'))));
    app.get('/error', () => {
      throw new Error('boom');
    });
    app.onError((err, c) => c.text(`caught ${err.message}`, 500));
    const handler = (req: Request): Response | Promise<Response> => {
      const res = app.fetch(req);
      if (res instanceof Promise) return res.then((r) => (returned = r));
      return (returned = res);
    };
    const served = fromFetch(handler, { overrideGlobalObjects: true });

    const text = makeRequest({ PATH_INFO: '/text' });
    await text.run(served);
    expect(returned).toBeInstanceOf(LightResponse);
    expect(LightResponse.parts(returned)).toBeDefined(); // never built: no stream was made
    expect(text.sink.head.status).toBe('200 OK');
    expect(text.sink.header('content-type')).toEqual(['text/plain;charset=UTF-8']); // as the real Response has it
    expect(text.sink.header('content-length')).toEqual(['13']);
    expect(text.sink.kinds).toEqual(['start', 'end']);
    expect(text.sink.text()).toBe('Hello, world!');

    const cookies = makeRequest({ PATH_INFO: '/cookies' });
    await cookies.run(served);
    expect(LightResponse.parts(returned)).toBeDefined();
    expect(cookies.sink.head.status).toBe('201 Created');
    expect(cookies.sink.header('set-cookie')).toEqual(['a=1; Path=/', 'b=2%2C%20with%20comma; Path=/', 'old=; Max-Age=0; Path=/']);
    expect(cookies.sink.header('vary')).toEqual(['Accept']);
    expect(cookies.sink.header('content-type')).toEqual(['application/json']);
    expect(JSON.parse(cookies.sink.text())).toEqual({ ok: true });

    const bytes = makeRequest({ PATH_INFO: '/bytes' });
    await bytes.run(served);
    expect([bytes.sink.text(), bytes.sink.header('content-type')[0], bytes.sink.header('content-length')[0]]).toEqual(['hi', 'application/octet-stream', '2']);

    const empty = makeRequest({ PATH_INFO: '/empty' });
    await empty.run(served);
    expect([empty.sink.head.status, empty.sink.text()]).toEqual(['204 No Content', '']);

    const redirect = makeRequest({ PATH_INFO: '/redirect' });
    await redirect.run(served);
    expect([redirect.sink.head.status, redirect.sink.header('location')[0]]).toEqual(['302 Found', '/text']);

    const streamed = makeRequest({ PATH_INFO: '/stream' });
    await streamed.run(served);
    expect(LightResponse.parts(returned)).toBeUndefined(); // a stream: the real one
    expect(streamed.sink.text()).toBe('onetwo');

    const error = makeRequest({ PATH_INFO: '/error' });
    await error.run(served);
    expect([error.sink.head.status, error.sink.text()]).toEqual(['500 Internal Server Error', 'caught boom']);
  });

  it('a lightweight Response that became a real one is sent from the real one', async () => {
    overrideGlobalObjects();
    const r = makeRequest();
    await r.run(
      fromFetch(async () => {
        const res = new Response('read once', { headers: { 'x-a': '1' } });
        const copy = res.clone(); // builds the real one
        await copy.text();
        return res;
      }),
    );
    expect([r.sink.text(), r.sink.header('x-a')[0]]).toEqual(['read once', '1']);
  });

  it('waitUntil work after a lightweight Response still runs in close(), after end()', async () => {
    overrideGlobalObjects();
    const r = makeRequest();
    const done = deferred();
    await r.run(
      fromFetch((_req, _env, ctx) => {
        ctx.waitUntil(new Promise<void>((resolve) => setTimeout(() => (r.sink.timeline.push('background'), done.resolve(), resolve()), 10)));
        return new Response('done');
      }),
    );
    expect(r.sink.timeline).toEqual(['start', 'end', 'background']);
  });

  it('toFetch(fromFetch(h)) with the globals overridden: the body and every Set-Cookie come back', async () => {
    overrideGlobalObjects();
    const { log } = memoryLogger();
    const h = async (req: Request): Promise<Response> => {
      const headers = new Headers({ 'content-type': 'text/plain' });
      headers.append('set-cookie', 'a=1');
      headers.append('set-cookie', 'b=2');
      return new Response(`${req.method} ${await req.text()}`, { status: 202, headers });
    };
    const res = await toFetch(fromFetch(h), { log })(new Request('http://h/', { method: 'POST', body: 'payload' }));
    expect(res.status).toBe(202);
    expect(res.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    expect(await res.text()).toBe('POST payload');
  });
});
