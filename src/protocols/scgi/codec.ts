// SCGI request head (Neil Schemenauer, "SCGI: A Simple Common Gateway Interface alternative",
// 2008-06-23): a netstring of NUL-terminated name/value pairs, from the SCGI server's side
// (decoder), plus the web server's side (encoder) for tests and clients.

import { Buffer } from 'node:buffer';
import { RequestError } from '../../errors.js';
import { joinHeaderValues } from '../../runner/environ.js';
import { NameCache, VarsBuilder } from '../name-cache.js';

const headerNames = new NameCache();
const headerVars = new VarsBuilder();

/** What the web server sent before the body: the CGI-style headers and where the body starts. */
export interface ScgiRequestHead {
  /** Names and values as byte strings: latin-1, one char per byte. */
  headers: Record<string, string>;
  /** The CONTENT_LENGTH header, parsed: exactly this many body bytes follow the head. */
  contentLength: number;
  /** The bytes after the netstring's `,` in the chunk that completed it (a view, not a copy). */
  body: Uint8Array;
}

const DEFAULT_MAX_HEADER_BYTES = 65536;

const COLON = 0x3a;
const COMMA = 0x2c;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

const Phase = { Length: 0, Payload: 1, Comma: 2, Done: 3, Failed: 4 } as const;
type Phase = (typeof Phase)[keyof typeof Phase];

const badNetstring = (message: string) =>
  new RequestError('TSGI_SCGI_BAD_NETSTRING', `scgi: ${message}`, 400);
const badHeaders = (message: string) =>
  new RequestError('TSGI_SCGI_BAD_HEADERS', `scgi: ${message}`, 400);

/**
 * Incremental decoder for one SCGI request head. Push whatever arrived; it returns null until
 * the netstring is complete, then the head. A connection carries one request (the server
 * answers, then closes), so a decoder is used once: pushing after the head came back throws.
 * Bad bytes throw a `RequestError` as soon as they are seen, and again on any later push.
 */
export class RequestHeadDecoder {
  readonly #maxHeaderBytes: number;
  #phase: Phase = Phase.Length;
  #digits = 0;
  #length = 0;
  // The netstring payload: a copy when it spans pushes, else a view of the chunk that holds it.
  #payload: Uint8Array | null = null;
  #filled = 0;
  #error: RequestError | null = null;

  /** `maxHeaderBytes` bounds the netstring's payload (the pairs), checked as its length arrives. */
  constructor(opts: { maxHeaderBytes?: number } = {}) {
    const max = opts.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
    if (!Number.isSafeInteger(max) || max < 0) {
      throw new RangeError(`maxHeaderBytes must be a non-negative integer, got ${max}`);
    }
    this.#maxHeaderBytes = max;
  }

  push(chunk: Uint8Array): ScgiRequestHead | null {
    if (this.#phase === Phase.Failed) throw this.#error!;
    if (this.#phase === Phase.Done) throw new Error('scgi: push() after the request head was decoded');
    try {
      return this.#push(chunk);
    } catch (error) {
      this.#phase = Phase.Failed;
      this.#payload = null;
      this.#error = error as RequestError;
      throw error;
    }
  }

  #push(chunk: Uint8Array): ScgiRequestHead | null {
    const end = chunk.length;
    let i = 0;

    if (this.#phase === Phase.Length) {
      for (;;) {
        if (i === end) return null;
        const byte = chunk[i++]!;
        if (byte >= DIGIT_0 && byte <= DIGIT_9) {
          // Netstrings forbid leading zeros; "0:" alone is well-formed (and then lacks CONTENT_LENGTH).
          if (this.#digits === 1 && this.#length === 0) throw badNetstring('netstring length has a leading zero');
          this.#length = this.#length * 10 + (byte - DIGIT_0);
          this.#digits++;
          if (this.#length > this.#maxHeaderBytes) {
            throw new RequestError(
              'TSGI_SCGI_HEADERS_TOO_LARGE',
              `scgi: request headers longer than ${this.#maxHeaderBytes} bytes`,
              431,
            );
          }
        } else if (byte === COLON && this.#digits > 0) {
          this.#phase = Phase.Payload;
          break;
        } else {
          throw badNetstring(
            this.#digits === 0
              ? 'request does not start with a netstring length'
              : 'netstring length is not followed by ":"',
          );
        }
      }
    }

    if (this.#phase === Phase.Payload) {
      const length = this.#length;
      // Keep a view only when the whole netstring, comma included, is in this chunk: the caller
      // may reuse its buffer once push() returns.
      if (this.#filled === 0 && end - i > length) {
        this.#payload = chunk.subarray(i, i + length);
        i += length;
      } else {
        this.#payload ??= new Uint8Array(length);
        const take = Math.min(length - this.#filled, end - i);
        this.#payload.set(chunk.subarray(i, i + take), this.#filled);
        this.#filled += take;
        i += take;
        if (this.#filled < length) return null;
      }
      this.#phase = Phase.Comma;
    }

    if (i === end) return null;
    if (chunk[i] !== COMMA) throw badNetstring('netstring is not terminated by ","');
    const { headers, contentLength } = decodeHeaders(this.#payload!);
    this.#phase = Phase.Done;
    this.#payload = null;
    return { headers, contentLength, body: chunk.subarray(i + 1) };
  }
}

// Spec 3: headers ::= (name NUL value NUL)*, name non-empty, no repeats, CONTENT_LENGTH first
// with a non-empty run of ASCII digits, and SCGI equal to "1" somewhere.
// One repeat is tolerated: nginx before 1.23 sends one HTTP_* pair per request header line, so
// two "X-Forwarded-For:" lines arrive as HTTP_X_FORWARDED_FOR twice. Those are joined as
// RFC 3875 4.1.18 asks ("; " for Cookie, RFC 6265 5.4), which is what nginx 1.23 does itself.
// Any other repeat (CONTENT_LENGTH twice, SCGI twice) stays an error.
function decodeHeaders(payload: Uint8Array): { headers: Record<string, string>; contentLength: number } {
  const length = payload.length;
  if (length > 0 && payload[length - 1] !== 0) throw badHeaders('last header is not terminated by NUL');

  const bytes = Buffer.from(payload.buffer, payload.byteOffset, length);
  // One latin-1 decode of the whole block, then substrings; names reused by position.
  const text = (bytes as Buffer & { latin1Slice(start: number, end: number): string }).latin1Slice(0, length);
  headerVars.begin();
  let firstName: string | undefined;
  let slot = 0;
  for (let start = 0; start < length; ) {
    const nameEnd = text.indexOf('\0', start);
    if (nameEnd === start) throw badHeaders('empty header name');
    const name = headerNames.name(bytes, text, start, nameEnd - start, slot++);
    firstName ??= name;
    if (nameEnd === length - 1) throw badHeaders(`header ${JSON.stringify(name)} has no value`);
    const valueEnd = text.indexOf('\0', nameEnd + 1);
    headerVars.add(name, text.slice(nameEnd + 1, valueEnd));
    start = valueEnd + 1;
  }
  const headers = headerVars.build(storeHeader);

  const value = headers.CONTENT_LENGTH;
  if (firstName !== 'CONTENT_LENGTH' || value === undefined) {
    throw new RequestError('TSGI_SCGI_NO_CONTENT_LENGTH', 'scgi: first header is not CONTENT_LENGTH', 400);
  }
  const contentLength = /^[0-9]+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(contentLength)) {
    throw new RequestError('TSGI_SCGI_NO_CONTENT_LENGTH', 'scgi: CONTENT_LENGTH is not a decimal integer', 400);
  }
  if (headers.SCGI !== '1') {
    throw new RequestError('TSGI_SCGI_NO_SCGI', 'scgi: no SCGI header equal to "1"', 400);
  }
  return { headers, contentLength };
}

/** One header into the object that becomes the environ (a plain one): "__proto__" is stored as
 * an own property, and a name found on Object.prototype ("constructor") is not taken for a
 * repeat, since values are strings. */
function storeHeader(headers: Record<string, string>, name: string, value: string): void {
  const earlier = headers[name];
  if (typeof earlier !== 'string') {
    if (name === '__proto__') Object.defineProperty(headers, name, { value, enumerable: true, writable: true, configurable: true });
    else headers[name] = value;
  } else if (name.startsWith('HTTP_')) headers[name] = joinHeaderValues(name, earlier, value);
  else throw badHeaders(`duplicate header ${JSON.stringify(name)}`);
}

const NOT_NAME = /^$|[^\x01-\xff]/;
const NOT_VALUE = /[^\x01-\xff]/;

/**
 * The web server's side: headers as a netstring, then the body. The caller puts CONTENT_LENGTH
 * (the body's length) first and includes SCGI=1. Names and values are byte strings; a name that
 * is empty, or any NUL or char above U+00FF, throws a `RangeError`.
 */
export function encodeRequest(headers: Iterable<[string, string]>, body?: Uint8Array): Uint8Array {
  let pairs = '';
  for (const [name, value] of headers) {
    if (NOT_NAME.test(name) || NOT_VALUE.test(value)) {
      throw new RangeError(`scgi: header ${JSON.stringify(name)} cannot be encoded`);
    }
    pairs += `${name}\0${value}\0`;
  }
  // Latin-1: one byte per char, so the string length is the netstring length.
  const head = `${pairs.length}:${pairs},`;
  const out = Buffer.allocUnsafe(head.length + (body?.length ?? 0));
  out.write(head, 0, 'latin1');
  if (body) out.set(body, head.length);
  return out;
}
