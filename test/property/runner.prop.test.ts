// fast-check invariants of the app runner and wsgi.input: any chunks arrive intact and in order;
// close() runs exactly once whatever the app or the client does; no more bytes than a declared
// Content-Length go out; any chunking of a request body and any reads give back the body.

import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BodyQueue } from '../../src/runner/input.js';
import type { App, Body, Chunk, HeaderList, StartResponse } from '../../src/types.js';
import { makeRequest, toBytes, within } from '../helpers/recording-sink.js';

const run = { numRuns: 200, interruptAfterTimeLimit: 5_000 };

const chunk: fc.Arbitrary<Chunk> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
  { weight: 3, arbitrary: fc.uint8Array({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.constantFrom<Chunk>('', new Uint8Array(0)) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1000, maxLength: 5000 }) },
);

type Mode = 'array' | 'generator' | 'async-generator' | 'promise-app' | 'write';
const mode = fc.constantFrom<Mode>('array', 'generator', 'async-generator', 'promise-app', 'write');

const concat = (chunks: Chunk[]): Buffer => Buffer.concat(chunks.map(toBytes));

/** An app that sends `chunks` under `headers` the way `m` says. */
function appFor(m: Mode, chunks: Chunk[], headers: HeaderList): App {
  switch (m) {
    case 'array':
      return (_e, sr) => {
        sr('200 OK', headers);
        return [...chunks];
      };
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
    case 'promise-app':
      return async (_e, sr) => {
        await Promise.resolve();
        sr('200 OK', headers);
        return [...chunks];
      };
    case 'write':
      return async (_e, sr: StartResponse) => {
        const write = sr('200 OK', headers);
        const half = chunks.length >> 1;
        for (const c of chunks.slice(0, half)) await write(c);
        return chunks.slice(half);
      };
  }
}

describe('runner properties', () => {
  it('sends any sequence of chunks, sync or async, intact and in order', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(chunk, { maxLength: 12 }), mode, fc.boolean(), async (chunks, m, asyncWrites) => {
        const req = makeRequest({}, undefined, { sink: { asyncWrites } });
        const result = await within(req.run(appFor(m, chunks, [['Content-Type', 'application/octet-stream']])), 2_000);
        const expected = concat(chunks);
        expect(result.outcome).toBe('ok');
        expect(Buffer.compare(req.sink.collect(), expected)).toBe(0);
        expect(req.sink.kinds[0]).toBe('start');
        expect(req.sink.kinds.at(-1)).toBe('end');
        expect(req.sink.kinds.filter((k) => k === 'start' || k === 'end')).toEqual(['start', 'end']);
        expect(req.sink.kinds).not.toContain('abort');
        for (const c of req.sink.calls) if (c.kind === 'write') expect(c.chunk.length).toBeGreaterThan(0);
        if (expected.length === 0) {
          expect(req.sink.head.chunk).toBeNull();
          expect(req.sink.header('Content-Length')).toEqual(['0']);
        } else {
          expect(req.sink.head.chunk?.length).toBeGreaterThan(0);
        }
      }),
      run,
    );
  });

  it('calls close() exactly once, last, whether the app throws or the client aborts at any point', async () => {
    const scenario = fc.record({
      chunks: fc.array(fc.string({ minLength: 1, maxLength: 5 }), { maxLength: 8 }),
      async: fc.boolean(),
      throwAt: fc.option(fc.nat({ max: 8 }), { nil: undefined }), // the body throws before chunk k
      abortAt: fc.option(fc.integer({ min: 1, max: 8 }), { nil: undefined }), // client gone at write k
      stuckAt: fc.option(fc.nat({ max: 8 }), { nil: undefined }), // async body hangs at chunk k
      closeThrows: fc.boolean(),
      asyncClose: fc.boolean(),
      asyncWrites: fc.boolean(),
      throwValue: fc.constantFrom<unknown>(new Error('boom'), 'a string', undefined, null, 42),
    });
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const req = makeRequest({}, undefined, {
          sink: { asyncWrites: s.asyncWrites, onWrite: (n) => n === s.abortAt && req.controller.abort() },
          releaseOnAbort: true,
        });
        let closes = 0;
        const close = () => {
          closes++;
          req.sink.timeline.push('close');
          if (s.closeThrows) {
            if (s.asyncClose) return Promise.reject(new Error('close failed'));
            throw new Error('close failed');
          }
          return s.asyncClose ? Promise.resolve() : undefined;
        };
        const stuck = new Promise<never>(() => {});
        function* syncBody(): Generator<Chunk> {
          for (let i = 0; i <= s.chunks.length; i++) {
            if (i === s.throwAt) throw s.throwValue;
            if (i < s.chunks.length) yield s.chunks[i]!;
          }
        }
        async function* asyncBody(): AsyncGenerator<Chunk> {
          for (let i = 0; i <= s.chunks.length; i++) {
            if (i === s.stuckAt) {
              setImmediate(() => req.controller.abort());
              await stuck;
            }
            if (i === s.throwAt) throw s.throwValue;
            if (i < s.chunks.length) yield s.chunks[i]!;
          }
        }
        const app: App = (_e, sr) => {
          sr('200 OK', [['Content-Type', 'text/plain']]);
          const body = s.async ? asyncBody() : syncBody();
          return Object.assign(body, { close }) as Body;
        };
        const result = await within(req.run(app), 2_000, 'runApp');
        expect(closes).toBe(1);
        expect(req.sink.timeline.at(-1)).toBe('close');
        const count = (k: string) => req.sink.kinds.filter((x) => x === k).length;
        expect(count('start')).toBeLessThanOrEqual(1);
        expect(count('end') + count('abort')).toBeLessThanOrEqual(1);
        if (result.outcome === 'ok') {
          expect(count('end')).toBe(1);
          expect(Buffer.from(req.sink.collect()).toString('utf8')).toBe(s.chunks.join(''));
        }
        if (result.outcome === 'aborted') expect(count('end')).toBe(0);
      }),
      run,
    );
  });

  it('never sends more bytes than a declared Content-Length, and sends exactly that many when the body has them', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(chunk, { maxLength: 10 }),
        mode,
        fc.nat({ max: 12_000 }),
        fc.boolean(),
        async (chunks, m, rawLength, asyncWrites) => {
          const full = concat(chunks);
          const declared = rawLength % (full.length + 6);
          const req = makeRequest({}, undefined, { sink: { asyncWrites } });
          const result = await within(req.run(appFor(m, chunks, [['Content-Length', String(declared)]])), 2_000);
          const sent = req.sink.collect();
          expect(sent.length).toBeLessThanOrEqual(declared);
          expect(Buffer.compare(sent, full.subarray(0, sent.length))).toBe(0);
          expect(result.bytes).toBe(sent.length);
          if (full.length >= declared) {
            expect(sent.length).toBe(declared);
            expect(result.outcome).toBe('ok');
            expect(req.sink.kinds.at(-1)).toBe('end');
          } else {
            expect(result.outcome).toBe('error');
            expect(req.sink.kinds.at(-1)).toBe('abort');
            expect(req.sink.kinds).not.toContain('end');
          }
        },
      ),
      run,
    );
  });
});

type ReadOp = { op: 'read'; size: number } | { op: 'readAll' } | { op: 'readline'; size?: number } | { op: 'iterate' };

const readOp: fc.Arbitrary<ReadOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('read' as const), size: fc.integer({ min: 1, max: 300 }) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'readAll' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('readline' as const), size: fc.option(fc.integer({ min: 1, max: 100 }), { nil: undefined }) }),
  },
  { weight: 2, arbitrary: fc.constant({ op: 'iterate' as const }) },
);

/** `body` cut at `cuts` (offsets, any order, repeats allowed: empty chunks). */
function split(body: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = cuts.map((c) => c % (body.length + 1)).sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let last = 0;
  for (const p of points) {
    out.push(body.subarray(last, p));
    last = p;
  }
  out.push(body.subarray(last));
  return out;
}

describe('BodyQueue properties', () => {
  it('gives back exactly the body for any chunking and any sequence of reads', async () => {
    const newline = fc.uint8Array({ maxLength: 600 }).map((b) => b.map((x) => (x % 7 === 0 ? 0x0a : x)));
    await fc.assert(
      fc.asyncProperty(
        newline,
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.array(readOp, { minLength: 1, maxLength: 20 }),
        fc.boolean(),
        fc.integer({ min: 1, max: 200 }),
        fc.uint8Array({ maxLength: 30 }),
        fc.array(fc.boolean(), { maxLength: 14 }),
        async (body, cuts, ops, declared, highWaterMark, extra, yields) => {
          let resume: (() => void) | null = null;
          const q = new BodyQueue({
            length: declared ? body.length : undefined,
            highWaterMark,
            onDemand: () => {
              const r = resume;
              resume = null;
              r?.();
            },
          });
          const chunks = split(body, cuts);
          // Bytes past CONTENT_LENGTH that a misbehaving peer sends must never come out.
          if (declared) chunks.push(extra);
          const producer = (async () => {
            for (let i = 0; i < chunks.length; i++) {
              if (yields[i]) await new Promise((r) => setImmediate(r));
              if (!q.push(chunks[i]!)) await new Promise<void>((r) => (resume = r));
            }
            q.end();
          })();
          const got: Uint8Array[] = [];
          for (let i = 0; ; i++) {
            const o = ops[i % ops.length]!;
            const reading =
              o.op === 'read'
                ? q.read(o.size)
                : o.op === 'readAll'
                  ? q.read()
                  : o.op === 'readline'
                    ? q.readline(o.size)
                    : q[Symbol.asyncIterator]()
                        .next()
                        .then((r) => (r.done ? new Uint8Array(0) : r.value));
            const piece = await within(reading, 1_000, `${o.op} (a stuck reader)`);
            if (o.op === 'read') expect(piece.length).toBeLessThanOrEqual(o.size);
            if (o.op === 'readline' && o.size !== undefined) expect(piece.length).toBeLessThanOrEqual(o.size);
            if (piece.length === 0) break;
            got.push(new Uint8Array(piece));
            expect(i).toBeLessThan(body.length + 2);
          }
          await within(producer, 1_000, 'the producer');
          expect(Buffer.compare(Buffer.concat(got), body)).toBe(0);
        },
      ),
      run,
    );
  });
});
