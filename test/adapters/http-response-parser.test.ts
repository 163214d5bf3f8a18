// HttpResponseParser: what node:http's ServerResponse writes to its socket, read back. Fixed
// byte sequences, then the same bytes split at every point (pg-protocol's "split buffer").

import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HttpResponseParser, type ParsedHead } from '../../src/adapters/http-response-parser.js';

function parse(parts: Array<string | Buffer>): { head: ParsedHead | undefined; body: string; heads: number; done: boolean } {
  const p = new HttpResponseParser();
  let heads = 0;
  const out: Buffer[] = [];
  for (const part of parts) out.push(...p.push(Buffer.isBuffer(part) ? part : Buffer.from(part, 'latin1'), () => heads++));
  return { head: p.head, body: Buffer.concat(out).toString('latin1'), heads, done: p.done };
}

const CHUNKED =
  'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nTransfer-Encoding: chunked\r\n\r\n' +
  '5\r\nhello\r\n' + // a chunk
  '1;ext=1\r\n \r\n' + // a chunk extension
  'A\r\n0123456789\r\n' + // hex size
  '0\r\nX-Trailer: t\r\n\r\n'; // last chunk, a trailer, the end

describe('HttpResponseParser', () => {
  it('a head with a Content-Length body', () => {
    const r = parse(['HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\nX-A: 1\r\n\r\ngone']);
    expect(r.head).toEqual({ code: 404, status: '404 Not Found', headers: [['Content-Length', '4'], ['X-A', '1']], chunked: false });
    expect(r.body).toBe('gone');
  });

  it('an empty reason phrase; values keep inner spaces', () => {
    const r = parse(['HTTP/1.1 299 \r\nX-Spaced:   a  b  \r\n\r\n']);
    expect(r.head?.status).toBe('299 ');
    expect(r.head?.headers).toEqual([['X-Spaced', 'a  b']]);
  });

  it('chunked: sizes in hex, extensions ignored, trailers dropped, done after the last chunk', () => {
    const r = parse([CHUNKED]);
    expect(r.head?.chunked).toBe(true);
    expect(r.head?.headers.filter(([n]) => n === 'Set-Cookie')).toEqual([
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2'],
    ]);
    expect(r.body).toBe('hello 0123456789');
    expect(r.done).toBe(true);
  });

  it('interim 1xx heads (100 Continue, 103 Early Hints) are skipped: one final head', () => {
    const r = parse(['HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok']);
    expect(r.heads).toBe(1);
    expect(r.head?.code).toBe(200);
    expect(r.body).toBe('ok');
  });

  it('the same bytes split anywhere give the same head and body (property)', () => {
    const whole = Buffer.from(CHUNKED, 'latin1');
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: whole.length - 1 }), { maxLength: 12 }), (cuts) => {
        const points = [0, ...cuts.sort((a, b) => a - b), whole.length];
        const parts = points.slice(1).map((end, i) => whole.subarray(points[i]!, end));
        const r = parse(parts);
        expect(r.heads).toBe(1);
        expect(r.body).toBe('hello 0123456789');
        expect(r.done).toBe(true);
      }),
    );
  });

  it('a bad chunk size line is a ProtocolError', () => {
    expect(() => parse(['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'])).toThrow(expect.objectContaining({ code: 'TSGI_NODE_BAD_CHUNK' }));
    expect(() => parse(['NOT HTTP\r\n\r\n'])).toThrow(expect.objectContaining({ code: 'TSGI_NODE_BAD_HEAD' }));
  });
});
