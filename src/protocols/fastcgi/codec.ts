// FastCGI 1.0 codec: bytes <-> records, and the fixed bodies and name-value pairs inside them.
// Symmetric, so it serves the application side (our server) and the web-server side (tests,
// clients) alike. No sockets, timers, promises or logging.

// The package's "import" condition points at an .mjs without types (TS7016 under NodeNext);
// its CommonJS build, reachable through the "./*" export, ships them. Same class either way.
import { Parser } from 'binary-parser/dist/binary_parser.js';
import { ProtocolError, RequestError } from '../../errors.js';
import { joinHeaderValues } from '../../runner/environ.js';
import { NameCache, VarsBuilder } from '../name-cache.js';
import {
  FCGI_VERSION_1,
  HEADER_LENGTH,
  MAX_CONTENT_LENGTH,
  NULL_REQUEST_ID,
  RecordType,
} from './constants.js';

/** One FastCGI record, padding dropped. */
export interface FcgiRecord {
  type: number;
  requestId: number;
  content: Uint8Array;
}

// Undocumented and not in @types/node, but on Buffer.prototype in every Node we support:
// toString('latin1', start, end) without the encoding lookup, a little cheaper per pair.
type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };

const EMPTY: Uint8Array = new Uint8Array(0);
// Padding never exceeds 7 bytes on our side (we pad to a multiple of 8), so one zero buffer
// serves every record; one view per length keeps encodeStream free of per-record subarrays.
const ZEROS = new Uint8Array(8);
const PADDINGS: readonly Uint8Array[] = Array.from({ length: 8 }, (_, n) => ZEROS.subarray(0, n));

// Spec 3.3 FCGI_Header. The layout, as binary-parser declares it; RecordDecoder reads the same
// bytes by hand, because parse() (a DataView and an object per call) was a fifth of the CPU of a
// whole request on a kept connection (node --cpu-prof bench/micro/fastcgi-loop.mjs). A property
// test holds the two readings equal.
export const recordHeaderLayout = new Parser()
  .uint8('version')
  .uint8('type')
  .uint16be('requestId')
  .uint16be('contentLength')
  .uint8('paddingLength')
  .uint8('reserved');

/** The header fields of `b` (8 bytes), read as RecordDecoder reads them. */
export function readRecordHeader(b: Uint8Array): { version: number; type: number; requestId: number; contentLength: number; paddingLength: number } {
  return { version: b[0]!, type: b[1]!, requestId: (b[2]! << 8) | b[3]!, contentLength: (b[4]! << 8) | b[5]!, paddingLength: b[6]! };
}

// Spec 5.1 FCGI_BeginRequestBody: roleB1 roleB0 flags reserved[5] (read by hand in
// decodeBeginRequest, once per request; the layout here for the property test).
export const beginRequestLayout = new Parser().uint16be('role').uint8('flags');
// Spec 5.5 FCGI_EndRequestBody: appStatusB3..B0 protocolStatus reserved[3].
const endRequestBody = new Parser().uint32be('appStatus').uint8('protocolStatus');

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const HEADER = 0;
const CONTENT = 1;
const PADDING = 2;

/**
 * Incremental record decoder for one connection. `push` whatever arrived; every whole record
 * goes to `onRecord` in order, and the tail of an incomplete one is kept for the next push.
 *
 * A record lying wholly in one chunk is delivered as a `subarray` of that chunk (no copy), so
 * `content` is only valid as long as the caller leaves the chunk alone. A record straddling
 * chunks is assembled in a buffer of its exact content length: each byte is copied once.
 * Memory held is bounded by one record (8 + 65535 bytes; padding is skipped, never stored).
 *
 * Throws `ProtocolError` `TSGI_FCGI_BAD_VERSION` for a version other than 1, and
 * `TSGI_FCGI_RECORD_TOO_LONG` for content over `maxContentLength` (default 65535, the wire
 * maximum). After a throw the stream is out of step: every later `push` throws the same error.
 */
export class RecordDecoder {
  private readonly maxContentLength: number;
  private state = HEADER;
  private readonly header: Buffer = Buffer.alloc(HEADER_LENGTH);
  private headerFill = 0;
  private type = 0;
  private requestId = 0;
  private contentLength = 0;
  private paddingLength = 0;
  private partial: Buffer | null = null;
  private partialFill = 0;
  private paddingLeft = 0;
  private streaming = false;
  private error: ProtocolError | null = null;
  private readonly streams: ReadonlySet<number> | undefined;

  /**
   * `streams`: record types whose content is a byte stream (STDIN, DATA, STDOUT, STDERR). A
   * record of such a type that straddles chunks is delivered in pieces as its bytes arrive, each
   * a view of its chunk, instead of being assembled in a copy: a 1 MiB upload is then never
   * copied. Pieces are never empty; an empty record (end of stream) still comes as one.
   */
  constructor(opts?: { maxContentLength?: number; streams?: ReadonlySet<number> }) {
    this.streams = opts?.streams;
    const max = opts?.maxContentLength ?? MAX_CONTENT_LENGTH;
    if (!Number.isInteger(max) || max < 0 || max > MAX_CONTENT_LENGTH) {
      throw new RangeError(`fastcgi: maxContentLength must be an integer 0..${MAX_CONTENT_LENGTH}`);
    }
    this.maxContentLength = max;
  }

  /**
   * Bytes of the record in progress received so far (header, content and padding): 0 exactly
   * when the stream stands at a record boundary, so a connection ending with `buffered > 0`
   * ended mid-record.
   */
  get buffered(): number {
    if (this.state === HEADER) return this.headerFill;
    if (this.state === CONTENT) return HEADER_LENGTH + this.partialFill;
    return HEADER_LENGTH + this.contentLength + this.paddingLength - this.paddingLeft;
  }

  push(chunk: Uint8Array, onRecord: (rec: FcgiRecord) => void): void {
    if (this.error !== null) throw this.error;
    const buf = asBuffer(chunk);
    const end = buf.length;
    let pos = 0;
    while (pos < end) {
      if (this.state === HEADER) {
        if (this.headerFill === 0 && end - pos >= HEADER_LENGTH) {
          this.readHeader(buf, pos);
          pos += HEADER_LENGTH;
        } else {
          const n = Math.min(HEADER_LENGTH - this.headerFill, end - pos);
          buf.copy(this.header, this.headerFill, pos, pos + n);
          this.headerFill += n;
          pos += n;
          if (this.headerFill < HEADER_LENGTH) return;
          this.headerFill = 0;
          this.readHeader(this.header, 0);
        }
        const length = this.contentLength;
        if (end - pos >= length) {
          const content = length === 0 ? EMPTY : buf.subarray(pos, pos + length);
          pos += length;
          this.emit(content, onRecord);
        } else if (this.streams?.has(this.type)) {
          this.state = CONTENT;
          this.streaming = true;
          this.partialFill = end - pos;
          if (end > pos) onRecord({ type: this.type, requestId: this.requestId, content: buf.subarray(pos, end) });
          return;
        } else {
          const partial = Buffer.allocUnsafe(length);
          this.partialFill = buf.copy(partial, 0, pos, end);
          this.partial = partial;
          this.state = CONTENT;
          return;
        }
      } else if (this.state === CONTENT && this.streaming) {
        const n = Math.min(this.contentLength - this.partialFill, end - pos);
        const piece = buf.subarray(pos, pos + n);
        pos += n;
        this.partialFill += n;
        if (this.partialFill === this.contentLength) {
          this.streaming = false;
          this.partialFill = 0;
          this.paddingLeft = this.paddingLength;
          this.state = this.paddingLength === 0 ? HEADER : PADDING;
        }
        onRecord({ type: this.type, requestId: this.requestId, content: piece });
      } else if (this.state === CONTENT) {
        const partial = this.partial as Buffer;
        const n = Math.min(this.contentLength - this.partialFill, end - pos);
        buf.copy(partial, this.partialFill, pos, pos + n);
        this.partialFill += n;
        pos += n;
        if (this.partialFill < this.contentLength) return;
        this.partial = null;
        this.partialFill = 0;
        this.emit(partial, onRecord);
      } else {
        const n = Math.min(this.paddingLeft, end - pos);
        this.paddingLeft -= n;
        pos += n;
        if (this.paddingLeft === 0) this.state = HEADER;
      }
    }
  }

  /** The 8-byte header at `at` of `b` (read in place: no view made per record). */
  private readHeader(b: Buffer, at: number): void {
    const version = b[at]!;
    if (version !== FCGI_VERSION_1) {
      throw this.fail('TSGI_FCGI_BAD_VERSION', `fastcgi: invalid header version ${version}`);
    }
    const contentLength = (b[at + 4]! << 8) | b[at + 5]!;
    if (contentLength > this.maxContentLength) {
      throw this.fail(
        'TSGI_FCGI_RECORD_TOO_LONG',
        `fastcgi: record content of ${contentLength} bytes exceeds ${this.maxContentLength}`,
      );
    }
    this.type = b[at + 1]!;
    this.requestId = (b[at + 2]! << 8) | b[at + 3]!;
    this.contentLength = contentLength;
    this.paddingLength = b[at + 6]!;
  }

  // State moves on before the callback runs. A callback that throws abandons the rest of the
  // chunk, so the caller must drop the connection then, as it would for a ProtocolError.
  private emit(content: Uint8Array, onRecord: (rec: FcgiRecord) => void): void {
    this.paddingLeft = this.paddingLength;
    this.state = this.paddingLength === 0 ? HEADER : PADDING;
    onRecord({ type: this.type, requestId: this.requestId, content });
  }

  private fail(code: string, message: string): ProtocolError {
    this.error = new ProtocolError(code, message);
    return this.error;
  }
}

function checkUint(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`fastcgi: ${name} must be an integer 0..${max}, got ${value}`);
  }
}

function writeHeader(out: Uint8Array, at: number, type: number, requestId: number, length: number, padding: number): void {
  out[at] = FCGI_VERSION_1;
  out[at + 1] = type;
  out[at + 2] = requestId >>> 8;
  out[at + 3] = requestId & 0xff;
  out[at + 4] = length >>> 8;
  out[at + 5] = length & 0xff;
  out[at + 6] = padding;
  out[at + 7] = 0;
}

/**
 * One record: header, `content` (at most 65535 bytes, default empty), then zero padding up to a
 * multiple of 8 bytes, as Go's net/http/fcgi pads.
 */
export function encodeRecord(type: number, requestId: number, content: Uint8Array = EMPTY): Uint8Array {
  checkUint('record type', type, 0xff);
  checkUint('request id', requestId, 0xffff);
  const length = content.length;
  if (length > MAX_CONTENT_LENGTH) {
    throw new RangeError(`fastcgi: record content of ${length} bytes exceeds ${MAX_CONTENT_LENGTH}`);
  }
  const padding = -length & 7;
  const out = Buffer.allocUnsafe(HEADER_LENGTH + length + padding);
  writeHeader(out, 0, type, requestId, length, padding);
  out.set(content, HEADER_LENGTH);
  out.fill(0, HEADER_LENGTH + length);
  return out;
}

/**
 * Appends to `out` the gather list (for `socket.writev` or `Buffer.concat`) of a stream record
 * sequence carrying `data`: per record a fresh 8-byte header, a `subarray` of `data` (no copy)
 * of at most 65535 bytes, and padding from a shared zero buffer when needed. Empty `data`
 * appends nothing: the empty end-of-stream record is the caller's, via `encodeRecord`.
 * The caller must not modify `data` until the list is written.
 */
export function encodeStream(type: number, requestId: number, data: Uint8Array, out: Uint8Array[]): void {
  checkUint('record type', type, 0xff);
  checkUint('request id', requestId, 0xffff);
  const total = data.length;
  for (let at = 0; at < total; at += MAX_CONTENT_LENGTH) {
    const length = Math.min(MAX_CONTENT_LENGTH, total - at);
    const padding = -length & 7;
    const header = Buffer.allocUnsafe(HEADER_LENGTH);
    writeHeader(header, 0, type, requestId, length, padding);
    out.push(header, length === total ? data : data.subarray(at, at + length));
    if (padding !== 0) out.push(PADDINGS[padding]);
  }
}

/** Spec 5.1: the 8-byte FCGI_BeginRequestBody. Throws `TSGI_FCGI_BAD_BEGIN` if shorter. */
export function decodeBeginRequest(content: Uint8Array): { role: number; flags: number } {
  if (content.length < 8) {
    throw new ProtocolError('TSGI_FCGI_BAD_BEGIN', `fastcgi: begin request body of ${content.length} bytes, want 8`);
  }
  return { role: (content[0]! << 8) | content[1]!, flags: content[2]! };
}

/** Spec 5.1: a whole FCGI_BEGIN_REQUEST record (web-server side). */
export function encodeBeginRequest(requestId: number, role: number, flags: number): Uint8Array {
  checkUint('role', role, 0xffff);
  checkUint('flags', flags, 0xff);
  const body = new Uint8Array(8);
  body[0] = role >>> 8;
  body[1] = role & 0xff;
  body[2] = flags;
  return encodeRecord(RecordType.BeginRequest, requestId, body);
}

/** Spec 5.5: the 8-byte FCGI_EndRequestBody. Throws `TSGI_FCGI_BAD_END` if shorter. */
export function decodeEndRequest(content: Uint8Array): { appStatus: number; protocolStatus: number } {
  if (content.length < 8) {
    throw new ProtocolError('TSGI_FCGI_BAD_END', `fastcgi: end request body of ${content.length} bytes, want 8`);
  }
  return endRequestBody.parse(content) as { appStatus: number; protocolStatus: number };
}

/** Spec 5.5: a whole FCGI_END_REQUEST record; `appStatus` is written as 32-bit big-endian. */
export function encodeEndRequest(requestId: number, appStatus: number, protocolStatus: number): Uint8Array {
  checkUint('app status', appStatus, 0xffffffff);
  checkUint('protocol status', protocolStatus, 0xff);
  const body = new Uint8Array(8);
  body[0] = appStatus >>> 24;
  body[1] = (appStatus >>> 16) & 0xff;
  body[2] = (appStatus >>> 8) & 0xff;
  body[3] = appStatus & 0xff;
  body[4] = protocolStatus;
  return encodeRecord(RecordType.EndRequest, requestId, body);
}

/** Spec 4.2: FCGI_UNKNOWN_TYPE (on request id 0) answering a management record of `type`. */
export function encodeUnknownType(type: number): Uint8Array {
  checkUint('record type', type, 0xff);
  const body = new Uint8Array(8);
  body[0] = type;
  return encodeRecord(RecordType.UnknownType, NULL_REQUEST_ID, body);
}

/** Spec 4.2: the type an FCGI_UNKNOWN_TYPE body names. Throws `TSGI_FCGI_BAD_UNKNOWN_TYPE` if short. */
export function decodeUnknownType(content: Uint8Array): number {
  if (content.length < 8) {
    throw new ProtocolError(
      'TSGI_FCGI_BAD_UNKNOWN_TYPE',
      `fastcgi: unknown type body of ${content.length} bytes, want 8`,
    );
  }
  return content[0];
}

/** Spec 5.4: FCGI_ABORT_REQUEST (web-server side), no content. */
export function encodeAbortRequest(requestId: number): Uint8Array {
  return encodeRecord(RecordType.AbortRequest, requestId);
}

/**
 * Spec 3.4: decodes the name-value pairs in `bytes` into `into` (a later duplicate wins) and
 * returns how many pairs there were. Lengths are 1 byte when below 128, else 4 bytes big-endian
 * with the top bit set; names and values are latin-1, one char per byte. `bytes` must be the
 * whole stream (all PARAMS records of a request joined), since a pair may straddle records.
 * Pass `Object.create(null)` as `into` to keep names such as `constructor` inert.
 *
 * Throws `ProtocolError` `TSGI_FCGI_BAD_PARAMS` for a truncated pair or a length running past
 * the end, and `RequestError` `TSGI_FCGI_TOO_MANY_PARAMS` (431) past `limits.maxPairs`.
 */
export function decodeParams(
  bytes: Uint8Array,
  into: Record<string, string> | VarsBuilder,
  limits?: { maxPairs?: number },
): number {
  const buf = asBuffer(bytes) as Latin1Buffer;
  const end = buf.length;
  const maxPairs = limits?.maxPairs ?? Infinity;
  const builder = into instanceof VarsBuilder ? into : undefined;
  // One latin-1 decode of the whole block, then substrings: a slice is far cheaper than a
  // latin1Slice call per name and value.
  const text = buf.latin1Slice(0, end);
  let pos = 0;
  let pairs = 0;
  while (pos < end) {
    let nameLength = buf[pos];
    if (nameLength < 0x80) {
      pos += 1;
    } else {
      if (end - pos < 4) throw badParams('truncated name length');
      nameLength = ((nameLength & 0x7f) << 24) | (buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3];
      pos += 4;
    }
    if (pos >= end) throw badParams('truncated value length');
    let valueLength = buf[pos];
    if (valueLength < 0x80) {
      pos += 1;
    } else {
      if (end - pos < 4) throw badParams('truncated value length');
      valueLength = ((valueLength & 0x7f) << 24) | (buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3];
      pos += 4;
    }
    if (end - pos < nameLength + valueLength) {
      throw badParams(`pair of ${nameLength}+${valueLength} bytes runs past the end`);
    }
    if (++pairs > maxPairs) {
      throw new RequestError('TSGI_FCGI_TOO_MANY_PARAMS', `fastcgi: more than ${maxPairs} params`, 431);
    }
    const name = paramNames.name(buf, text, pos, nameLength, pairs - 1);
    pos += nameLength;
    const value = text.slice(pos, pos + valueLength);
    pos += valueLength;
    if (builder) builder.add(name, value);
    else storeParam(into as Record<string, string>, name, value);
  }
  return pairs;
}

/**
 * One pair into `into`. A later duplicate wins, except that HTTP_* pairs are joined: nginx before
 * 1.23 sends one HTTP_* pair per header line, and a repeated header is joined as HTTP joins it
 * (RFC 9110 5.3), cookies with "; " (RFC 6265 5.4). (A `fastcgi_param SCRIPT_NAME ""` after the
 * distribution's params is meant to win.)
 */
export function storeParam(into: Record<string, string>, name: string, value: string): void {
  // Plain assignment of "__proto__" would hit Object.prototype's setter and vanish.
  if (name === '__proto__') {
    Object.defineProperty(into, name, { value, writable: true, enumerable: true, configurable: true });
  } else if (name.charCodeAt(0) === 0x48 && name.startsWith('HTTP_') && into[name] !== undefined) {
    into[name] = joinHeaderValues(name, into[name], value);
  } else {
    into[name] = value;
  }
}

const paramNames = new NameCache();

function badParams(why: string): ProtocolError {
  return new ProtocolError('TSGI_FCGI_BAD_PARAMS', `fastcgi: invalid params: ${why}`);
}

// Any char above U+00FF has no latin-1 byte; Buffer would silently keep its low byte.
const NOT_LATIN1 = /[^\u0000-\u00ff]/;

function lengthSize(length: number): number {
  return length < 0x80 ? 1 : 4;
}

function writeLength(out: Buffer, at: number, length: number): number {
  if (length < 0x80) {
    out[at] = length;
    return at + 1;
  }
  out.writeUInt32BE((length | 0x80000000) >>> 0, at);
  return at + 4;
}

/**
 * Spec 3.4: name-value pairs as latin-1 bytes (web-server side, and FCGI_GET_VALUES_RESULT).
 * Throws `RangeError` for a char above U+00FF.
 */
export function encodeParams(pairs: Iterable<[string, string]>): Uint8Array {
  const list: [string, string][] = [];
  let size = 0;
  for (const pair of pairs) {
    const [name, value] = pair;
    if (NOT_LATIN1.test(name) || NOT_LATIN1.test(value)) {
      throw new RangeError(`fastcgi: param ${JSON.stringify(name)} is not latin-1`);
    }
    size += lengthSize(name.length) + lengthSize(value.length) + name.length + value.length;
    list.push(pair);
  }
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const [name, value] of list) {
    at = writeLength(out, at, name.length);
    at = writeLength(out, at, value.length);
    at += out.write(name, at, 'latin1');
    at += out.write(value, at, 'latin1');
  }
  return out;
}
