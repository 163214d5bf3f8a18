// fast-check: the adapters lose nothing. On generated requests, `toFetch(fromFetch(h))` answers as
// the Fetch handler `h` does, and `fromNodeListener(toNodeListener(app))` as the TSGI app `app`:
// same status, same headers (Set-Cookie one by one), same body, and the request each sees (method,
// URL, headers, body) is the one sent. Only framing may differ: a Content-Length the original did
// not set, and no body for HEAD, as any HTTP server does.

import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromFetch } from '../../src/adapters/fetch.js';
import { overrideGlobalObjects, restoreGlobalObjects } from '../../src/adapters/light-web.js';
import { fromNodeListener } from '../../src/adapters/node.js';
import { toFetch } from '../../src/adapters/to-fetch.js';
import { toNodeListener } from '../../src/adapters/to-node.js';
import type { App, Body, Environ, HeaderList } from '../../src/types.js';
import { makeRequest, memoryLogger, within } from '../helpers/recording-sink.js';

const run = { numRuns: 150, interruptAfterTimeLimit: 10_000 };
const { log } = memoryLogger();

const headerName = fc.stringMatching(/^x-[a-z]{1,6}$/);
// Header values as HTTP carries them: visible ASCII, inner spaces, none at the ends.
const headerValue = fc.stringMatching(/^[!-~]([ !-~]{0,14}[!-~])?$/);
const chunks = fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { maxLength: 4 });
const cookie = fc.tuple(fc.stringMatching(/^[a-z]{1,5}$/), fc.stringMatching(/^[a-zA-Z0-9]{0,8}$/)).map(([n, v]) => `${n}=${v}; Path=/`);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

// ---------------------------------------------------------------------------------------------
// toFetch(fromFetch(h)) ≡ h

interface FetchCase {
  method: string;
  https: boolean;
  port: string;
  segments: string[];
  query: Array<[string, string]>;
  headers: Array<[string, string]>;
  body: Uint8Array[];
  streamBody: boolean;
  status: number;
  statusText: string;
  resHeaders: Array<[string, string]>;
  cookies: string[];
  resBody: Uint8Array[];
  streamResponse: boolean;
  contentLength: boolean;
}

const fetchCase: fc.Arbitrary<FetchCase> = fc.record({
  method: fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'),
  https: fc.boolean(),
  port: fc.constantFrom('', '8080', '443', '80'),
  // Any text in a path segment: the URL parser encodes it, the adapters must carry it back.
  segments: fc.array(fc.string({ unit: fc.constantFrom('a', 'Z', '0', ' ', '%', 'é', '☃', '|', ':', '@', '+', '~', "'", '"', '[', ';', '=', '&', '\\', '?', '#', '.'), maxLength: 6 }), { maxLength: 4 }),
  query: fc.array(fc.tuple(fc.string({ maxLength: 5 }), fc.string({ maxLength: 8 })), { maxLength: 3 }),
  headers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 4 }),
  body: chunks,
  streamBody: fc.boolean(),
  status: fc.constantFrom(200, 201, 202, 204, 301, 302, 304, 400, 404, 418, 451, 500, 503, 299),
  statusText: fc.constantFrom('', 'Custom Reason', 'Fine'),
  resHeaders: fc.array(fc.tuple(headerName, headerValue), { maxLength: 4 }),
  cookies: fc.array(cookie, { maxLength: 3 }),
  resBody: chunks,
  streamResponse: fc.boolean(),
  contentLength: fc.boolean(),
});

function buildRequest(c: FetchCase): Request {
  const url = new URL(`${c.https ? 'https' : 'http'}://example.test${c.port ? ':' + c.port : ''}/`);
  url.pathname = '/' + c.segments.join('/');
  for (const [k, v] of c.query) url.searchParams.append(k, v);
  const headers = new Headers(c.headers);
  const init: RequestInit & { duplex?: 'half' } = { method: c.method, headers };
  if (c.method !== 'GET' && c.method !== 'HEAD' && c.body.length > 0) {
    const bytes = Buffer.concat(c.body);
    if (c.streamBody) {
      const parts = [...c.body];
      init.body = new ReadableStream({ pull: (ctl) => (parts.length ? ctl.enqueue(parts.shift()!) : ctl.close()) });
      init.duplex = 'half';
    } else {
      headers.set('content-length', String(bytes.length));
      init.body = bytes;
    }
  }
  return new Request(url, init);
}

/** The handler: echoes what it was asked (method, URL, x- headers, body) and answers per the case. */
function handlerFor(c: FetchCase) {
  return async (req: Request): Promise<Response> => {
    const body = req.body ? new Uint8Array(await req.arrayBuffer()) : new Uint8Array(0);
    const seen = [...req.headers].filter(([n]) => n.startsWith('x-'));
    const echo = Buffer.from(JSON.stringify({ method: req.method, url: req.url, seen, body: sha(body), n: body.length }) + '\n');
    const parts = [echo, ...c.resBody];
    const total = parts.reduce((n, p) => n + p.length, 0);
    const headers = new Headers(c.resHeaders);
    for (const k of c.cookies) headers.append('set-cookie', k);
    const nullBody = c.status === 204 || c.status === 304;
    if (c.contentLength && !nullBody) headers.set('content-length', String(total));
    let b: ConstructorParameters<typeof Response>[0] = null;
    if (!nullBody) {
      const queue = [...parts];
      b = c.streamResponse ? new ReadableStream({ pull: (ctl) => (queue.length ? ctl.enqueue(queue.shift()!) : ctl.close()) }) : Buffer.concat(parts);
    }
    return new Response(b, { status: c.status, statusText: c.statusText, headers });
  };
}

interface Seen {
  status: number;
  statusText: string;
  headers: Array<[string, string]>;
  cookies: string[];
  contentLength: string | null;
  body: string;
}

async function observe(res: Response, method: string): Promise<Seen> {
  const body = Buffer.from(await res.arrayBuffer());
  return {
    status: res.status,
    statusText: res.statusText || STATUS_CODES[res.status] || 'Unknown',
    headers: [...res.headers].filter(([n]) => n !== 'content-length' && n !== 'set-cookie'),
    cookies: res.headers.getSetCookie(),
    contentLength: res.headers.get('content-length'),
    // A server sends no body for HEAD.
    body: method === 'HEAD' ? '' : body.toString('latin1'),
  };
}

describe('toFetch(fromFetch(h)) behaves like h', () => {
  it('same status, headers, cookies and body; h sees the same request', async () => {
    await fc.assert(
      fc.asyncProperty(fetchCase, async (c) => {
        const h = handlerFor(c);
        const original = await observe(await h(buildRequest(c)), c.method);
        const roundTrip = toFetch(fromFetch(h), { log });
        const again = await observe(await within(roundTrip(buildRequest(c)), 2000, 'the round trip'), c.method);
        expect(again.status).toBe(original.status);
        expect(again.statusText).toBe(original.statusText);
        expect(again.headers).toEqual(original.headers);
        expect(again.cookies).toEqual(original.cookies);
        if (original.contentLength !== null) expect(again.contentLength).toBe(original.contentLength);
        expect(again.body).toBe(original.body);
      }),
      run,
    );
  });

  it('the same with the global Response the lightweight one (overrideGlobalObjects, as bin/tsgi runs a Fetch handler)', async () => {
    try {
      await fc.assert(
        fc.asyncProperty(fetchCase, async (c) => {
          restoreGlobalObjects();
          const h = handlerFor(c);
          const original = await observe(await h(buildRequest(c)), c.method);
          // h's `new Response(...)` is now the lightweight one, sent by fromFetch as it is.
          overrideGlobalObjects();
          const roundTrip = toFetch(fromFetch(h, { overrideGlobalObjects: true }), { log });
          const again = await observe(await within(roundTrip(buildRequest(c)), 2000, 'the round trip'), c.method);
          expect(again.status).toBe(original.status);
          expect(again.statusText).toBe(original.statusText);
          expect(again.headers).toEqual(original.headers);
          expect(again.cookies).toEqual(original.cookies);
          if (original.contentLength !== null) expect(again.contentLength).toBe(original.contentLength);
          expect(again.body).toBe(original.body);
        }),
        run,
      );
    } finally {
      restoreGlobalObjects();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// fromNodeListener(toNodeListener(app)) ≡ app

interface TsgiCase {
  method: string;
  scriptName: string;
  pathInfo: string;
  query: string;
  headers: Array<[string, string]>;
  body: Uint8Array[];
  status: string;
  resHeaders: HeaderList;
  cookies: string[];
  resBody: Uint8Array[];
  mode: 'array' | 'generator' | 'async';
  contentLength: boolean;
}

const tsgiCase: fc.Arbitrary<TsgiCase> = fc.record({
  method: fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE'),
  scriptName: fc.constantFrom('', '/mnt', '/a b'),
  // PATH_INFO is bytes (latin-1 characters), any of them. Not empty: an HTTP request's path is
  // at least '/', so an empty PATH_INFO comes back as '/'.
  pathInfo: fc.array(fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((n) => String.fromCharCode(n)), maxLength: 6 }), { minLength: 1, maxLength: 3 }).map((s) => s.map((x) => '/' + x.replaceAll('/', '')).join('')),
  query: fc.stringMatching(/^[a-z0-9=&%+.-]{0,12}$/),
  headers: fc.uniqueArray(fc.tuple(headerName, headerValue), { maxLength: 4, selector: ([n]) => n }),
  body: chunks,
  status: fc.constantFrom('200 OK', '201 Created', '204 No Content', '302 Found', '304 Not Modified', '404 Not Found', '418 Teapot', '500 Oops', '299 '),
  resHeaders: fc.array(fc.tuple(fc.stringMatching(/^X-[A-Z][a-z]{0,5}$/), headerValue), { maxLength: 4 }),
  cookies: fc.array(cookie, { maxLength: 3 }),
  resBody: chunks,
  mode: fc.constantFrom('array', 'generator', 'async'),
  contentLength: fc.boolean(),
});

function appFor(c: TsgiCase): App {
  return async (environ: Environ, startResponse) => {
    const body = await environ['wsgi.input'].read();
    const seen = Object.keys(environ)
      .filter((k) => k.startsWith('HTTP_X_'))
      .sort()
      .map((k) => [k, environ[k]]);
    const echo = Buffer.from(
      JSON.stringify({ m: environ.REQUEST_METHOD, p: environ.SCRIPT_NAME + environ.PATH_INFO, q: environ.QUERY_STRING, seen, body: sha(body) }) + '\n',
    );
    const parts = [echo, ...c.resBody];
    const headers: HeaderList = [...c.resHeaders, ...c.cookies.map((k): [string, string] => ['Set-Cookie', k])];
    if (c.contentLength) headers.push(['Content-Length', String(parts.reduce((n, p) => n + p.length, 0))]);
    startResponse(c.status, headers);
    if (c.mode === 'array') return parts;
    if (c.mode === 'generator') return (function* () {
      yield* parts;
    })();
    return (async function* () {
      for (const p of parts) {
        await Promise.resolve();
        yield p;
      }
    })() as Body;
  };
}

async function runTsgi(app: App, c: TsgiCase) {
  const vars: Record<string, string> = {
    REQUEST_METHOD: c.method,
    SCRIPT_NAME: c.scriptName,
    PATH_INFO: c.pathInfo,
    QUERY_STRING: c.query,
    HTTP_HOST: 'example.test:8080',
    SERVER_NAME: 'example.test',
    SERVER_PORT: '8080',
  };
  for (const [n, v] of c.headers) vars['HTTP_' + n.toUpperCase().replaceAll('-', '_')] = v;
  const r = makeRequest(vars, c.method === 'GET' || c.method === 'HEAD' ? undefined : c.body);
  await within(r.run(app), 2000, 'the run');
  const head = r.sink.head;
  const declared = head.headers.some(([n]) => n.toLowerCase() === 'content-length') && c.contentLength;
  return {
    status: head.status,
    headers: head.headers.filter(([n]) => n.toLowerCase() !== 'content-length').map(([n, v]) => [n.toLowerCase(), v]),
    contentLength: declared ? r.sink.header('content-length') : null,
    body: Buffer.from(r.sink.collect()).toString('latin1'),
    kinds: r.sink.kinds.filter((k) => k !== 'write'),
  };
}

describe('fromNodeListener(toNodeListener(app)) behaves like app', () => {
  it('same status, headers, cookies and body; app sees the same environ', async () => {
    await fc.assert(
      fc.asyncProperty(tsgiCase, async (c) => {
        const app = appFor(c);
        const original = await runTsgi(app, c);
        const again = await runTsgi(fromNodeListener(toNodeListener(app, { log })), c);
        expect(again.status).toBe(original.status);
        expect(again.headers).toEqual(original.headers);
        if (original.contentLength) expect(again.contentLength).toEqual(original.contentLength);
        expect(again.body).toBe(original.body);
        expect(again.kinds).toEqual(original.kinds);
      }),
      run,
    );
  });
});
