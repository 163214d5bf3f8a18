// Properties of the SCGI request head codec: encode then decode gives the headers back, any
// chunking gives the same result, and no input makes the decoder throw anything but RequestError.

import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RequestError } from '../../src/errors.js';
import { RequestHeadDecoder, encodeRequest } from '../../src/protocols/scgi/codec.js';

const TIME_LIMIT_MS = 3000;
const params = { numRuns: 3000, plugins: [fc.interruptAfterTimeLimit(TIME_LIMIT_MS)] };

const latin1Char = fc.integer({ min: 1, max: 0xff }).map((c) => String.fromCharCode(c));
const headerName = fc
  .string({ unit: latin1Char, minLength: 1, maxLength: 16 })
  .filter((name) => name !== 'CONTENT_LENGTH' && name !== 'SCGI');
const headerValue = fc.string({ unit: latin1Char, maxLength: 32 });

/** A valid request: CONTENT_LENGTH first, SCGI=1 anywhere after it, then the body. */
const request = fc
  .record({
    extra: fc.uniqueArray(fc.tuple(headerName, headerValue), { selector: ([name]) => name, maxLength: 10 }),
    scgiAt: fc.nat(),
    body: fc.uint8Array({ maxLength: 48 }),
  })
  .map(({ extra, scgiAt, body }) => {
    const headers: Array<[string, string]> = [...extra];
    headers.splice(scgiAt % (extra.length + 1), 0, ['SCGI', '1']);
    headers.unshift(['CONTENT_LENGTH', String(body.length)]);
    return { headers, body, bytes: encodeRequest(headers, body) };
  });

const maxHeaderBytes = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.nat({ max: 400 }) },
);

/** Cut points, as fractions of the length so they fit any input. */
const cuts = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 8 });

function split(bytes: Uint8Array, fractions: number[]): Uint8Array[] {
  const offsets = fractions.map((f) => Math.floor(f * bytes.length)).sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const to of [...offsets, bytes.length]) {
    chunks.push(bytes.slice(from, to));
    from = to;
  }
  return chunks;
}

type Outcome =
  | { kind: 'head'; headers: Record<string, string>; contentLength: number; rest: string }
  | { kind: 'incomplete' }
  | { kind: 'error'; code: string; status: number };

/** Feeds the chunks; a head's `rest` is its body plus every chunk left unpushed, as hex. */
function run(chunks: Uint8Array[], maxHeaderBytes?: number): Outcome {
  const decoder = new RequestHeadDecoder({ maxHeaderBytes });
  for (let k = 0; k < chunks.length; k++) {
    let head;
    try {
      head = decoder.push(chunks[k]!);
    } catch (error) {
      // Anything but a RequestError fails the property here.
      if (!(error instanceof RequestError)) throw error;
      expect(error.code).toMatch(/^TSGI_SCGI_/);
      return { kind: 'error', code: error.code, status: error.status };
    }
    if (head) {
      const rest = Buffer.concat([head.body, ...chunks.slice(k + 1)]).toString('hex');
      return { kind: 'head', headers: { ...head.headers }, contentLength: head.contentLength, rest };
    }
  }
  return { kind: 'incomplete' };
}

/** Valid requests with a few bytes overwritten, removed or cut off. */
const damaged = fc
  .record({
    req: request,
    writes: fc.array(fc.tuple(fc.nat(), fc.constantFrom(0x00, 0x2c, 0x3a, 0x30, 0x31, 0x39, 0x2d, 0x41, 0xff)), {
      maxLength: 2,
    }),
    drop: fc.option(fc.nat(), { freq: 2 }),
    keep: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { freq: 2 }),
  })
  .map(({ req, writes, drop, keep }) => {
    let bytes = Uint8Array.from(req.bytes);
    for (const [at, byte] of writes) bytes[at % bytes.length] = byte;
    if (drop !== null) {
      const at = drop % bytes.length;
      bytes = Uint8Array.from([...bytes.subarray(0, at), ...bytes.subarray(at + 1)]);
    }
    return keep === null ? bytes : bytes.slice(0, Math.ceil(keep * bytes.length));
  });

/** A well-formed netstring around NUL-separated strings that may or may not be valid headers. */
const looseHeaders = fc
  .record({
    strings: fc.array(
      fc.oneof(fc.constantFrom('CONTENT_LENGTH', 'SCGI', '1', '0', '42', '-1', '', '__proto__'), headerValue),
      { maxLength: 9 },
    ),
    trailingNul: fc.boolean(),
    body: fc.uint8Array({ maxLength: 8 }),
  })
  .map(({ strings, trailingNul, body }) => {
    const pairs = strings.join('\0') + (trailingNul && strings.length > 0 ? '\0' : '');
    return Buffer.concat([Buffer.from(`${pairs.length}:${pairs},`, 'latin1'), body]);
  });

const anyBytes = fc.oneof(
  fc.uint8Array({ maxLength: 160 }),
  damaged,
  looseHeaders,
  // A plausible length prefix in front of random bytes reaches the header checks more often.
  fc.tuple(fc.nat({ max: 120 }), fc.uint8Array({ maxLength: 140 })).map(([length, rest]) =>
    Buffer.concat([Buffer.from(`${length}:`), rest]),
  ),
);

describe('SCGI request head properties', () => {
  it('decodes what encodeRequest wrote', () => {
    fc.assert(
      fc.property(request, ({ headers, body, bytes }) => {
        const head = new RequestHeadDecoder().push(bytes);
        expect(head).not.toBeNull();
        expect({ ...head!.headers }).toEqual(Object.fromEntries(headers));
        expect(head!.contentLength).toBe(body.length);
        expect(Buffer.from(head!.body).equals(body)).toBe(true);
      }),
      params,
    );
  });

  it('gives the same head for any chunking of a valid request', () => {
    fc.assert(
      fc.property(request, cuts, ({ headers, body, bytes }, fractions) => {
        expect(run(split(bytes, fractions))).toEqual({
          kind: 'head',
          headers: Object.fromEntries(headers),
          contentLength: body.length,
          rest: Buffer.from(body).toString('hex'),
        });
      }),
      params,
    );
  });

  it('gives a head, null or a RequestError for any bytes, the same however they are chunked', () => {
    fc.assert(
      fc.property(anyBytes, cuts, maxHeaderBytes, (bytes, fractions, maxHeaderBytes) => {
        const whole = run([bytes], maxHeaderBytes);
        expect(run(split(bytes, fractions), maxHeaderBytes)).toEqual(whole);
        if (whole.kind === 'error') {
          expect(whole.status).toBe(whole.code === 'TSGI_SCGI_HEADERS_TOO_LARGE' ? 431 : 400);
        }
      }),
      params,
    );
  });
});
