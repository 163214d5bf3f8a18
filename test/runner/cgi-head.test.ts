// The CGI response head both ways: encodeCgiHead's exact bytes, and parseCgiHead over the
// RFC 3875 §6.2 response kinds (document, local and client redirect, NPH) and malformed heads.

import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../src/errors.js';
import { encodeCgiHead, parseCgiHead } from '../../src/runner/cgi-head.js';

/** Hex with `//` comments and whitespace, one field per line. */
function hex(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text.replace(/\/\/.*$/gm, '').replace(/\s+/g, ''), 'hex'));
}
const latin1 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function badHeadCode(bytes: Uint8Array): string {
  try {
    parseCgiHead(bytes);
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError);
    return (error as ProtocolError).code;
  }
  throw new Error('expected a ProtocolError');
}

// The response in the SCGI spec's example, which is a CGI head plus "42".
const SPEC_RESPONSE = hex(`
  53 74 61 74 75 73 3a 20 32 30 30 20 4f 4b 0d 0a              // "Status: 200 OK" CRLF
  43 6f 6e 74 65 6e 74 2d 54 79 70 65 3a 20                    // "Content-Type: "
  74 65 78 74 2f 70 6c 61 69 6e 0d 0a                          // "text/plain" CRLF
  0d 0a                                                        // CRLF: end of head
  34 32                                                        // body "42"
`);
const SPEC_HEAD_LENGTH = SPEC_RESPONSE.length - 2;

describe('encodeCgiHead', () => {
  it('writes Status, each header and a blank line, all with CRLF', () => {
    const head = encodeCgiHead('200 OK', [['Content-Type', 'text/plain']]);
    expect(toHex(head)).toBe(toHex(SPEC_RESPONSE.subarray(0, SPEC_HEAD_LENGTH)));
  });

  it('writes only Status when there are no headers', () => {
    expect(encodeCgiHead('204 No Content', []).toString('latin1')).toBe('Status: 204 No Content\r\n\r\n');
  });

  it('keeps repeated headers, in order', () => {
    const head = encodeCgiHead('200 OK', [
      ['Set-Cookie', 'a=1'],
      ['Content-Type', 'text/html'],
      ['Set-Cookie', 'b=2'],
    ]);
    expect(head.toString('latin1')).toBe(
      'Status: 200 OK\r\nSet-Cookie: a=1\r\nContent-Type: text/html\r\nSet-Cookie: b=2\r\n\r\n',
    );
  });

  it('writes latin-1 chars as single bytes', () => {
    const head = encodeCgiHead('200 OK', [['X-Name', 'caf\xe9 \xff']]);
    expect(toHex(head)).toBe(
      toHex(
        hex(`
          53 74 61 74 75 73 3a 20 32 30 30 20 4f 4b 0d 0a  // "Status: 200 OK" CRLF
          58 2d 4e 61 6d 65 3a 20                          // "X-Name: "
          63 61 66 e9 20 ff 0d 0a                          // "caf\\xe9 \\xff" CRLF
          0d 0a                                            // CRLF
        `),
      ),
    );
  });

  it('parses back to what it was given', () => {
    const headers: Array<[string, string]> = [
      ['Content-Type', 'text/plain; charset=latin1'],
      ['X-Empty', ''],
      ['X-Latin', '\xa0\xe9\xa0'],
      ['Location', '/elsewhere'],
    ];
    const bytes = encodeCgiHead('418 I\'m a teapot', headers);
    expect(parseCgiHead(bytes)).toEqual({ status: 418, reason: "I'm a teapot", headers, bodyOffset: bytes.length });
  });
});

describe('parseCgiHead: RFC 3875 §6.2 responses', () => {
  it('the SCGI spec response, with its body after the head', () => {
    const head = parseCgiHead(SPEC_RESPONSE)!;
    expect(head).toEqual({
      status: 200,
      reason: 'OK',
      headers: [['Content-Type', 'text/plain']],
      bodyOffset: SPEC_HEAD_LENGTH,
    });
    expect(Buffer.from(SPEC_RESPONSE.subarray(head.bodyOffset)).toString('latin1')).toBe('42');
  });

  it('document response without Status is 200 OK (§6.2.1)', () => {
    expect(parseCgiHead(latin1('Content-Type: text/html\n\n<p>hi</p>'))).toEqual({
      status: 200,
      reason: 'OK',
      headers: [['Content-Type', 'text/html']],
      bodyOffset: 25,
    });
  });

  it('document response with Status (§6.2.1)', () => {
    expect(parseCgiHead(latin1('Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\n'))).toMatchObject({
      status: 404,
      reason: 'Not Found',
      headers: [['Content-Type', 'text/plain']],
    });
  });

  it('local redirect: Location with a path only, reported as 302 (§6.2.2)', () => {
    // Whether to follow it inside the server is the caller's choice: Location starts with "/".
    expect(parseCgiHead(latin1('Location: /other/page?x=1\n\n'))).toEqual({
      status: 302,
      reason: 'Found',
      headers: [['Location', '/other/page?x=1']],
      bodyOffset: 27,
    });
  });

  it('client redirect: Location with an absolute URI is 302 Found (§6.2.3)', () => {
    expect(parseCgiHead(latin1('Location: http://example.org/\r\n\r\n'))).toEqual({
      status: 302,
      reason: 'Found',
      headers: [['Location', 'http://example.org/']],
      bodyOffset: 33,
    });
  });

  it('client redirect with document: Status wins over the Location default (§6.2.4)', () => {
    const bytes = latin1(
      'Status: 301 Moved Permanently\r\nLocation: http://example.org/new\r\nContent-Type: text/html\r\n\r\n<a>',
    );
    expect(parseCgiHead(bytes)).toEqual({
      status: 301,
      reason: 'Moved Permanently',
      headers: [
        ['Location', 'http://example.org/new'],
        ['Content-Type', 'text/html'],
      ],
      bodyOffset: bytes.length - 3,
    });
  });

  it('NPH: an HTTP status line first (§5)', () => {
    expect(parseCgiHead(latin1('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhi'))).toEqual({
      status: 200,
      reason: 'OK',
      headers: [['Content-Type', 'text/plain']],
      bodyOffset: 45,
    });
    expect(parseCgiHead(latin1('HTTP/1.0 404 Not Found\n\n'))).toMatchObject({ status: 404, reason: 'Not Found', headers: [] });
    expect(parseCgiHead(latin1('HTTP/1.1 204\r\n\r\n'))).toMatchObject({ status: 204, reason: '' });
  });
});

describe('parseCgiHead: lines and fields', () => {
  it('returns null until the blank line has arrived', () => {
    for (const partial of ['', 'Stat', 'Status: 200 OK', 'Status: 200 OK\r\n', 'Status: 200 OK\r\n\r', 'Status: 200 OK\n']) {
      expect(parseCgiHead(latin1(partial)), JSON.stringify(partial)).toBeNull();
    }
  });

  it('gives null for every prefix before the blank line and the same head after', () => {
    const expected = parseCgiHead(SPEC_RESPONSE);
    for (let k = 0; k <= SPEC_RESPONSE.length; k++) {
      const head = parseCgiHead(SPEC_RESPONSE.slice(0, k));
      expect(head, `prefix ${k}`).toEqual(k < SPEC_HEAD_LENGTH ? null : expected);
    }
  });

  it('accepts LF, CRLF and a mix of both', () => {
    const expected = { status: 201, reason: 'Created', headers: [['X-A', '1'], ['X-B', '2']] };
    expect(parseCgiHead(latin1('Status: 201 Created\nX-A: 1\nX-B: 2\n\n'))).toMatchObject(expected);
    expect(parseCgiHead(latin1('Status: 201 Created\r\nX-A: 1\nX-B: 2\r\n\n'))).toMatchObject(expected);
    expect(parseCgiHead(latin1('Status: 201 Created\nX-A: 1\r\nX-B: 2\n\r\n'))).toMatchObject(expected);
  });

  it('matches Status and Location in any case, and drops Status from the headers', () => {
    expect(parseCgiHead(latin1('status: 202 Accepted\nX: y\n\n'))).toMatchObject({
      status: 202,
      reason: 'Accepted',
      headers: [['X', 'y']],
    });
    expect(parseCgiHead(latin1('LOCATION: /x\n\n'))).toMatchObject({ status: 302, headers: [['LOCATION', '/x']] });
  });

  it('allows a Status without reason phrase', () => {
    expect(parseCgiHead(latin1('Status: 204\r\n\r\n'))).toMatchObject({ status: 204, reason: '' });
  });

  it('trims spaces and tabs around values, and only those', () => {
    const head = parseCgiHead(latin1('Status:\t500   Oops  \nX-A:no-space\nX-B: \t a b \t\nX-C: \xa0x\xa0\nX-D:\n\n'))!;
    expect(head.status).toBe(500);
    expect(head.reason).toBe('Oops');
    expect(head.headers).toEqual([
      ['X-A', 'no-space'],
      ['X-B', 'a b'],
      ['X-C', '\xa0x\xa0'],
      ['X-D', ''],
    ]);
  });

  it('reads bytes 0x80-0xff in values as latin-1', () => {
    expect(parseCgiHead(hex('58 3a 20 e9 ff 0a 0a'))!.headers).toEqual([['X', '\xe9\xff']]);
  });

  it('works on a view into a larger buffer', () => {
    const whole = latin1('junkStatus: 200 OK\n\nbody');
    expect(parseCgiHead(whole.subarray(4))).toMatchObject({ status: 200, bodyOffset: 16 });
  });
});

describe('parseCgiHead: malformed heads throw TSGI_CGI_BAD_HEAD', () => {
  it.each([
    ['an empty head', '\r\n'],
    ['an empty head, LF', '\nbody'],
    ['a line without a colon', 'Content-Type text/plain\n\n'],
    ['an empty name', ': x\n\n'],
    ['a space in a name', 'Content Type: text/plain\n\n'],
    ['a space before the colon', 'Content-Type : text/plain\n\n'],
    ['a folded continuation line', 'X-A: 1\n  continued\n\n'],
    ['a bare CR inside a line', 'X-A: 1\r2\n\n'],
    ['a NUL in a value', 'X-A: 1\x002\n\n'],
    ['a Status that is not a number', 'Status: OK\n\n'],
    ['a two-digit Status', 'Status: 20 OK\n\n'],
    ['a four-digit Status', 'Status: 2000 OK\n\n'],
    ['a Status starting with 0', 'Status: 099 Odd\n\n'],
    ['a Status glued to its reason', 'Status: 200OK\n\n'],
    ['an empty Status', 'Status:\n\n'],
    ['two Status fields', 'Status: 200 OK\nStatus: 404 Not Found\n\n'],
    ['an NPH line and a Status field', 'HTTP/1.1 200 OK\nStatus: 404 Not Found\n\n'],
    ['a bad NPH line', 'HTTP/1.1 abc\n\n'],
    ['an NPH line with a bad version', 'HTTP/11 200 OK\n\n'],
    ['an NPH line that is not first', 'X-A: 1\nHTTP/1.1 200 OK\n\n'],
  ])('%s', (_name, text) => {
    expect(badHeadCode(latin1(text))).toBe('TSGI_CGI_BAD_HEAD');
  });

  it('throws as soon as a bad line is complete, before the blank line', () => {
    expect(parseCgiHead(latin1('not a header'))).toBeNull();
    expect(badHeadCode(latin1('not a header\n'))).toBe('TSGI_CGI_BAD_HEAD');
  });
});
