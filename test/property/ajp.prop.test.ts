// fast-check invariants of the AJP13 codec: FORWARD_REQUEST and SEND_HEADERS round trips, any
// chunking gives the same packets, body splitting respects the packet size, and arbitrary bytes
// give packets or a ProtocolError, never another exception. Bound by runs and time.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../src/errors.js';
import {
  type ForwardRequest,
  type ForwardRequestInit,
  PacketDecoder,
  decodeBodyChunk,
  decodeContainerPacket,
  decodeForwardRequest,
  encodeBodyPacket,
  encodeCPing,
  encodeForwardRequest,
  encodeSendBodyChunk,
  encodeSendHeaders,
} from '../../src/protocols/ajp/codec.js';
import { MethodCode, RequestHeaderCode, ResponseHeaderCode } from '../../src/protocols/ajp/constants.js';

const RUNS = { numRuns: 300, interruptAfterTimeLimit: 5_000 };

const latin1Char = fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c));
const latin1 = (maxLength = 24) => fc.string({ unit: latin1Char, maxLength });
const token = fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz-_0129'), minLength: 1, maxLength: 12 });
/** Sometimes a coded name in random case, sometimes any token. */
const randomCase = (name: string) =>
  fc.array(fc.boolean(), { minLength: name.length, maxLength: name.length }).map((up) =>
    Array.from(name, (c, i) => (up[i] ? c.toUpperCase() : c)).join(''),
  );
const requestHeaderName = fc.oneof(fc.constantFrom(...Object.keys(RequestHeaderCode)).chain(randomCase), token);
const responseHeaderName = fc.oneof(fc.constantFrom(...Object.keys(ResponseHeaderCode)).chain(randomCase), token);
const method = fc.oneof(fc.constantFrom(...Object.keys(MethodCode)), token);

const forwardRequestInit: fc.Arbitrary<ForwardRequestInit> = fc.record(
  {
    method,
    protocol: latin1(),
    requestUri: latin1(),
    remoteAddr: latin1(),
    remoteHost: fc.option(latin1(), { nil: null }),
    serverName: latin1(),
    serverPort: fc.integer({ min: 0, max: 0xffff }),
    isSsl: fc.boolean(),
    headers: fc.array(fc.tuple(requestHeaderName, latin1(40)), { maxLength: 12 }),
    attributes: fc.record(
      {
        context: latin1(),
        servletPath: latin1(),
        remoteUser: latin1(),
        authType: latin1(),
        queryString: latin1(),
        route: latin1(),
        sslCert: latin1(),
        sslCipher: latin1(),
        sslSession: latin1(),
        sslKeySize: fc.integer({ min: 0, max: 0xffff }),
        secret: latin1(),
      },
      { requiredKeys: [] },
    ),
    requestAttributes: fc.array(fc.tuple(latin1(), latin1()), { maxLength: 6 }),
  },
  { requiredKeys: [] },
);

/** What decodeForwardRequest must give back for an encoded `init`. */
function expected(init: ForwardRequestInit): ForwardRequest {
  const m = init.method ?? 'GET';
  const listed = Object.hasOwn(MethodCode, m);
  const attributes: ForwardRequest['attributes'] = { ...init.attributes };
  if (!listed) attributes.storedMethod = m;
  return {
    method: m,
    protocol: init.protocol ?? 'HTTP/1.1',
    requestUri: init.requestUri ?? '/',
    remoteAddr: init.remoteAddr ?? '127.0.0.1',
    remoteHost: init.remoteHost ?? null,
    serverName: init.serverName ?? 'localhost',
    serverPort: init.serverPort ?? 80,
    isSsl: init.isSsl ?? false,
    headers: (init.headers ?? []).map(([n, v]) => [Object.hasOwn(RequestHeaderCode, n.toLowerCase()) ? n.toLowerCase() : n, v]),
    attributes,
    requestAttributes: init.requestAttributes ?? [],
  };
}

/** Splits `bytes` at the given cut points (any numbers; folded into range, sorted). */
function chunk(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const p of points) {
    out.push(bytes.subarray(from, p));
    from = p;
  }
  out.push(bytes.subarray(from));
  return out;
}

function decodeAll(chunks: Uint8Array[], opts?: ConstructorParameters<typeof PacketDecoder>[0]): string[] {
  const decoder = new PacketDecoder(opts);
  const out: string[] = [];
  for (const c of chunks) decoder.push(c, (p) => out.push(Buffer.from(p).toString('hex')));
  return out;
}

function onlyProtocolErrors(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
  }
}

describe('AJP13 codec properties', () => {
  it('encodeForwardRequest -> PacketDecoder -> decodeForwardRequest gives the request back', () => {
    fc.assert(
      fc.property(forwardRequestInit, (init) => {
        const packet = encodeForwardRequest(init);
        const payloads: Uint8Array[] = [];
        new PacketDecoder({ maxPacketSize: 65536 }).push(packet, (p) => payloads.push(p));
        expect(payloads).toHaveLength(1);
        expect(decodeForwardRequest(payloads[0])).toEqual(expected(init));
      }),
      RUNS,
    );
  });

  it('any chunking of a packet stream gives the same packets', () => {
    const packet = fc.oneof(
      forwardRequestInit.map(encodeForwardRequest),
      fc.uint8Array({ maxLength: 300 }).map(encodeBodyPacket),
      fc.constant(encodeCPing()),
    );
    fc.assert(
      fc.property(fc.array(packet, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 20 }), (list, cuts) => {
        const stream = Buffer.concat(list);
        const whole = decodeAll([stream], { maxPacketSize: 65536 });
        expect(whole).toEqual(list.map((p) => Buffer.from(p.subarray(4)).toString('hex')));
        expect(decodeAll(chunk(stream, cuts), { maxPacketSize: 65536 })).toEqual(whole);
      }),
      RUNS,
    );
  });

  it('arbitrary bytes give packets or a ProtocolError, never another exception', () => {
    // Mostly well-framed garbage: a 12 34 header with a plausible length, then random payload.
    const framed = fc
      .uint8Array({ maxLength: 200 })
      .map((p) => Buffer.concat([Buffer.from([0x12, 0x34, p.length >> 8, p.length & 0xff]), p]));
    const bytes = fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.array(framed, { maxLength: 4 }).map((l) => Buffer.concat(l)));
    fc.assert(
      fc.property(bytes, fc.array(fc.nat(), { maxLength: 10 }), (input, cuts) => {
        onlyProtocolErrors(() => {
          const decoder = new PacketDecoder();
          for (const c of chunk(input, cuts)) {
            decoder.push(c, (payload) => {
              onlyProtocolErrors(() => decodeForwardRequest(payload));
              onlyProtocolErrors(() => decodeBodyChunk(payload));
            });
          }
        });
      }),
      RUNS,
    );
  });

  it('arbitrary FORWARD_REQUEST payloads decode or give TSGI_AJP_BAD_REQUEST', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (tail) => {
        const payload = Buffer.concat([Buffer.from([0x02]), tail]);
        try {
          decodeForwardRequest(payload);
        } catch (err) {
          expect(err).toBeInstanceOf(ProtocolError);
          expect((err as ProtocolError).code).toBe('TSGI_AJP_BAD_REQUEST');
        }
      }),
      RUNS,
    );
  });

  it('arbitrary container payloads decode or give a ProtocolError', () => {
    fc.assert(
      fc.property(fc.constantFrom(3, 4, 5, 6, 9, 0, 0xff), fc.uint8Array({ maxLength: 100 }), (prefix, tail) => {
        onlyProtocolErrors(() => decodeContainerPacket(Buffer.concat([Buffer.from([prefix]), tail])));
      }),
      RUNS,
    );
  });

  it('encodeSendHeaders -> decodeContainerPacket gives status and headers back', () => {
    const header = fc.tuple(responseHeaderName, latin1(40));
    fc.assert(
      fc.property(fc.integer({ min: 100, max: 999 }), latin1(), fc.array(header, { maxLength: 12 }), (status, message, headers) => {
        const packet = encodeSendHeaders(status, message, headers);
        const payloads: Uint8Array[] = [];
        new PacketDecoder({ magic: 'container' }).push(packet, (p) => payloads.push(p));
        const canonical = new Map(Object.keys(ResponseHeaderCode).map((n) => [n.toLowerCase(), n]));
        expect(decodeContainerPacket(payloads[0])).toEqual({
          type: 'headers',
          status,
          message,
          headers: headers.map(([n, v]) => [canonical.get(n.toLowerCase()) ?? n, v]),
        });
      }),
      RUNS,
    );
  });

  it('SEND_BODY_CHUNK packets fit the packet size and carry the data in order', () => {
    fc.assert(
      fc.property(fc.integer({ min: 9, max: 600 }), fc.uint8Array({ maxLength: 3000 }), (size, data) => {
        const list: Uint8Array[] = [];
        encodeSendBodyChunk(data, size, list);
        const parts: Uint8Array[] = [];
        const decoder = new PacketDecoder({ magic: 'container', maxPacketSize: size });
        decoder.push(Buffer.concat(list), (payload) => {
          expect(payload.length + 4).toBeLessThanOrEqual(size);
          const packet = decodeContainerPacket(payload);
          if (packet.type !== 'body') throw new Error(packet.type);
          expect(packet.data.length).toBeGreaterThan(0);
          parts.push(packet.data);
        });
        expect(Buffer.concat(parts).equals(Buffer.from(data))).toBe(true);
        expect(parts.length).toBe(Math.ceil(data.length / (size - 8)));
      }),
      RUNS,
    );
  });
});

describe('AJP packet header: the hand-read fast path agrees with the binary-parser layout', () => {
  it('a packet whose header binary-parser reads as magic 0x1234 and length n yields an n-byte payload', async () => {
    const { packetHeaderLayout, PacketDecoder: Decoder } = await import('../../src/protocols/ajp/codec.js');
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 8188 }), (n) => {
        const header = Buffer.from([0x12, 0x34, n >>> 8, n & 0xff]);
        const h = packetHeaderLayout.parse(header) as { magic: number; length: number };
        expect(h).toEqual({ magic: 0x1234, length: n });
        const got: number[] = [];
        new Decoder({ maxPacketSize: 8192 }).push(Buffer.concat([header, Buffer.alloc(n, 7)]), (p) => got.push(p.length));
        expect(got).toEqual([h.length]);
      }),
      { numRuns: 200 },
    );
  });
});
