// fast-check invariants of the FastCGI codec: encode then decode gives the records back under
// any chunking, random bytes give records or a ProtocolError (never another exception), and
// name-value pairs survive a round trip, split across records or not.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../src/errors.js';
import {
  type FcgiRecord,
  RecordDecoder,
  decodeParams,
  encodeParams,
  encodeRecord,
  encodeStream,
} from '../../src/protocols/fastcgi/codec.js';
import { RecordType } from '../../src/protocols/fastcgi/constants.js';

const run = { numRuns: 300, interruptAfterTimeLimit: 4_000 };

interface Rec {
  type: number;
  requestId: number;
  content: Uint8Array;
}

const record: fc.Arbitrary<Rec> = fc.record({
  type: fc.integer({ min: 0, max: 255 }),
  requestId: fc.integer({ min: 0, max: 0xffff }),
  content: fc.oneof(
    { weight: 4, arbitrary: fc.uint8Array({ maxLength: 40 }) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 200, maxLength: 3000 }) },
  ),
});

/** Records as another sender may frame them: any padding length, any padding bytes. */
const rawRecord = fc.record({
  rec: record,
  padding: fc.uint8Array({ maxLength: 255 }),
  reserved: fc.integer({ min: 0, max: 255 }),
});

function frameRaw({ rec, padding, reserved }: { rec: Rec; padding: Uint8Array; reserved: number }): Uint8Array {
  const header = Buffer.from([
    1,
    rec.type,
    rec.requestId >>> 8,
    rec.requestId & 0xff,
    rec.content.length >>> 8,
    rec.content.length & 0xff,
    padding.length,
    reserved,
  ]);
  return Buffer.concat([header, rec.content, padding]);
}

/** Cut points for `bytes`, as sorted offsets. */
function cutsFor(length: number): fc.Arbitrary<number[]> {
  return fc
    .array(fc.integer({ min: 0, max: length }), { maxLength: 30 })
    .map((cuts) => [...cuts].sort((a, b) => a - b));
}

function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    chunks.push(bytes.subarray(from, cut));
    from = cut;
  }
  return chunks;
}

function decodeAll(chunks: Uint8Array[]): FcgiRecord[] {
  const decoder = new RecordDecoder();
  const out: FcgiRecord[] = [];
  // Copy each content: a subarray is only good as long as its chunk is.
  for (const chunk of chunks) decoder.push(chunk, (rec) => out.push({ ...rec, content: Uint8Array.from(rec.content) }));
  expect(decoder.buffered).toBe(0);
  return out;
}

function normalise(recs: readonly Rec[]) {
  return recs.map((r) => ({ type: r.type, requestId: r.requestId, content: Buffer.from(r.content).toString('hex') }));
}

describe('FastCGI records', () => {
  it('encodeRecord then decode gives the records back, padded to 8', () => {
    fc.assert(
      fc.property(fc.array(record, { maxLength: 20 }), (recs) => {
        const parts = recs.map((r) => encodeRecord(r.type, r.requestId, r.content));
        for (const p of parts) expect(p.length % 8).toBe(0);
        expect(normalise(decodeAll([Buffer.concat(parts)]))).toEqual(normalise(recs));
      }),
      run,
    );
  });

  it('any chunking gives the same records, whatever the padding', () => {
    const stream = fc.array(rawRecord, { maxLength: 12 }).chain((raws) => {
      const wire = Buffer.concat(raws.map(frameRaw));
      return fc.tuple(fc.constant(raws), fc.constant(wire), cutsFor(wire.length));
    });
    fc.assert(
      fc.property(stream, ([raws, wire, cuts]) => {
        const expected = normalise(raws.map((r) => r.rec));
        expect(normalise(decodeAll(split(wire, cuts)))).toEqual(expected);
        expect(normalise(decodeAll([wire]))).toEqual(expected);
      }),
      run,
    );
  });

  it('with stream types, any chunking gives the same bytes per stream, in pieces that are never empty nor copied', () => {
    // STDIN/DATA records that straddle chunks come in pieces (RecordDecoder `streams`): joined
    // in order they are the records' contents; an empty record still comes as one.
    const streams: ReadonlySet<number> = new Set([RecordType.Stdin, RecordType.Data]);
    const stream = fc.array(rawRecord, { maxLength: 12 }).chain((raws) => {
      const wire = Buffer.concat(raws.map(frameRaw));
      return fc.tuple(fc.constant(raws), fc.constant(wire), cutsFor(wire.length));
    });
    fc.assert(
      fc.property(stream, ([raws, wire, cuts]) => {
        const decoder = new RecordDecoder({ streams });
        const got: Rec[] = [];
        const chunks = split(wire, cuts);
        for (const chunk of chunks) {
          decoder.push(chunk, (rec) => {
            if (streams.has(rec.type) && rec.content.length > 0) {
              // a view of the chunk being pushed, not a copy
              expect(rec.content.buffer).toBe(chunk.buffer);
            }
            const last = got[got.length - 1];
            const open = last && streams.has(rec.type) && last.type === rec.type && last.requestId === rec.requestId && (last as Rec & { left?: number }).left! > 0;
            if (open) {
              (last as Rec & { left: number }).left -= rec.content.length;
              last.content = Buffer.concat([last.content, rec.content]);
              expect(rec.content.length).toBeGreaterThan(0);
            } else {
              const want = raws[got.length]!.rec.content.length;
              got.push(Object.assign({ ...rec, content: Uint8Array.from(rec.content) }, { left: want - rec.content.length }));
            }
          });
        }
        expect(decoder.buffered).toBe(0);
        expect(normalise(got)).toEqual(normalise(raws.map((r) => r.rec)));
      }),
      run,
    );
  });

  it('encodeStream of any size reads back as the same bytes in records of at most 65535', () => {
    const sized = fc.oneof(
      fc.integer({ min: 0, max: 300 }),
      fc.integer({ min: 65530, max: 65545 }),
      fc.integer({ min: 0, max: 200_000 }),
    );
    fc.assert(
      fc.property(sized, fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 1, max: 20 }), (size, id, parts) => {
        const data = new Uint8Array(size).map((_, i) => (i * 31 + 7) & 0xff);
        const out: Uint8Array[] = [];
        encodeStream(RecordType.Stdout, id, data, out);
        const wire = Buffer.concat(out);
        const step = Math.max(1, Math.floor(wire.length / parts));
        const cuts = Array.from({ length: parts - 1 }, (_, i) => Math.min(wire.length, (i + 1) * step + i));
        const recs = decodeAll(split(wire, cuts));
        expect(recs.every((r) => r.type === RecordType.Stdout && r.requestId === id)).toBe(true);
        expect(recs.every((r) => r.content.length > 0 && r.content.length <= 65535)).toBe(true);
        expect(recs.length).toBe(Math.ceil(size / 65535));
        expect(Buffer.concat(recs.map((r) => r.content)).equals(data)).toBe(true);
        expect(wire.length % 8).toBe(0);
      }),
      { ...run, numRuns: 60 },
    );
  });

  it('random bytes give records or a ProtocolError, never another exception', () => {
    // Mostly-valid streams with bytes flipped reach deeper than pure noise.
    const corrupted = fc.array(rawRecord, { maxLength: 6 }).chain((raws) => {
      const wire = Buffer.concat(raws.map(frameRaw));
      return fc.tuple(
        fc.constant(wire),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
      ).map(([w, flips]) => {
        const copy = Buffer.from(w);
        for (const [at, byte] of flips) if (copy.length > 0) copy[at % copy.length] = byte;
        return copy as Uint8Array;
      });
    });
    const noise = fc.uint8Array({ maxLength: 600 }).map((b) => {
      if (b.length > 0 && b[0]! % 4 !== 0) b[0] = 1; // a valid version now and then
      return b;
    });
    const input = fc
      .oneof(noise, corrupted)
      .chain((bytes) => fc.tuple(fc.constant(bytes), cutsFor(bytes.length)));
    fc.assert(
      fc.property(input, ([bytes, cuts]) => {
        const decoder = new RecordDecoder();
        try {
          for (const chunk of split(bytes, cuts)) {
            decoder.push(chunk, (rec) => {
              expect(rec.content.length).toBeLessThanOrEqual(65535);
            });
          }
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
          expect(err.code).toMatch(/^TSGI_FCGI_/);
        }
        expect(decoder.buffered).toBeLessThanOrEqual(8 + 65535 + 255);
      }),
      run,
    );
  });
});

describe('FastCGI name-value pairs', () => {
  const latin1Char = fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c));
  // Lengths on both sides of 127, where the length field grows from 1 byte to 4.
  const latin1 = fc.oneof(
    fc.string({ unit: latin1Char, maxLength: 12 }),
    fc.string({ unit: latin1Char, minLength: 120, maxLength: 135 }),
    fc.string({ unit: latin1Char, minLength: 0, maxLength: 400 }),
  );
  const pairs = fc.array(fc.tuple(latin1, latin1), { maxLength: 12 });

  function expected(list: [string, string][]): Record<string, string> {
    const out: Record<string, string> = Object.create(null);
    for (const [n, v] of list) out[n] = v;
    return out;
  }

  it('encode then decode gives the pairs back (later duplicates win)', () => {
    fc.assert(
      fc.property(pairs, (list) => {
        const wire = encodeParams(list);
        const into: Record<string, string> = Object.create(null);
        expect(decodeParams(wire, into)).toBe(list.length);
        expect(into).toEqual(expected(list));
      }),
      run,
    );
  });

  it('pairs split across PARAMS records at any points decode once joined', () => {
    const input = pairs.chain((list) => {
      const params = encodeParams(list);
      return fc.tuple(fc.constant(list), fc.constant(params), cutsFor(params.length));
    });
    fc.assert(
      fc.property(input, ([list, params, cuts]) => {
        const wire = Buffer.concat([
          ...split(params, cuts)
            .filter((p) => p.length > 0)
            .map((p) => encodeRecord(RecordType.Params, 1, p)),
          encodeRecord(RecordType.Params, 1),
        ]);
        const recs = decodeAll(split(wire, cuts.map((c) => Math.min(c, wire.length))));
        expect(recs.at(-1)?.content.length).toBe(0);
        const into: Record<string, string> = Object.create(null);
        expect(decodeParams(Buffer.concat(recs.map((r) => r.content)), into)).toBe(list.length);
        expect(into).toEqual(expected(list));
      }),
      run,
    );
  });

  it('random bytes give pairs or a ProtocolError, never another exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          decodeParams(bytes, Object.create(null));
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
          expect(err.code).toBe('TSGI_FCGI_BAD_PARAMS');
        }
      }),
      run,
    );
  });
});

describe('FastCGI header: the hand-read fast path agrees with the binary-parser layout', () => {
  it('any 8 bytes read the same both ways', async () => {
    const { recordHeaderLayout, readRecordHeader, beginRequestLayout, decodeBeginRequest } = await import('../../src/protocols/fastcgi/codec.js');
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 8, maxLength: 8 }), (b) => {
        const viaParser = recordHeaderLayout.parse(Buffer.from(b)) as Record<string, number>;
        const fast = readRecordHeader(b);
        for (const k of ['version', 'type', 'requestId', 'contentLength', 'paddingLength'] as const) expect(fast[k]).toBe(viaParser[k]);
        expect(decodeBeginRequest(b)).toEqual(beginRequestLayout.parse(Buffer.from(b)));
      }),
      run,
    );
  });
});
