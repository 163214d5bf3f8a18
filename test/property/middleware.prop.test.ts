// fast-check invariants of the middleware: compression round trips (any body, any chunking,
// any way of sending it, either coding: decompressing gives the body back, and backpressure
// holds); the Basic auth parser never throws and round-trips what a client can send; path
// checks of static files never let a segment out of the root; Accept-Encoding and Forwarded
// parsers take anything; the URL map keeps SCRIPT_NAME + PATH_INFO whole.

import { Buffer } from 'node:buffer';
import path from 'node:path';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseBasicAuth } from '../../src/middleware/basic-auth.js';
import { compression, negotiateEncoding } from '../../src/middleware/compression.js';
import { parseForwarded } from '../../src/middleware/proxy-fix.js';
import { safeSegments } from '../../src/middleware/static-files.js';
import { urlMap } from '../../src/middleware/url-map.js';
import { validator } from '../../src/runner/validate.js';
import type { App, Chunk } from '../../src/types.js';
import { makeRequest, toBytes } from '../helpers/recording-sink.js';

const run = { numRuns: 150, interruptAfterTimeLimit: 8_000 };

const chunk: fc.Arbitrary<Chunk> = fc.oneof(
  { weight: 3, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.constantFrom<Chunk>('', new Uint8Array(0)) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 2000, maxLength: 40_000 }) },
  // Repetitive text, which actually compresses.
  { weight: 1, arbitrary: fc.tuple(fc.string({ minLength: 1, maxLength: 8 }), fc.integer({ min: 1, max: 3000 })).map(([s, n]) => s.repeat(n)) },
);

type Mode = 'array' | 'generator' | 'async-generator' | 'write';

function appFor(m: Mode, chunks: Chunk[]): App {
  const headers: Array<[string, string]> = [['Content-Type', 'text/plain; charset=utf-8']];
  switch (m) {
    case 'array':
      return (_e, sr) => (sr('200 OK', headers), [...chunks]);
    case 'generator':
      return (_e, sr) => {
        sr('200 OK', headers);
        return (function* () {
          yield* chunks;
        })();
      };
    case 'async-generator':
      return async function* (_e, sr) {
        sr('200 OK', headers);
        for (const c of chunks) {
          await Promise.resolve();
          yield c;
        }
      };
    case 'write':
      return async (_e, sr) => {
        const write = sr('200 OK', headers);
        for (const c of chunks.slice(0, chunks.length >> 1)) await write(c);
        return chunks.slice(chunks.length >> 1);
      };
  }
}

function decode(coding: string | undefined, body: Buffer): Buffer {
  if (coding === 'gzip') return zlib.gunzipSync(body);
  if (coding === 'br') return zlib.brotliDecompressSync(body);
  return body;
}

describe('compression round trips', () => {
  it('decompressing what went out gives the body back, for any chunks, mode, coding and flush', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(chunk, { maxLength: 12 }),
        fc.constantFrom<Mode>('array', 'generator', 'async-generator', 'write'),
        fc.constantFrom('gzip', 'br', 'gzip;q=0.5, br', 'identity', '*'),
        fc.constantFrom<'auto' | 'always' | 'never'>('auto', 'always', 'never'),
        fc.integer({ min: 0, max: 2048 }),
        fc.boolean(),
        async (chunks, m, accept, flush, minSize, backpressure) => {
          const req = makeRequest({ HTTP_ACCEPT_ENCODING: accept }, undefined, { sink: backpressure ? { asyncWrites: true } : {} });
          const result = await req.run(validator(compression(appFor(m, chunks), { minSize, flush })));
          expect(result.outcome).toBe('ok');
          const coding = req.sink.header('Content-Encoding')[0];
          const want = Buffer.concat(chunks.map(toBytes));
          expect(decode(coding, Buffer.from(req.sink.collect())).equals(want)).toBe(true);
          if (coding) {
            expect(req.sink.header('Vary')).toEqual(['Accept-Encoding']);
            // A Content-Length, when there is one, is the compressed length.
            const cl = req.sink.header('Content-Length')[0];
            if (cl !== undefined) expect(Number(cl)).toBe(req.sink.collect().length);
            if (m === 'array') expect(want.length).toBeGreaterThanOrEqual(minSize);
          } else if (accept !== 'identity') {
            // Not compressed for a client that accepts it: the body was empty, or known to be small.
            expect(want.length === 0 || want.length < minSize).toBe(true);
          }
        },
      ),
      run,
    );
  });

  it('a streamed body is never read more than one chunk ahead of the client', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ minLength: 1, maxLength: 5000 }), { minLength: 2, maxLength: 20 }), async (chunks) => {
        let produced = 0;
        let maxAhead = 0;
        let delivered = 0;
        const app: App = async function* (_e, sr) {
          sr('200 OK', [['Content-Type', 'text/plain']]);
          for (const c of chunks) {
            produced++;
            maxAhead = Math.max(maxAhead, produced - delivered);
            yield c;
          }
        };
        const req = makeRequest({ HTTP_ACCEPT_ENCODING: 'gzip' }, undefined, { sink: { asyncWrites: true, onWrite: () => void delivered++ } });
        const result = await req.run(compression(app, { minSize: 0 }));
        expect(result.outcome).toBe('ok');
        // Flushed per chunk: each input chunk produced output that reached the sink before the next was pulled.
        expect(maxAhead).toBeLessThanOrEqual(2);
        expect(zlib.gunzipSync(Buffer.from(req.sink.collect())).equals(Buffer.concat(chunks))).toBe(true);
      }),
      { numRuns: 40, interruptAfterTimeLimit: 5_000 },
    );
  });
});

describe('Basic auth parser', () => {
  it('never throws, whatever the header', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 200 }),
          fc.string({ maxLength: 100 }).map((s) => `Basic ${s}`),
          fc.uint8Array({ maxLength: 100 }).map((b) => `Basic ${Buffer.from(b).toString('base64')}`),
          fc.uint8Array({ maxLength: 100 }).map((b) => `basic\t${Buffer.from(b).toString('base64').replace(/=/g, '')}`),
          fc.string({ unit: fc.constantFrom('A', 'b', '+', '/', '=', ' ', ':', '\t', '\u0000', '\u00ff'), maxLength: 60 }).map((s) => `Basic ${s}`),
        ),
        (h) => {
          const c = parseBasicAuth(h);
          if (c) {
            expect(c.rawUser).not.toContain(':');
            expect(/[\x00-\x1f\x7f]/.test(c.rawUser + Buffer.from(c.passwordBytes).toString('latin1'))).toBe(false);
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('gives back what a client encodes (user without colon, no control characters)', () => {
    const text = (colon: boolean) =>
      fc.string({ unit: 'grapheme', maxLength: 30 }).filter((s) => !/[\x00-\x1f\x7f]/.test(s) && (colon || !s.includes(':')));
    fc.assert(
      fc.property(text(false), text(true), fc.boolean(), (user, password, pad) => {
        let b64 = Buffer.from(`${user}:${password}`, 'utf8').toString('base64');
        if (!pad) b64 = b64.replace(/=+$/, '');
        const c = parseBasicAuth(`Basic ${b64}`);
        expect(c).toBeDefined();
        expect(c!.user).toBe(user);
        expect(c!.password).toBe(password);
        expect(Buffer.from(c!.passwordBytes).toString('utf8')).toBe(password);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('parsers that take anything', () => {
  it('negotiateEncoding returns an offered coding or identity, never throws', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 100 }), (h) => {
        expect([undefined, 'br', 'gzip']).toContain(negotiateEncoding(h));
      }),
      { numRuns: 2000 },
    );
  });

  it('parseForwarded never throws', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('f', 'o', 'r', '=', '"', ';', ',', '\\', ' ', '1', '[', ']', ':'), maxLength: 80 }), (h) => {
        const els = parseForwarded(h);
        expect(Array.isArray(els)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('static files: path checks', () => {
  it('no accepted path has a segment that leaves the directory', () => {
    const root = '/srv/www';
    const piece = fc.constantFrom('..', '.', '', 'a', '%2e', '\u0000', '\\', '.git', '\u00c0\u00ae', 'b.txt', '/', '//', '..\\');
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 10 }), fc.constantFrom<'ignore' | 'allow'>('ignore', 'allow'), (pieces, dot) => {
        const p = '/' + pieces.join('/');
        const segs = safeSegments(p, dot);
        if (!segs) return;
        for (const s of segs) {
          expect(s).not.toBe('..');
          expect(s).not.toBe('.');
          expect(s).not.toMatch(/[\\/\x00]/);
        }
        const full = path.join(root, ...segs);
        expect(full === root || full.startsWith(root + '/')).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('URL map', () => {
  it('SCRIPT_NAME + PATH_INFO is the same before and after dispatch, and follows PEP 3333', async () => {
    const seg = fc.constantFrom('a', 'api', 'v2', 'b', 'caf\u00e9', 'x y');
    const prefix = fc.array(seg, { maxLength: 3 }).map((s) => '/' + s.join('/'));
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(prefix, { maxLength: 5 }), fc.array(seg, { maxLength: 5 }), fc.boolean(), async (prefixes, pathSegs, trailing) => {
        const pathInfo = pathSegs.length ? '/' + pathSegs.join('/') + (trailing ? '/' : '') : trailing ? '/' : '';
        const raw = Buffer.from(pathInfo, 'utf8').toString('latin1');
        let seen: { s: string; p: string } | undefined;
        const app: App = (e, sr) => {
          seen = { s: e.SCRIPT_NAME, p: e.PATH_INFO };
          sr('200 OK', [['Content-Type', 'text/plain']]);
          return [];
        };
        const table = Object.fromEntries(prefixes.map((p) => [p, validator(app)]));
        const req = makeRequest({ SCRIPT_NAME: '/base', PATH_INFO: raw });
        await req.run(validator(urlMap(table)));
        if (!seen) return; // 404: nothing mounted there
        expect(seen.s + seen.p).toBe('/base' + raw);
        expect(seen.p === '' || seen.p.startsWith('/')).toBe(true);
      }),
      { numRuns: 300, interruptAfterTimeLimit: 5_000 },
    );
  });
});
