// compression(): negotiation on Accept-Encoding with q-values, what is skipped (small, encoded,
// partial, bodyless, HEAD, incompressible types, no-transform), the headers it fixes
// (Content-Length, Vary, Content-Encoding, ETag), streaming with flushes, and excInfo.

import { Buffer } from 'node:buffer';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { compression, negotiateEncoding, typeMatcher } from '../../src/middleware/compression.js';
import { errorCatcher } from '../../src/middleware/error-catcher.js';
import type { App } from '../../src/types.js';
import { tick } from '../helpers/recording-sink.js';
import { call, linted, textApp } from './harness.js';

const big = 'hello compression '.repeat(200); // 3600 bytes, compresses well
const gunzip = (b: Buffer) => zlib.gunzipSync(b).toString('utf8');
const unbrotli = (b: Buffer) => zlib.brotliDecompressSync(b).toString('utf8');

describe('negotiateEncoding', () => {
  it.each([
    [undefined, undefined],
    ['', undefined],
    ['identity', undefined],
    ['gzip', 'gzip'],
    ['x-gzip', 'gzip'],
    ['GZIP', 'gzip'],
    ['br', 'br'],
    ['gzip, br', 'br'], // equal q: the server's order (br first)
    ['gzip;q=1.0, br;q=0.5', 'gzip'],
    ['br;q=0, gzip', 'gzip'],
    ['*', 'br'],
    ['*;q=0.5, br;q=0', 'gzip'],
    ['*;q=0', undefined],
    ['gzip;q=0', undefined],
    ['deflate', undefined],
    ['gzip;q=2', undefined], // not a qvalue: the entry is ignored
    ['gzip;q=abc, br;q=0.1', 'br'],
    ['gzip ; q = 0.8 , br ; q=0.7', 'gzip'],
    [',,, ;q=1, gzip', 'gzip'],
  ] as Array<[string | undefined, string | undefined]>)('%j -> %j', (accept, want) => {
    expect(negotiateEncoding(accept)).toBe(want);
  });

  it('offers only what it is given, in its order', () => {
    expect(negotiateEncoding('br, gzip', ['gzip'])).toBe('gzip');
    expect(negotiateEncoding('br, gzip', ['gzip', 'br'])).toBe('gzip');
  });
});

describe('typeMatcher', () => {
  const m = typeMatcher();
  it.each([
    ['text/html; charset=utf-8', true],
    ['application/json', true],
    ['application/problem+json', true],
    ['image/svg+xml', true],
    ['TEXT/PLAIN', true],
    ['text/event-stream', false],
    ['image/png', false],
    ['application/octet-stream', false],
    ['application/zip', false],
    ['font/woff2', false],
    [undefined, false],
  ] as Array<[string | undefined, boolean]>)('%j -> %j', (ct, want) => expect(m(ct)).toBe(want));
  it('takes a list or a function', () => {
    expect(typeMatcher(['application/x-thing'])('application/x-thing')).toBe(true);
    expect(typeMatcher(['application/x-thing'])('text/html')).toBe(false);
    expect(typeMatcher((ct) => ct.startsWith('image/'))('image/png')).toBe(true);
  });
});

describe('compression(app)', () => {
  it('gzips an array body: Content-Encoding, Vary, the compressed Content-Length; round trip', async () => {
    const r = await call(compression(textApp(big, [['Content-Length', String(big.length)]])), { HTTP_ACCEPT_ENCODING: 'gzip' });
    expect(r.status).toBe(200);
    expect(r.header('Content-Encoding')).toBe('gzip');
    expect(r.header('Vary')).toBe('Accept-Encoding');
    expect(r.header('Content-Length')).toBe(String(r.body.length));
    expect(r.body.length).toBeLessThan(big.length / 4);
    expect(gunzip(r.body)).toBe(big);
  });

  it('gzips any other iterable as a stream (the inner validator hides the array)', async () => {
    const r = await call(compression(linted(textApp(big, [['Content-Length', String(big.length)]]))), { HTTP_ACCEPT_ENCODING: 'gzip' });
    expect(r.header('Content-Encoding')).toBe('gzip');
    expect(r.header('Content-Length')).toBeUndefined();
    expect(gunzip(r.body)).toBe(big);
  });

  it('brotli when preferred or tied', async () => {
    const r = await call(compression(textApp(big)), { HTTP_ACCEPT_ENCODING: 'gzip, deflate, br' });
    expect(r.header('Content-Encoding')).toBe('br');
    expect(unbrotli(r.body)).toBe(big);
  });

  it('identity without Accept-Encoding, but Vary still says the response depends on it', async () => {
    const r = await call(compression(textApp(big)));
    expect(r.header('Content-Encoding')).toBeUndefined();
    expect(r.header('Vary')).toBe('Accept-Encoding');
    expect(r.text).toBe(big);
  });

  it('merges into an existing Vary, once', async () => {
    const r = await call(compression(textApp(big, [['Vary', 'Cookie']])), { HTTP_ACCEPT_ENCODING: 'gzip' });
    expect(r.headerAll('Vary')).toEqual(['Cookie, Accept-Encoding']);
    const r2 = await call(compression(textApp(big, [['Vary', 'accept-encoding']])), { HTTP_ACCEPT_ENCODING: 'gzip' });
    expect(r2.headerAll('Vary')).toEqual(['accept-encoding']);
    const r3 = await call(compression(textApp(big, [['Vary', '*']])), { HTTP_ACCEPT_ENCODING: 'gzip' });
    expect(r3.headerAll('Vary')).toEqual(['*']);
  });

  it('skips a body smaller than minSize (known from the array or from Content-Length)', async () => {
    const r = await call(compression(textApp('small')), { HTTP_ACCEPT_ENCODING: 'gzip' });
    expect(r.header('Content-Encoding')).toBeUndefined();
    expect(r.text).toBe('small');
    const gen: App = async function* (_e, sr) {
      sr('200 OK', [['Content-Type', 'text/plain'], ['Content-Length', '10']]);
      yield '0123456789';
    };
    const r2 = await call(compression(gen), { HTTP_ACCEPT_ENCODING: 'gzip' });
    expect(r2.header('Content-Encoding')).toBeUndefined();
    expect(r2.header('Content-Length')).toBe('10');
    expect(r2.text).toBe('0123456789');
    const r3 = await call(compression(textApp('small'), { minSize: 0 }), { HTTP_ACCEPT_ENCODING: 'gzip' });
    expect(gunzip(r3.body)).toBe('small');
  });

  it.each([
    ['already encoded', textApp(big, [['Content-Encoding', 'gzip'], ['Content-Type', 'text/plain']])],
    ['an image', textApp(big, [['Content-Type', 'image/png']])],
    ['no Content-Type', ((_e, sr) => (sr('200 OK', []), [big])) as App],
    ['Cache-Control: no-transform', textApp(big, [['Cache-Control', 'public, no-transform']])],
    ['a 206 partial response', textApp(big, [['Content-Range', `bytes 0-${big.length - 1}/99999`]], '206 Partial Content')],
  ])('passes on untouched: %s', async (_what, app) => {
    // (no lint: one of them has no Content-Type on purpose, which the validator warns about)
    const r = await call(compression(app), { HTTP_ACCEPT_ENCODING: 'gzip, br' }, undefined, { noLint: true });
    expect(r.headerAll('Content-Encoding').filter((v) => v !== 'gzip' || _what !== 'already encoded')).toEqual([]);
    expect(r.text).toBe(big);
  });

  it('HEAD: no compression, headers as they are (plus Vary)', async () => {
    const r = await call(compression(textApp(big, [['Content-Length', String(big.length)]])), { REQUEST_METHOD: 'HEAD', HTTP_ACCEPT_ENCODING: 'gzip' });
    expect(r.header('Content-Encoding')).toBeUndefined();
    expect(r.header('Content-Length')).toBe(String(big.length));
    expect(r.body.length).toBe(0);
  });

  it.each(['204 No Content', '304 Not Modified'])('%s: passes on untouched', async (status) => {
    const app: App = (_e, sr) => (sr(status, [['Content-Type', 'text/plain']]), []);
    const r = await call(compression(app), { HTTP_ACCEPT_ENCODING: 'gzip' });
    expect(r.statusLine).toBe(status);
    expect(r.header('Content-Encoding')).toBeUndefined();
  });

  it('makes a strong ETag weak and drops Accept-Ranges when it compresses', async () => {
    const r = await call(compression(textApp(big, [['ETag', '"abc"'], ['Accept-Ranges', 'bytes']])), { HTTP_ACCEPT_ENCODING: 'gzip' });
    expect(r.header('ETag')).toBe('W/"abc"');
    expect(r.header('Accept-Ranges')).toBeUndefined();
  });

  it('streams a generator: no Content-Length, output as the app yields (flushed per chunk)', async () => {
    const seen: number[] = [];
    const gen: App = async function* (_e, sr) {
      sr('200 OK', [['Content-Type', 'text/plain'], ['Content-Length', String(3 * big.length)]]);
      for (let i = 0; i < 3; i++) {
        seen.push(i);
        await tick();
        yield big;
      }
    };
    const r = await call(compression(linted(gen)), { HTTP_ACCEPT_ENCODING: 'gzip' });
    expect(r.header('Content-Encoding')).toBe('gzip');
    expect(r.header('Content-Length')).toBeUndefined();
    expect(gunzip(r.body)).toBe(big.repeat(3));
    // One sink call per input chunk at least: each was flushed on its way.
    expect(r.req.sink.calls.filter((c) => c.kind === 'write' || (c.kind === 'start' && c.chunk)).length).toBeGreaterThanOrEqual(3);
  });

  it('each flushed chunk can be decompressed as soon as it arrives (streaming works through it)', async () => {
    const gen: App = async function* (_e, sr) {
      sr('200 OK', [['Content-Type', 'text/event-stream-ish; x=1'], ['Content-Type', 'text/plain']]);
      yield 'first\n';
      await tick();
      yield 'second\n';
    };
    const r = await call(compression(gen, { minSize: 0 }), { HTTP_ACCEPT_ENCODING: 'gzip' });
    const first = r.req.sink.calls.find((c) => c.kind === 'start')!;
    const inflate = zlib.createGunzip();
    const out: Buffer[] = [];
    inflate.on('data', (b: Buffer) => out.push(b));
    inflate.write((first as { chunk: Uint8Array }).chunk);
    await new Promise((r) => setTimeout(r, 20));
    expect(Buffer.concat(out).toString()).toBe('first\n');
    inflate.destroy();
  });

  it('an empty streamed body is not compressed (nothing known to be worth it)', async () => {
    const gen: App = async function* (_e, sr) {
      sr('200 OK', [['Content-Type', 'text/plain']]);
    };
    const r = await call(compression(gen), { HTTP_ACCEPT_ENCODING: 'gzip' });
    expect(r.header('Content-Encoding')).toBeUndefined();
    expect(r.header('Content-Length')).toBe('0');
    expect(r.body.length).toBe(0);
  });

  it('write(): compressed too, in order with the body', async () => {
    const app: App = async (_e, sr) => {
      const write = sr('200 OK', [['Content-Type', 'text/plain']]);
      await write(big);
      await write('middle\n');
      return [big];
    };
    const r = await call(compression(app), { HTTP_ACCEPT_ENCODING: 'gzip' });
    expect(r.header('Content-Encoding')).toBe('gzip');
    expect(gunzip(r.body)).toBe(big + 'middle\n' + big);
  });

  it('excInfo before any output: the error response replaces the compressed one, uncorrupted', async () => {
    const failing: App = async function* (_e, sr) {
      sr('200 OK', [['Content-Type', 'text/plain']]);
      yield ''; // nothing yet
      throw new Error('boom');
    };
    const r = await call(compression(errorCatcher(failing)), { HTTP_ACCEPT_ENCODING: 'gzip' });
    expect(r.status).toBe(500);
    expect(r.header('Content-Encoding')).toBeUndefined();
    expect(r.text).toBe('Internal Server Error\n');
  });

  it('excInfo after compressed output went out: the response is aborted, never a clean end', async () => {
    const failing: App = async function* (_e, sr) {
      sr('200 OK', [['Content-Type', 'text/plain']]);
      yield big;
      await tick();
      throw new Error('late');
    };
    const r = await call(compression(errorCatcher(failing)), { HTTP_ACCEPT_ENCODING: 'gzip' }, undefined, { allowError: true });
    expect(r.outcome).toBe('error');
    expect(r.req.sink.kinds).toContain('abort');
    expect(r.req.sink.kinds).not.toContain('end');
  });

  it('a second startResponse without excInfo is refused as the server would', async () => {
    const app: App = (_e, sr) => {
      sr('200 OK', [['Content-Type', 'text/plain']]);
      sr('200 OK', [['Content-Type', 'text/plain']]);
      return [big];
    };
    const r = await call(compression(app), { HTTP_ACCEPT_ENCODING: 'gzip' }, undefined, { allowError: true });
    expect(r.status).toBe(500);
  });

  it('close() of the inner body runs once, compressed or not', async () => {
    for (const enc of ['gzip', 'identity']) {
      let closes = 0;
      const app: App = (_e, sr) => {
        sr('200 OK', [['Content-Type', 'text/plain']]);
        return Object.assign((function* () {
          yield big;
        })(), { close: () => void closes++ });
      };
      await call(compression(app), { HTTP_ACCEPT_ENCODING: enc });
      expect(closes).toBe(1);
    }
  });

  it('backpressure: the app is not read ahead of a slow client', async () => {
    let produced = 0;
    const gen: App = async function* (_e, sr) {
      sr('200 OK', [['Content-Type', 'text/plain']]);
      for (let i = 0; i < 50; i++) {
        produced++;
        yield Buffer.alloc(64 * 1024, i % 26 + 97).toString('latin1') + String(Math.random());
      }
    };
    const { makeRequest } = await import('../helpers/recording-sink.js');
    const req = makeRequest({ HTTP_ACCEPT_ENCODING: 'gzip' }, undefined, { sink: { backpressure: true } });
    const done = req.run(compression(gen));
    for (let i = 0; i < 20; i++) await tick();
    // The sink holds the first write: the app is at most a chunk or two ahead.
    expect(produced).toBeLessThanOrEqual(3);
    req.sink.backpressure = false;
    req.sink.release();
    // Let everything through now.
    const t = setInterval(() => req.sink.release(), 1);
    await done;
    clearInterval(t);
    expect(produced).toBe(50);
  });
});
