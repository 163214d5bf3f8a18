// SCGI request head codec: the spec's example request as bytes, fed whole, byte by byte and
// split at every offset, the encoder's output for it, and one test per error code.

import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { RequestError } from '../../../src/errors.js';
import { RequestHeadDecoder, encodeRequest } from '../../../src/protocols/scgi/codec.js';

// Plain Uint8Arrays, not Buffers: Buffer#slice is a view, and tests below rely on copies.
/** Hex with `//` comments and whitespace, one field per line. */
function hex(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text.replace(/\/\/.*$/gm, '').replace(/\s+/g, ''), 'hex'));
}
const latin1 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));
const text = (b: Uint8Array): string => Buffer.from(b).toString('latin1');

// SCGI spec §4 "Example": the web server sends this; the answer is 42.
const SPEC_REQUEST = hex(`
  37 30 3a                                      // "70:" netstring length
  43 4f 4e 54 45 4e 54 5f 4c 45 4e 47 54 48 00  // "CONTENT_LENGTH" NUL
  32 37 00                                      // "27" NUL
  53 43 47 49 00                                // "SCGI" NUL
  31 00                                         // "1" NUL
  52 45 51 55 45 53 54 5f 4d 45 54 48 4f 44 00  // "REQUEST_METHOD" NUL
  50 4f 53 54 00                                // "POST" NUL
  52 45 51 55 45 53 54 5f 55 52 49 00           // "REQUEST_URI" NUL
  2f 64 65 65 70 74 68 6f 75 67 68 74 00        // "/deepthought" NUL
  2c                                            // "," end of netstring
  57 68 61 74 20 69 73 20 74 68 65 20 61 6e 73 77 65 72  // body: "What is the answer"
  20 74 6f 20 6c 69 66 65 3f                    // body: " to life?"
`);
const SPEC_COMMA = 3 + 70; // index of the netstring's ","
const SPEC_HEADERS = {
  CONTENT_LENGTH: '27',
  SCGI: '1',
  REQUEST_METHOD: 'POST',
  REQUEST_URI: '/deepthought',
};
const SPEC_BODY = 'What is the answer to life?';

/** Pushes each chunk; expects null until the last one, and returns what that one gave. */
function decodeChunks(chunks: Uint8Array[], opts?: { maxHeaderBytes?: number }) {
  const decoder = new RequestHeadDecoder(opts);
  for (let k = 0; k < chunks.length - 1; k++) expect(decoder.push(chunks[k]!)).toBeNull();
  return decoder.push(chunks[chunks.length - 1]!);
}

function codeOf(bytes: Uint8Array, opts?: { maxHeaderBytes?: number }): { code: string; status: number } {
  try {
    new RequestHeadDecoder(opts).push(bytes);
  } catch (error) {
    expect(error).toBeInstanceOf(RequestError);
    const { code, status } = error as RequestError;
    return { code, status };
  }
  throw new Error('expected a RequestError');
}

/** A request whose netstring payload is `pairs` (NULs written as \0), then `body`. */
const netstring = (pairs: string, body = ''): Uint8Array => latin1(`${pairs.length}:${pairs},${body}`);

describe('SCGI spec example', () => {
  it('the encoder writes the spec bytes', () => {
    const encoded = encodeRequest(Object.entries(SPEC_HEADERS), latin1(SPEC_BODY));
    expect(Buffer.from(encoded).toString('hex')).toBe(Buffer.from(SPEC_REQUEST).toString('hex'));
  });

  it('decodes whole, with the body bytes that came along', () => {
    const head = new RequestHeadDecoder().push(SPEC_REQUEST)!;
    expect(head.headers).toEqual(SPEC_HEADERS);
    expect(Object.keys(head.headers)).toEqual(Object.keys(SPEC_HEADERS));
    expect(head.contentLength).toBe(27);
    expect(text(head.body)).toBe(SPEC_BODY);
  });

  it('returns the body as a view of the chunk, not a copy', () => {
    const head = new RequestHeadDecoder().push(SPEC_REQUEST)!;
    expect(head.body.buffer).toBe(SPEC_REQUEST.buffer);
    expect(head.body.byteOffset).toBe(SPEC_REQUEST.byteOffset + SPEC_COMMA + 1);
  });

  it('decodes byte by byte: null until the ",", then an empty body', () => {
    const decoder = new RequestHeadDecoder();
    for (let k = 0; k < SPEC_COMMA; k++) expect(decoder.push(SPEC_REQUEST.subarray(k, k + 1))).toBeNull();
    const head = decoder.push(SPEC_REQUEST.subarray(SPEC_COMMA, SPEC_COMMA + 1))!;
    expect(head.headers).toEqual(SPEC_HEADERS);
    expect(head.contentLength).toBe(27);
    expect(head.body.length).toBe(0);
  });

  it('decodes split in two at every offset', () => {
    for (let k = 0; k <= SPEC_REQUEST.length; k++) {
      const a = SPEC_REQUEST.slice(0, k);
      const b = SPEC_REQUEST.slice(k);
      const decoder = new RequestHeadDecoder();
      let head = decoder.push(a);
      let rest = b;
      if (k <= SPEC_COMMA) {
        expect(head, `offset ${k}`).toBeNull();
        head = decoder.push(b);
        rest = new Uint8Array(0);
      }
      expect(head!.headers, `offset ${k}`).toEqual(SPEC_HEADERS);
      expect(text(head!.body) + text(rest), `offset ${k}`).toBe(SPEC_BODY);
    }
  });

  it('decodes split in three at every pair of offsets', () => {
    for (let i = 0; i <= SPEC_COMMA; i++) {
      for (let j = i; j <= SPEC_COMMA; j++) {
        const chunks = [SPEC_REQUEST.slice(0, i), SPEC_REQUEST.slice(i, j), SPEC_REQUEST.slice(j)];
        const head = decodeChunks(chunks)!;
        expect(head.headers).toEqual(SPEC_HEADERS);
        expect(text(head.body)).toBe(SPEC_BODY);
      }
    }
  });

  it('copies the netstring when it spans pushes, so the caller may reuse its buffer', () => {
    const first = SPEC_REQUEST.slice(0, 40);
    const decoder = new RequestHeadDecoder();
    expect(decoder.push(first)).toBeNull();
    first.fill(0xff);
    expect(decoder.push(SPEC_REQUEST.slice(40))!.headers).toEqual(SPEC_HEADERS);
  });

  it('copies the netstring when its "," has not arrived yet', () => {
    const first = SPEC_REQUEST.slice(0, SPEC_COMMA);
    const decoder = new RequestHeadDecoder();
    expect(decoder.push(first)).toBeNull();
    first.fill(0xff);
    expect(decoder.push(SPEC_REQUEST.slice(SPEC_COMMA))!.headers).toEqual(SPEC_HEADERS);
  });
});

describe('header values', () => {
  it('keeps names and values as latin-1 byte strings', () => {
    const bytes = hex(`
      32 39 3a                                      // "29:"
      43 4f 4e 54 45 4e 54 5f 4c 45 4e 47 54 48 00  // "CONTENT_LENGTH" NUL
      30 00                                         // "0" NUL
      53 43 47 49 00 31 00                          // "SCGI" NUL "1" NUL
      e9 00 ff 80 00                                // "\\xe9" NUL "\\xff\\x80" NUL
      2c                                            // ","
    `);
    const head = new RequestHeadDecoder().push(bytes)!;
    expect(head.headers).toEqual({ CONTENT_LENGTH: '0', SCGI: '1', '\xe9': '\xff\x80' });
    expect(head.contentLength).toBe(0);
  });

  it('allows empty values (value ::= notnull*)', () => {
    const head = new RequestHeadDecoder().push(netstring('CONTENT_LENGTH\x000\x00SCGI\x001\x00QUERY_STRING\x00\x00'))!;
    expect(head.headers.QUERY_STRING).toBe('');
  });

  it('reads CONTENT_LENGTH as decimal, leading zeros included', () => {
    const head = new RequestHeadDecoder().push(netstring('CONTENT_LENGTH\x00007\x00SCGI\x001\x00', 'abcdefg'))!;
    expect(head.contentLength).toBe(7);
    expect(head.headers.CONTENT_LENGTH).toBe('007');
  });

  it('treats "__proto__" as an ordinary header name', () => {
    const head = new RequestHeadDecoder().push(netstring('CONTENT_LENGTH\x000\x00SCGI\x001\x00__proto__\x00x\x00'))!;
    expect(head.headers['__proto__']).toBe('x');
    expect(Object.keys(head.headers)).toContain('__proto__');
  });

  it('headers are a plain object; names found on Object.prototype are ordinary headers', () => {
    const head = new RequestHeadDecoder().push(netstring('CONTENT_LENGTH\x000\x00SCGI\x001\x00constructor\x00c\x00toString\x00t\x00'))!;
    expect(Object.getPrototypeOf(head.headers)).toBe(Object.prototype);
    expect(head.headers).toEqual({ CONTENT_LENGTH: '0', SCGI: '1', constructor: 'c', toString: 't' });
    expect(() => new RequestHeadDecoder().push(netstring('CONTENT_LENGTH\x000\x00SCGI\x001\x00__proto__\x00x\x00__proto__\x00y\x00'))).toThrow(/duplicate/);
  });

  it('names remembered by position never leak into the next request: same length, other bytes', () => {
    const heads = ['SERVER_NAME\x00a\x00', 'SERVER_PORT\x00b\x00', 'SERVER_NAMf\x00c\x00', 'SERVER_NAME\x00d\x00'];
    for (const h of heads) {
      const bytes = netstring(`CONTENT_LENGTH\x000\x00SCGI\x001\x00${h}`);
      const head = new RequestHeadDecoder().push(bytes)!;
      bytes.fill(0);
      const [name, value] = h.split('\x00');
      expect(head.headers).toEqual({ CONTENT_LENGTH: '0', SCGI: '1', [name!]: value });
    }
  });

  // Regression: nginx 1.22 sends one HTTP_* pair per header line; "a duplicate name" made every
  // request with a repeated header (two X-Forwarded-For, two Cookie lines) a 400.
  it('joins a repeated HTTP_* name as nginx before 1.23 sends it: ", ", and "; " for cookies', () => {
    const head = new RequestHeadDecoder().push(
      netstring(
        'CONTENT_LENGTH\x000\x00SCGI\x001\x00HTTP_X_REPEAT\x00one\x00HTTP_COOKIE\x00a=1\x00' +
          'HTTP_X_REPEAT\x00two\x00HTTP_COOKIE\x00b=2\x00HTTP_X_REPEAT\x00\x00',
      ),
    )!;
    expect(head.headers).toEqual({ CONTENT_LENGTH: '0', SCGI: '1', HTTP_X_REPEAT: 'one, two, ', HTTP_COOKIE: 'a=1; b=2' });
  });

  it('accepts a netstring of exactly maxHeaderBytes', () => {
    expect(new RequestHeadDecoder({ maxHeaderBytes: 70 }).push(SPEC_REQUEST)!.contentLength).toBe(27);
  });
});

describe('errors', () => {
  const BAD_NETSTRING = { code: 'TSGI_SCGI_BAD_NETSTRING', status: 400 };
  const BAD_HEADERS = { code: 'TSGI_SCGI_BAD_HEADERS', status: 400 };
  const NO_CONTENT_LENGTH = { code: 'TSGI_SCGI_NO_CONTENT_LENGTH', status: 400 };
  const NO_SCGI = { code: 'TSGI_SCGI_NO_SCGI', status: 400 };
  const TOO_LARGE = { code: 'TSGI_SCGI_HEADERS_TOO_LARGE', status: 431 };
  const CL = 'CONTENT_LENGTH\x000\x00';

  it.each([
    ['leading garbage', latin1('x70:')],
    ['leading space', latin1(' 70:')],
    ['an HTTP request on the SCGI port', latin1('GET / HTTP/1.1\r\n\r\n')],
    ['no length before ":"', latin1(':,')],
    ['a leading zero in the length', latin1('070:')],
    ['a length that is not a number', latin1('7a:')],
    ['a negative length', latin1('-1:')],
    ['no ":" after the length', latin1('26,CONTENT_LENGTH\x000\x00SCGI\x001\x00,')],
    ['no "," after the payload', latin1(`24:${CL}SCGI\x001\x00;`)],
    ['payload longer than announced', latin1(`23:${CL}SCGI\x001\x00,`)],
  ])('TSGI_SCGI_BAD_NETSTRING: %s', (_name, bytes) => {
    expect(codeOf(bytes)).toEqual(BAD_NETSTRING);
  });

  it('TSGI_SCGI_BAD_NETSTRING is thrown at the first bad byte', () => {
    const decoder = new RequestHeadDecoder();
    expect(() => decoder.push(latin1('G'))).toThrow(expect.objectContaining(BAD_NETSTRING));
  });

  it.each([
    ['an odd number of strings', `${CL}SCGI\x001\x00REQUEST_URI\x00`],
    ['no NUL after the last value', `${CL}SCGI\x001`],
    ['no NUL after the last name', `${CL}SCGI\x001\x00X`],
    ['an empty name first', `\x00x\x00${CL}SCGI\x001\x00`],
    ['an empty name later', `${CL}SCGI\x001\x00\x00x\x00`],
    ['a duplicate name', `${CL}SCGI\x001\x00SCGI\x001\x00`],
    ['a duplicate name that is not HTTP_*', `${CL}SCGI\x001\x00REQUEST_METHOD\x00GET\x00REQUEST_METHOD\x00POST\x00`],
    ['CONTENT_LENGTH twice', `${CL}SCGI\x001\x00${CL}`],
  ])('TSGI_SCGI_BAD_HEADERS: %s', (_name, pairs) => {
    expect(codeOf(netstring(pairs))).toEqual(BAD_HEADERS);
  });

  it.each([
    ['no headers at all', ''],
    ['no CONTENT_LENGTH', 'SCGI\x001\x00'],
    ['CONTENT_LENGTH not first', `SCGI\x001\x00${CL}`],
    ['lower-case content_length', 'content_length\x000\x00SCGI\x001\x00'],
    ['an empty CONTENT_LENGTH', 'CONTENT_LENGTH\x00\x00SCGI\x001\x00'],
    ['a negative CONTENT_LENGTH', 'CONTENT_LENGTH\x00-1\x00SCGI\x001\x00'],
    ['a fractional CONTENT_LENGTH', 'CONTENT_LENGTH\x001.5\x00SCGI\x001\x00'],
    ['CONTENT_LENGTH with spaces', 'CONTENT_LENGTH\x00 5\x00SCGI\x001\x00'],
    ['CONTENT_LENGTH in hex', 'CONTENT_LENGTH\x000x10\x00SCGI\x001\x00'],
    ['CONTENT_LENGTH past 2^53', 'CONTENT_LENGTH\x0099999999999999999999\x00SCGI\x001\x00'],
  ])('TSGI_SCGI_NO_CONTENT_LENGTH: %s', (_name, pairs) => {
    expect(codeOf(netstring(pairs))).toEqual(NO_CONTENT_LENGTH);
  });

  it.each([
    ['no SCGI header', `${CL}REQUEST_URI\x00/\x00`],
    ['SCGI equal to "2"', `${CL}SCGI\x002\x00`],
    ['SCGI empty', `${CL}SCGI\x00\x00`],
    ['SCGI equal to "01"', `${CL}SCGI\x0001\x00`],
    ['lower-case scgi', `${CL}scgi\x001\x00`],
  ])('TSGI_SCGI_NO_SCGI: %s', (_name, pairs) => {
    expect(codeOf(netstring(pairs))).toEqual(NO_SCGI);
  });

  it('TSGI_SCGI_HEADERS_TOO_LARGE: a length over maxHeaderBytes (default 65536)', () => {
    expect(codeOf(latin1('65537:'))).toEqual(TOO_LARGE);
    expect(new RequestHeadDecoder().push(latin1('65536:'))).toBeNull();
  });

  it('TSGI_SCGI_HEADERS_TOO_LARGE is thrown at the length digit that passes the limit', () => {
    const decoder = new RequestHeadDecoder({ maxHeaderBytes: 100 });
    expect(decoder.push(latin1('10'))).toBeNull();
    expect(() => decoder.push(latin1('1'))).toThrow(expect.objectContaining(TOO_LARGE));
  });

  it('TSGI_SCGI_HEADERS_TOO_LARGE: an endless run of digits stops at the limit', () => {
    const decoder = new RequestHeadDecoder();
    expect(decoder.push(latin1('9999'))).toBeNull();
    expect(() => decoder.push(latin1('9'))).toThrow(expect.objectContaining(TOO_LARGE));
  });

  it('TSGI_SCGI_HEADERS_TOO_LARGE: the spec example over a 69-byte limit', () => {
    expect(codeOf(SPEC_REQUEST, { maxHeaderBytes: 69 })).toEqual(TOO_LARGE);
  });

  it('throws the same error again on a later push', () => {
    const decoder = new RequestHeadDecoder();
    let first: unknown;
    try {
      decoder.push(latin1('x'));
    } catch (error) {
      first = error;
    }
    expect(first).toBeInstanceOf(RequestError);
    expect(() => decoder.push(SPEC_REQUEST)).toThrow(first as Error);
  });

  it('refuses a push after the head was decoded', () => {
    const decoder = new RequestHeadDecoder();
    decoder.push(SPEC_REQUEST);
    expect(() => decoder.push(latin1('more'))).toThrow(/after the request head/);
  });

  it('refuses a bad maxHeaderBytes', () => {
    expect(() => new RequestHeadDecoder({ maxHeaderBytes: -1 })).toThrow(RangeError);
    expect(() => new RequestHeadDecoder({ maxHeaderBytes: 1.5 })).toThrow(RangeError);
  });
});

describe('cost', () => {
  it('decodes a 64 KiB head pushed byte by byte in linear time', () => {
    const filler = 'x'.repeat(65536 - 'CONTENT_LENGTH\x000\x00SCGI\x001\x00HTTP_X\x00\x00'.length);
    const bytes = netstring(`CONTENT_LENGTH\x000\x00SCGI\x001\x00HTTP_X\x00${filler}\x00`);
    const decoder = new RequestHeadDecoder();
    const started = performance.now();
    let head = null;
    for (let k = 0; k < bytes.length && head === null; k++) head = decoder.push(bytes.subarray(k, k + 1));
    // Re-concatenating on every push would take seconds here (2^32 byte copies).
    expect(performance.now() - started).toBeLessThan(2000);
    expect(head!.headers.HTTP_X).toBe(filler);
  });
});

describe('encodeRequest', () => {
  it('writes an empty body when none is given', () => {
    expect(text(encodeRequest([['CONTENT_LENGTH', '0'], ['SCGI', '1']]))).toBe('24:CONTENT_LENGTH\x000\x00SCGI\x001\x00,');
  });

  it('writes latin-1 chars as single bytes', () => {
    const bytes = encodeRequest([['CONTENT_LENGTH', '0'], ['SCGI', '1'], ['\xe9', '\xff']]);
    expect(Buffer.from(bytes).toString('hex')).toBe(Buffer.from(hex(`
      32 38 3a                                      // "28:"
      43 4f 4e 54 45 4e 54 5f 4c 45 4e 47 54 48 00  // "CONTENT_LENGTH" NUL
      30 00                                         // "0" NUL
      53 43 47 49 00 31 00                          // "SCGI" NUL "1" NUL
      e9 00 ff 00                                   // "\\xe9" NUL "\\xff" NUL
      2c                                            // ","
    `)).toString('hex'));
  });

  it.each([
    ['an empty name', ['', 'x']],
    ['a NUL in a name', ['A\0B', 'x']],
    ['a NUL in a value', ['A', 'x\0y']],
    ['a char above U+00FF', ['A', '\u0100']],
  ] as Array<[string, [string, string]]>)('refuses %s', (_name, pair) => {
    expect(() => encodeRequest([['CONTENT_LENGTH', '0'], pair])).toThrow(RangeError);
  });
});
