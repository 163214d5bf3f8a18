// AJP13 codec against byte fixtures: a FORWARD_REQUEST as httpd's mod_proxy_ajp lays it out, body
// packets, the container's replies; decoded and re-encoded both ways, whole and split.

import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../../src/errors.js';
import {
  type ForwardRequest,
  PacketDecoder,
  decodeBodyChunk,
  decodeContainerPacket,
  decodeForwardRequest,
  encodeBodyPacket,
  encodeCPing,
  encodeCPong,
  encodeEndResponse,
  encodeForwardRequest,
  encodeGetBodyChunk,
  encodeResponse,
  encodeSendBodyChunk,
  encodeSendHeaders,
  INLINE_BODY_MAX,
} from '../../../src/protocols/ajp/codec.js';
import { MethodCode } from '../../../src/protocols/ajp/constants.js';

/** Hex with whitespace and `// comments` allowed, one field per line. */
function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\/\/.*$/gm, '').replace(/\s+/g, ''), 'hex');
}

function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

function expectProtocolError(fn: () => unknown, code: string): void {
  const err = catchError(fn);
  expect(err).toBeInstanceOf(ProtocolError);
  expect((err as ProtocolError).code).toBe(code);
}

/** Every payload `decoder` emits for `chunks`, copied (subarrays may share the chunk). */
function packets(chunks: Uint8Array[], opts?: ConstructorParameters<typeof PacketDecoder>[0]): string[] {
  const decoder = new PacketDecoder(opts);
  const out: string[] = [];
  for (const chunk of chunks) decoder.push(chunk, (p) => out.push(toHex(p)));
  expect(decoder.buffered).toBe(0);
  return out;
}

// httpd 2.4 mod_proxy_ajp (ajp_marshal_into_msgb) for
//   POST /app/login?next=%2F HTTP/1.1 from 192.0.2.7:52814 to example.org:80, 10 body bytes,
// with ProxyPass "ajp://...:8009/ secret=s3cr3t" and HostnameLookups Off.
const APACHE_FORWARD_PAYLOAD = `
  02                                              // prefix: FORWARD_REQUEST
  04                                              // method: POST
  0008 485454502f312e31 00                        // protocol "HTTP/1.1"
  000a 2f6170702f6c6f67696e 00                    // req_uri "/app/login" (query goes apart)
  0009 3139322e302e322e37 00                      // remote_addr "192.0.2.7"
  ffff                                            // remote_host: null string, no lookups
  000b 6578616d706c652e6f7267 00                  // server_name "example.org"
  0050                                            // server_port 80
  00                                              // is_ssl false
  0006                                            // num_headers 6
  a00b 000b 6578616d706c652e6f7267 00             // Host: example.org
  a00e 000a 6375726c2f382e352e30 00               // User-Agent: curl/8.5.0
  a001 0003 2a2f2a 00                             // Accept: */*
  a007 0021 6170706c69636174696f6e2f782d7777772d666f726d2d75726c656e636f646564 00
                                                  // Content-Type: application/x-www-form-urlencoded
  a008 0002 3130 00                               // Content-Length: 10
  0007 582d5472616365 00 0003 616263 00           // X-Trace: abc (no code: string name)
  0c 0006 733363723374 00                         // ?secret "s3cr3t", httpd sends it first
  05 0008 6e6578743d253246 00                     // ?query_string "next=%2F"
  0a 000f 414a505f52454d4f54455f504f5254 00 0005 3532383134 00
                                                  // ?req_attribute AJP_REMOTE_PORT=52814
  0a 000e 414a505f4c4f43414c5f41444452 00 0009 3139322e302e322e31 00
                                                  // ?req_attribute AJP_LOCAL_ADDR=192.0.2.1
  ff                                              // request_terminator
`;
const APACHE_FORWARD = Buffer.concat([
  hex('1234 00ef'), // magic, payload length 239
  hex(APACHE_FORWARD_PAYLOAD),
]);
// Content-Length > 0: httpd sends the first body packet right after, unasked.
const APACHE_BODY = hex(`
  1234 000c                                       // magic, payload length 12
  000a 757365723d616c696365                       // data length 10, "user=alice" (no terminator)
`);
const APACHE_REQUEST: ForwardRequest = {
  method: 'POST',
  protocol: 'HTTP/1.1',
  requestUri: '/app/login',
  remoteAddr: '192.0.2.7',
  remoteHost: null,
  serverName: 'example.org',
  serverPort: 80,
  isSsl: false,
  headers: [
    ['host', 'example.org'],
    ['user-agent', 'curl/8.5.0'],
    ['accept', '*/*'],
    ['content-type', 'application/x-www-form-urlencoded'],
    ['content-length', '10'],
    ['X-Trace', 'abc'],
  ],
  attributes: { secret: 's3cr3t', queryString: 'next=%2F' },
  requestAttributes: [
    ['AJP_REMOTE_PORT', '52814'],
    ['AJP_LOCAL_ADDR', '192.0.2.1'],
  ],
};

describe('PacketDecoder framing', () => {
  it('the fixture length field matches its payload', () => {
    expect(APACHE_FORWARD.length - 4).toBe(0xef);
  });

  it('CPING: 12 34 00 01 0a gives the one-byte payload', () => {
    expect(packets([hex('1234 0001 0a')])).toEqual(['0a']);
  });

  it('an empty packet (the document\'s end-of-body 12 34 00 00) gives an empty payload', () => {
    expect(packets([hex('1234 0000 1234 0001 0a')])).toEqual(['', '0a']);
  });

  it('a packet lying in one chunk is a subarray of it, no copy', () => {
    const chunk = Buffer.concat([APACHE_FORWARD, APACHE_BODY]);
    const seen: Uint8Array[] = [];
    new PacketDecoder().push(chunk, (p) => seen.push(p));
    expect(seen).toHaveLength(2);
    expect(seen[0].buffer).toBe(chunk.buffer);
    expect(seen[0].byteOffset).toBe(chunk.byteOffset + 4);
    expect(seen[1].byteOffset).toBe(chunk.byteOffset + APACHE_FORWARD.length + 4);
  });

  it('takes plain Uint8Arrays as well as Buffers', () => {
    const plain = new Uint8Array(APACHE_BODY);
    expect(packets([plain])).toEqual(['000a757365723d616c696365']);
  });

  const whole = Buffer.concat([APACHE_FORWARD, APACHE_BODY, hex('1234 0002 0000')]);
  const expected = [toHex(hex(APACHE_FORWARD_PAYLOAD)), '000a757365723d616c696365', '0000'];

  it('the httpd request fed whole', () => {
    expect(packets([whole])).toEqual(expected);
  });

  it('the httpd request fed byte by byte', () => {
    const bytes = Array.from(whole, (b) => Uint8Array.of(b));
    expect(packets(bytes)).toEqual(expected);
  });

  it('the httpd request split in two at every offset', () => {
    for (let at = 0; at <= whole.length; at++) {
      expect(packets([whole.subarray(0, at), whole.subarray(at)]), `split at ${at}`).toEqual(expected);
    }
  });

  it('the httpd request split in three around every header', () => {
    for (let at = 0; at + 5 <= whole.length; at++) {
      const parts = [whole.subarray(0, at), whole.subarray(at, at + 5), whole.subarray(at + 5)];
      expect(packets(parts), `split at ${at}, ${at + 5}`).toEqual(expected);
    }
  });

  it('buffered counts the bytes of the packet in progress', () => {
    const decoder = new PacketDecoder();
    const noop = (): void => {};
    decoder.push(APACHE_FORWARD.subarray(0, 3), noop);
    expect(decoder.buffered).toBe(3);
    decoder.push(APACHE_FORWARD.subarray(3, 10), noop);
    expect(decoder.buffered).toBe(10);
    decoder.push(APACHE_FORWARD.subarray(10), noop);
    expect(decoder.buffered).toBe(0);
  });

  it('wrong magic is TSGI_AJP_BAD_MAGIC, and stays so', () => {
    const decoder = new PacketDecoder();
    expectProtocolError(() => decoder.push(hex('4142 0001 09'), () => {}), 'TSGI_AJP_BAD_MAGIC');
    expectProtocolError(() => decoder.push(hex('1234 0001 0a'), () => {}), 'TSGI_AJP_BAD_MAGIC');
  });

  it('an HTTP request at the AJP port is named as such', () => {
    const err = catchError(() => new PacketDecoder().push(Buffer.from('GET / HTTP/1.1\r\n'), () => {}));
    expect((err as ProtocolError).code).toBe('TSGI_AJP_BAD_MAGIC');
    expect((err as Error).message).toMatch(/HTTP/);
  });

  it("magic 'container' reads 'AB' packets and refuses 12 34", () => {
    expect(packets([hex('4142 0001 09')], { magic: 'container' })).toEqual(['09']);
    expectProtocolError(
      () => new PacketDecoder({ magic: 'container' }).push(hex('1234 0001 0a'), () => {}),
      'TSGI_AJP_BAD_MAGIC',
    );
  });

  it('8 KiB packets: payload 8188 passes, 8189 is refused on the header alone', () => {
    const max = Buffer.concat([hex('1234 1ffc'), Buffer.alloc(8188)]);
    expect(packets([max])).toHaveLength(1);
    const decoder = new PacketDecoder();
    // Only the 4 header bytes: the refusal cannot have buffered any payload.
    expectProtocolError(() => decoder.push(hex('1234 1ffd'), () => {}), 'TSGI_AJP_PACKET_TOO_LARGE');
    expect(decoder.buffered).toBe(0);
  });

  it('64 KiB packets: payload 65532 passes, 65533 is refused', () => {
    const max = Buffer.concat([hex('1234 fffc'), Buffer.alloc(65532)]);
    expect(packets([max], { maxPacketSize: 65536 })).toHaveLength(1);
    expectProtocolError(
      () => new PacketDecoder({ maxPacketSize: 65536 }).push(hex('1234 fffd'), () => {}),
      'TSGI_AJP_PACKET_TOO_LARGE',
    );
  });

  it('a header split over chunks is checked once whole', () => {
    const decoder = new PacketDecoder();
    decoder.push(hex('12 34 20'), () => {});
    expectProtocolError(() => decoder.push(hex('00'), () => {}), 'TSGI_AJP_PACKET_TOO_LARGE');
  });

  it('refuses packet sizes it cannot honour', () => {
    expect(() => new PacketDecoder({ maxPacketSize: 65537 })).toThrow(RangeError);
    expect(() => new PacketDecoder({ maxPacketSize: 2 })).toThrow(RangeError);
  });
});

describe('FORWARD_REQUEST', () => {
  it('decodes the httpd request', () => {
    expect(decodeForwardRequest(hex(APACHE_FORWARD_PAYLOAD))).toEqual(APACHE_REQUEST);
  });

  it('re-encodes it to the same bytes', () => {
    expect(toHex(encodeForwardRequest(APACHE_REQUEST))).toBe(toHex(APACHE_FORWARD));
  });

  it('every truncation of it is TSGI_AJP_BAD_REQUEST, never a RangeError', () => {
    const payload = hex(APACHE_FORWARD_PAYLOAD);
    for (let n = 0; n < payload.length; n++) {
      expectProtocolError(() => decodeForwardRequest(payload.subarray(0, n)), 'TSGI_AJP_BAD_REQUEST');
    }
  });

  it('bytes after the terminator are ignored, as Tomcat does', () => {
    const payload = Buffer.concat([hex(APACHE_FORWARD_PAYLOAD), hex('00 ff')]);
    expect(decodeForwardRequest(payload)).toEqual(APACHE_REQUEST);
  });

  // GET /x over TLS, an unlisted method (httpd: PATCH has no code), client cert attributes.
  const TLS_PATCH = `
    02                                  // prefix
    ff                                  // method: SC_M_JK_STORED, see stored_method
    0008 485454502f312e31 00            // "HTTP/1.1"
    0002 2f78 00                        // "/x"
    0003 3a3a31 00                      // remote_addr "::1"
    0009 6c6f63616c686f7374 00          // remote_host "localhost"
    0001 68 00                          // server_name "h"
    01bb                                // server_port 443
    01                                  // is_ssl true
    0001                                // num_headers 1
    000e 436f6e74656e742d4c656e677468 00 0001 30 00
                                        // "Content-Length": "0" as a string name, kept as sent
    03 0003 626f62 00                   // ?remote_user "bob"
    04 0005 4261736963 00               // ?auth_type "Basic"
    06 0002 7731 00                     // ?route "w1"
    07 0003 504552 00                   // ?ssl_cert "PER"
    08 0006 4145532d3132 00             // ?ssl_cipher "AES-12"
    09 0002 6964 00                     // ?ssl_session "id"
    0b 0100                             // ?ssl_key_size 256, an integer, not a string
    0d 0005 5041544348 00               // ?stored_method "PATCH"
    0a 0010 414a505f53534c5f50524f544f434f4c 00 0007 544c5376312e33 00
                                        // ?req_attribute AJP_SSL_PROTOCOL=TLSv1.3
    01 0001 63 00                       // ?context "c" (httpd never sends it)
    02 0001 73 00                       // ?servlet_path "s" (nor this)
    ff                                  // terminator
  `;
  const TLS_PATCH_REQUEST: ForwardRequest = {
    method: 'PATCH',
    protocol: 'HTTP/1.1',
    requestUri: '/x',
    remoteAddr: '::1',
    remoteHost: 'localhost',
    serverName: 'h',
    serverPort: 443,
    isSsl: true,
    headers: [['Content-Length', '0']],
    attributes: {
      remoteUser: 'bob',
      authType: 'Basic',
      route: 'w1',
      sslCert: 'PER',
      sslCipher: 'AES-12',
      sslSession: 'id',
      sslKeySize: 256,
      storedMethod: 'PATCH',
      context: 'c',
      servletPath: 's',
    },
    requestAttributes: [['AJP_SSL_PROTOCOL', 'TLSv1.3']],
  };

  it('decodes stored_method, TLS attributes and a string header name', () => {
    expect(decodeForwardRequest(hex(TLS_PATCH))).toEqual(TLS_PATCH_REQUEST);
  });

  it('encodes an unlisted method as 0xFF plus stored_method', () => {
    const bytes = encodeForwardRequest({ method: 'PATCH' });
    expect(bytes[5]).toBe(0xff);
    const req = decodeForwardRequest(bytes.subarray(4));
    expect(req.method).toBe('PATCH');
    expect(req.attributes.storedMethod).toBe('PATCH');
  });

  it('encodes jvmRoute as the route attribute (0x06)', () => {
    const req = decodeForwardRequest(encodeForwardRequest({ attributes: { jvmRoute: 'node7' } }).subarray(4));
    expect(req.attributes).toEqual({ route: 'node7' });
  });

  it('codes request header names in any case, decodes them lower-case', () => {
    const bytes = encodeForwardRequest({ headers: [['CONTENT-TYPE', 'text/plain'], ['Cookie2', 'x']] });
    const req = decodeForwardRequest(bytes.subarray(4));
    expect(req.headers).toEqual([
      ['content-type', 'text/plain'],
      ['cookie2', 'x'],
    ]);
    expect(toHex(bytes)).toContain('a00700'); // code, then the value's length
  });

  it('maps every method code both ways', () => {
    for (const [name, code] of Object.entries(MethodCode)) {
      const bytes = encodeForwardRequest({ method: name });
      expect(bytes[5]).toBe(code);
      expect(decodeForwardRequest(bytes.subarray(4)).method).toBe(name);
    }
  });

  it('keeps latin-1 bytes one char each', () => {
    const req = decodeForwardRequest(encodeForwardRequest({ requestUri: '/caf\u00e9\u00ff' }).subarray(4));
    expect(req.requestUri).toBe('/caf\u00e9\u00ff');
    expect(() => encodeForwardRequest({ requestUri: '/\u20ac' })).toThrow(RangeError);
  });

  const minimal = (method: string, headers: string, attributes: string): Buffer =>
    hex(`02 ${method} 0000 00 0001 2f 00 0000 00 ffff 0000 00 0050 00 ${headers} ${attributes}`);

  it.each([
    ['a prefix other than 2', hex('04 02')],
    ['method code 0', minimal('00', '0000', 'ff')],
    ['method code 28', minimal('1c', '0000', 'ff')],
    ['method 0xFF without stored_method', minimal('ff', '0000', 'ff')],
    ['header code 0xA000', minimal('02', '0001 a000 0000 00', 'ff')],
    ['header code 0xA00F', minimal('02', '0001 a00f 0000 00', 'ff')],
    ['a null header name', minimal('02', '0001 ffff 0000 00', 'ff')],
    ['unknown attribute 0x0E', minimal('02', '0000', '0e 0000 00 ff')],
    ['no terminator', minimal('02', '0000', '')],
    ['a string running past the end', minimal('02', '0001 0005 41', '')],
    ['a string without its terminator byte', minimal('02', '0001 0001 41', '')],
  ])('refuses %s with TSGI_AJP_BAD_REQUEST', (_, payload) => {
    expectProtocolError(() => decodeForwardRequest(payload), 'TSGI_AJP_BAD_REQUEST');
  });

  it('a null string where one is required reads as empty (Tomcat does the same)', () => {
    const req = decodeForwardRequest(hex('02 02 ffff ffff ffff ffff ffff 0000 00 0001 a001 ffff ff'));
    expect(req).toMatchObject({ protocol: '', requestUri: '', remoteAddr: '', remoteHost: null, serverName: '' });
    expect(req.headers).toEqual([['accept', '']]);
  });
});

describe('request body packets', () => {
  it('decodes httpd\'s first body packet', () => {
    const [payload] = packetsRaw([APACHE_BODY]);
    expect(Buffer.from(decodeBodyChunk(payload)).toString('latin1')).toBe('user=alice');
  });

  it('end of body: httpd\'s 00 00 and the document\'s empty payload both give no data', () => {
    expect(decodeBodyChunk(hex('0000'))).toHaveLength(0);
    expect(decodeBodyChunk(new Uint8Array(0))).toHaveLength(0);
  });

  it('data is a subarray of the payload', () => {
    const payload = hex('0003 616263');
    const data = decodeBodyChunk(payload);
    expect(data.buffer).toBe(payload.buffer);
    expect(data.byteOffset).toBe(payload.byteOffset + 2);
  });

  it('refuses a one-byte payload and a length past the payload', () => {
    expectProtocolError(() => decodeBodyChunk(hex('00')), 'TSGI_AJP_BAD_BODY');
    expectProtocolError(() => decodeBodyChunk(hex('0004 616263')), 'TSGI_AJP_BAD_BODY');
  });

  it('encodeBodyPacket writes what httpd writes', () => {
    expect(toHex(encodeBodyPacket(Buffer.from('user=alice')))).toBe(toHex(APACHE_BODY));
    expect(toHex(encodeBodyPacket(new Uint8Array(0)))).toBe('123400020000');
  });

  function packetsRaw(chunks: Uint8Array[]): Uint8Array[] {
    const decoder = new PacketDecoder();
    const out: Uint8Array[] = [];
    for (const chunk of chunks) decoder.push(chunk, (p) => out.push(p));
    return out;
  }
});

describe('container packets', () => {
  const SEND_HEADERS = hex(`
    4142 003d                           // 'AB', payload length 61
    04                                  // prefix: SEND_HEADERS
    00c8                                // status 200
    0002 4f4b 00                        // message "OK"
    0004                                // num_headers 4
    a001 000a 746578742f706c61696e 00   // Content-Type: text/plain
    a003 0001 35 00                     // content-length (any case): 5
    000c 582d506f77657265642d4279 00 0004 74736769 00
                                        // X-Powered-By: tsgi (no code)
    a007 0003 613d31 00                 // set-cookie: a=1
  `);

  it('SEND_HEADERS codes the names it can, in any case', () => {
    const bytes = encodeSendHeaders(200, 'OK', [
      ['Content-Type', 'text/plain'],
      ['content-length', '5'],
      ['X-Powered-By', 'tsgi'],
      ['set-cookie', 'a=1'],
    ]);
    expect(toHex(bytes)).toBe(toHex(SEND_HEADERS));
  });

  it('SEND_HEADERS decodes with the table\'s spelling for coded names', () => {
    expect(decodeContainerPacket(SEND_HEADERS.subarray(4))).toEqual({
      type: 'headers',
      status: 200,
      message: 'OK',
      headers: [
        ['Content-Type', 'text/plain'],
        ['Content-Length', '5'],
        ['X-Powered-By', 'tsgi'],
        ['Set-Cookie', 'a=1'],
      ],
    });
  });

  it('SEND_HEADERS up to 8192 bytes passes, one more is TSGI_AJP_HEADERS_TOO_LARGE', () => {
    // 4 header + 1 prefix + 2 status + (2+2+1) "OK" + 2 count + 2 code + 2 length + value + 1.
    const fits = 8192 - 19;
    expect(encodeSendHeaders(200, 'OK', [['Location', 'x'.repeat(fits)]])).toHaveLength(8192);
    expectProtocolError(
      () => encodeSendHeaders(200, 'OK', [['Location', 'x'.repeat(fits + 1)]]),
      'TSGI_AJP_HEADERS_TOO_LARGE',
    );
    expect(encodeSendHeaders(200, 'OK', [['Location', 'x'.repeat(fits + 1)]], 65536)).toHaveLength(8193);
  });

  it('many headers past the limit are refused too', () => {
    const headers = Array.from({ length: 1000 }, (_, i): [string, string] => [`X-H${i}`, 'v']);
    expectProtocolError(() => encodeSendHeaders(200, 'OK', headers), 'TSGI_AJP_HEADERS_TOO_LARGE');
  });

  it('END_RESPONSE, GET_BODY_CHUNK, CPONG and CPING bytes', () => {
    expect(toHex(encodeEndResponse(true))).toBe('4142' + '0002' + '05' + '01');
    expect(toHex(encodeEndResponse(false))).toBe('4142' + '0002' + '05' + '00');
    // Tomcat asks for packet size - 6: 8186 = 0x1ffa.
    expect(toHex(encodeGetBodyChunk(8186))).toBe('4142' + '0003' + '06' + '1ffa');
    expect(toHex(encodeCPong())).toBe('4142' + '0001' + '09');
    expect(toHex(encodeCPing())).toBe('1234' + '0001' + '0a');
  });

  it('decodes END_RESPONSE, GET_BODY_CHUNK and CPONG', () => {
    expect(decodeContainerPacket(hex('05 01'))).toEqual({ type: 'end', reuse: true });
    expect(decodeContainerPacket(hex('05 00'))).toEqual({ type: 'end', reuse: false });
    expect(decodeContainerPacket(hex('06 1ffa'))).toEqual({ type: 'get-body', size: 8186 });
    expect(decodeContainerPacket(hex('09'))).toEqual({ type: 'cpong' });
  });

  it('SEND_BODY_CHUNK must end in exactly one byte after the data, as httpd checks', () => {
    // Tomcat's flush message: an empty chunk.
    expect(decodeContainerPacket(hex('03 0000 00'))).toMatchObject({ type: 'body', data: { length: 0 } });
    const one = decodeContainerPacket(hex('03 0001 61 00'));
    expect(one.type === 'body' && toHex(one.data)).toBe('61');
    expectProtocolError(() => decodeContainerPacket(hex('03 0001 61')), 'TSGI_AJP_BAD_RESPONSE');
    expectProtocolError(() => decodeContainerPacket(hex('03 0001 61 00 00')), 'TSGI_AJP_BAD_RESPONSE');
  });

  it('refuses unknown prefixes and header codes, and truncation', () => {
    expectProtocolError(() => decodeContainerPacket(hex('02')), 'TSGI_AJP_BAD_RESPONSE');
    expectProtocolError(() => decodeContainerPacket(hex('04 00c8 0000 00 0001 a00c 0000 00')), 'TSGI_AJP_BAD_RESPONSE');
    expectProtocolError(() => decodeContainerPacket(new Uint8Array(0)), 'TSGI_AJP_BAD_RESPONSE');
    const payload = SEND_HEADERS.subarray(4);
    for (let n = 0; n < payload.length; n++) {
      expectProtocolError(() => decodeContainerPacket(payload.subarray(0, n)), 'TSGI_AJP_BAD_RESPONSE');
    }
  });
});

describe('SEND_BODY_CHUNK splitting', () => {
  function split(data: Uint8Array, size: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    encodeSendBodyChunk(data, size, out);
    return out;
  }

  function reassemble(list: Uint8Array[], size: number): { lengths: number[]; data: Buffer } {
    const decoder = new PacketDecoder({ magic: 'container', maxPacketSize: size });
    const lengths: number[] = [];
    const parts: Uint8Array[] = [];
    decoder.push(Buffer.concat(list), (payload) => {
      const packet = decodeContainerPacket(payload);
      if (packet.type !== 'body') throw new Error(`unexpected ${packet.type}`);
      lengths.push(packet.data.length);
      parts.push(packet.data);
    });
    return { lengths, data: Buffer.concat(parts) };
  }

  const data = Buffer.alloc(200_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;

  it('8 KiB packets carry 8184 data bytes each', () => {
    const body = data.subarray(0, 20_000);
    const list = split(body, 8192);
    expect(list).toHaveLength(9);
    expect(toHex(list[0])).toBe('4142' + '1ffc' + '03' + '1ff8'); // payload 8188, data 8184
    expect(toHex(list[2])).toBe('00'); // httpd's trailer
    expect(toHex(list[6])).toBe('4142' + '0e34' + '03' + '0e30'); // 20000 - 2 * 8184 = 3632
    expect(list[1].buffer).toBe(body.buffer); // subarray, no copy
    expect(list[4].byteOffset).toBe(body.byteOffset + 8184);
    const { lengths, data: back } = reassemble(list, 8192);
    expect(lengths).toEqual([8184, 8184, 3632]);
    expect(back.equals(body)).toBe(true);
  });

  it('64 KiB packets carry 65528 data bytes each', () => {
    const list = split(data, 65536);
    expect(toHex(list[0])).toBe('4142' + 'fffc' + '03' + 'fff8');
    const { lengths, data: back } = reassemble(list, 65536);
    expect(lengths).toEqual([65528, 65528, 65528, 3416]);
    expect(back.equals(data)).toBe(true);
  });

  it('exactly one packet\'s worth is one packet, with data itself in the list', () => {
    const body = data.subarray(0, 8184);
    const list = split(body, 8192);
    expect(list).toHaveLength(3);
    expect(list[1]).toBe(body);
  });

  it('empty data appends nothing (an empty chunk means "flush" to httpd)', () => {
    expect(split(new Uint8Array(0), 8192)).toEqual([]);
  });
});

describe('name strings reused by position (FORWARD_REQUEST)', () => {
  const withNames = (headers: Array<[string, string]>, attrs: Array<[string, string]>) =>
    encodeForwardRequest({ headers, requestAttributes: attrs }).subarray(4);

  it('the same bytes at a position give the same name, other bytes (same or other length) give theirs', () => {
    const seq: Array<[string, string]> = [
      ['X-Trace', 'X-Tracf'],
      ['X-Trace', 'X-Trace'],
      ['X-Tracf', 'X-T'],
      ['X-T', 'X-Trace'],
      ['Sec-Fetch-Mode', 'X-Trace'],
    ];
    for (const [a, b] of seq) {
      const req = decodeForwardRequest(withNames([['host', 'h'], [a, '1'], [b, '2']], [['AJP_' + a, 'x'], ['AJP_' + b, 'y']]));
      expect(req.headers).toEqual([['host', 'h'], [a, '1'], [b, '2']]);
      expect(req.requestAttributes).toEqual([['AJP_' + a, 'x'], ['AJP_' + b, 'y']]);
    }
  });

  it('the bytes kept are a copy: a payload in a reused buffer still decodes to its own names', () => {
    // The server decodes views of socket chunks; a later chunk may reuse the memory.
    const chunk = Buffer.alloc(512);
    const first = withNames([['X-Aaaa', '1']], [['NAME_ONE', 'v']]);
    first.forEach((b, i) => (chunk[7 + i] = b));
    expect(decodeForwardRequest(chunk.subarray(7, 7 + first.length))).toMatchObject({ headers: [['X-Aaaa', '1']], requestAttributes: [['NAME_ONE', 'v']] });
    const second = withNames([['X-Bbbb', '1']], [['NAME_TWO', 'v']]);
    second.forEach((b, i) => (chunk[7 + i] = b));
    expect(decodeForwardRequest(chunk.subarray(7, 7 + second.length))).toMatchObject({ headers: [['X-Bbbb', '1']], requestAttributes: [['NAME_TWO', 'v']] });
  });

  it('a packet cut at or inside a name seen before is still TSGI_AJP_BAD_REQUEST', () => {
    const whole = withNames([['X-Trace', 'abc']], [['AJP_REMOTE_PORT', '1']]);
    decodeForwardRequest(whole);
    const name = Buffer.from('X-Trace');
    const at = Buffer.from(whole).indexOf(name);
    for (const cut of [at, at + 3, at + name.length, at + name.length + 1]) {
      expectProtocolError(() => decodeForwardRequest(whole.subarray(0, cut)), 'TSGI_AJP_BAD_REQUEST');
    }
    const attr = Buffer.from(whole).indexOf(Buffer.from('AJP_REMOTE_PORT'));
    expectProtocolError(() => decodeForwardRequest(whole.subarray(0, attr + 15)), 'TSGI_AJP_BAD_REQUEST');
  });

  it('past the cached positions and lengths (65 headers, a 60-byte name) names decode all the same', () => {
    const headers = Array.from({ length: 70 }, (_, i): [string, string] => [`X-H${i}`, String(i)]);
    headers.push(['X-' + 'n'.repeat(58), 'long']);
    for (let round = 0; round < 2; round++) expect(decodeForwardRequest(withNames(headers, [])).headers).toEqual(headers);
  });
});

describe('encodeResponse: a response in as few pieces as the body allows', () => {
  // 200 OK, Content-Type: text/plain, Content-Length: 13, "Hello, world!": what bench/apps/hello.mjs sends.
  const HELLO = hex(`
    4142 0020                             // 'AB', payload 32
    04 00c8 0002 4f4b 00 0002             // SEND_HEADERS, 200, "OK", 2 headers
    a001 000a 746578742f706c61696e 00     // Content-Type: text/plain
    a003 0002 3133 00                     // Content-Length: 13
    4142 0011                             // 'AB', payload 17
    03 000d 48656c6c6f2c20776f726c6421 00 // SEND_BODY_CHUNK 13 bytes, trailer
    4142 0002 05 01                       // END_RESPONSE reuse
  `);
  const helloHead = { status: 200, message: 'OK', headers: [['Content-Type', 'text/plain'], ['Content-Length', '13']] as Array<[string, string]> };

  function old(head: typeof helloHead | null, data: Uint8Array | null, reuse: boolean | undefined, size: number): Buffer {
    const list: Uint8Array[] = [];
    if (head) list.push(encodeSendHeaders(head.status, head.message, head.headers, size));
    if (data) encodeSendBodyChunk(data, size, list);
    if (reuse !== undefined) list.push(encodeEndResponse(reuse));
    return Buffer.concat(list);
  }

  it('hello world: SEND_HEADERS, SEND_BODY_CHUNK and END_RESPONSE in one buffer, byte for byte', () => {
    const out: Uint8Array[] = [];
    encodeResponse(out, helloHead, Buffer.from('Hello, world!'), true, 8192);
    expect(out).toHaveLength(1);
    expect(toHex(out[0]!)).toBe(toHex(HELLO));
    const close: Uint8Array[] = [];
    encodeResponse(close, helloHead, new TextEncoder().encode('Hello, world!'), false, 8192);
    expect(toHex(close[0]!)).toBe(toHex(HELLO).slice(0, -2) + '00');
  });

  it('the same bytes as encodeSendHeaders + encodeSendBodyChunk + encodeEndResponse, for every size around the limits', () => {
    const big = Buffer.alloc(200_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 13) & 0xff;
    const head = { status: 404, message: 'Not Found', headers: [['X-Long', 'v\u00e9'.repeat(40)], ['Set-Cookie', 'a=1'], ['x-short', '']] as Array<[string, string]> };
    for (const size of [8192, 65536]) {
      for (const n of [0, 1, 8184, 8185, INLINE_BODY_MAX, INLINE_BODY_MAX + 1, 65528, 65529, 200_000]) {
        for (const reuse of [true, false, undefined]) {
          for (const h of [head, null]) {
            const data = n === 0 ? null : new Uint8Array(big.buffer, big.byteOffset, n);
            const out: Uint8Array[] = [];
            encodeResponse(out, h, data, reuse, size);
            const bytes = Buffer.concat(out);
            expect(bytes.equals(old(h, data, reuse, size)), `size ${size}, ${n} bytes, reuse ${reuse}, head ${h !== null}`).toBe(true);
            for (const piece of out) expect(Buffer.isBuffer(piece)).toBe(true);
            if (n <= INLINE_BODY_MAX) expect(out.length).toBeLessThanOrEqual(1);
            else expect(out).toHaveLength(Math.ceil(n / (size - 8)) * 2 + 1); // n views, n + 1 glue pieces
          }
        }
      }
    }
  });

  it('past INLINE_BODY_MAX the data is not copied: views between shared glue, n + 1 pieces for n packets', () => {
    const data = new Uint8Array(20_000).fill(0x61); // a plain Uint8Array, as an app may return
    const out: Uint8Array[] = [];
    encodeResponse(out, helloHead, data, true, 8192);
    expect(out).toHaveLength(7); // head+chunk head, data, 00+chunk head, data, 00+chunk head, data, 00+END
    expect(toHex(out[0]!).slice(-14)).toBe('4142' + '1ffc' + '03' + '1ff8');
    expect(toHex(out[2]!)).toBe('00' + '4142' + '1ffc' + '03' + '1ff8');
    expect(toHex(out[4]!)).toBe('00' + '4142' + '0e34' + '03' + '0e30'); // 20000 - 2 * 8184 = 3632
    expect(toHex(out[6]!)).toBe('00' + '4142000205' + '01');
    for (const [i, at] of [[1, 0], [3, 8184], [5, 16368]] as const) {
      expect(Buffer.isBuffer(out[i])).toBe(true);
      expect(out[i]!.buffer).toBe(data.buffer);
      expect(out[i]!.byteOffset).toBe(at);
    }
    // The glue pieces share one allocation.
    expect(out[2]!.buffer).toBe(out[0]!.buffer);
    expect(out[6]!.buffer).toBe(out[0]!.buffer);
  });

  it('a Buffer body that is one packet goes in as itself', () => {
    const data = Buffer.alloc(INLINE_BODY_MAX + 1);
    const out: Uint8Array[] = [];
    encodeResponse(out, null, data, undefined, 65536);
    expect(out).toHaveLength(3);
    expect(out[1]).toBe(data);
    expect(toHex(out[2]!)).toBe('00');
  });

  it('no body: no SEND_BODY_CHUNK (an empty one means "flush" to httpd); nothing at all gives no piece', () => {
    const out: Uint8Array[] = [];
    encodeResponse(out, helloHead, new Uint8Array(0), true, 8192);
    expect(out).toHaveLength(1);
    const packetsOut = packets(out, { magic: 'container' }).map((p) => decodeContainerPacket(hex(p)).type);
    expect(packetsOut).toEqual(['headers', 'end']);
    const none: Uint8Array[] = [];
    encodeResponse(none, null, null, undefined, 8192);
    encodeResponse(none, null, new Uint8Array(0), undefined, 8192);
    expect(none).toEqual([]);
  });

  it('headers over the packet size throw TSGI_AJP_HEADERS_TOO_LARGE before anything is appended', () => {
    const out: Uint8Array[] = [];
    const head = { status: 200, message: 'OK', headers: [['Location', 'x'.repeat(8192)]] as Array<[string, string]> };
    expectProtocolError(() => encodeResponse(out, head, Buffer.from('x'), true, 8192), 'TSGI_AJP_HEADERS_TOO_LARGE');
    expect(out).toEqual([]);
  });
});
