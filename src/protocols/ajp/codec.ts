// AJP13 codec: packet framing, FORWARD_REQUEST and body packets in, SEND_HEADERS /
// SEND_BODY_CHUNK / END_RESPONSE / GET_BODY_CHUNK / CPONG out (the container's side), plus the
// web server's side of each for tests and clients. No sockets, timers, promises or logging.

// The package's "import" condition points at an .mjs without types (TS7016 under NodeNext);
// its CommonJS build, reachable through the "./*" export, ships them. Same class either way.
import { Parser } from 'binary-parser/dist/binary_parser.js';
import { ProtocolError } from '../../errors.js';
import { NameCache } from '../name-cache.js';
import {
  AjpErrorCode,
  AttributeCode,
  CONTAINER_MAGIC,
  DEFAULT_PACKET_SIZE,
  HEADER_CODE_MARKER,
  HEADER_LENGTH,
  MAX_PACKET_SIZE,
  METHOD_NAMES,
  METHOD_STORED,
  MethodCode,
  NULL_STRING_LENGTH,
  PrefixCode,
  REQUEST_HEADER_NAMES,
  RESPONSE_HEADER_NAMES,
  RequestHeaderCode,
  ResponseHeaderCode,
  SEND_BODY_OVERHEAD,
  SERVER_MAGIC,
} from './constants.js';

/** A decoded FORWARD_REQUEST ("Request Packet Structure"). Strings are latin-1, one char a byte. */
export interface ForwardRequest {
  /** From the method code, or the stored_method attribute when the code is 0xFF. */
  method: string;
  protocol: string;
  requestUri: string;
  remoteAddr: string;
  /** null when sent as a null string (httpd does so unless HostnameLookups resolved it). */
  remoteHost: string | null;
  serverName: string;
  serverPort: number;
  isSsl: boolean;
  /** Coded names in the document's lower case (`content-type`); string names as sent. */
  headers: Array<[name: string, value: string]>;
  /**
   * Coded attributes; a later duplicate wins. 0x06 decodes into `route`: `jvmRoute` is the
   * same attribute under Tomcat's name (SC_A_JVM_ROUTE), read by the encoder when `route` is
   * absent and never set by the decoder.
   */
  attributes: {
    context?: string;
    servletPath?: string;
    remoteUser?: string;
    authType?: string;
    queryString?: string;
    route?: string;
    sslCert?: string;
    sslCipher?: string;
    sslSession?: string;
    sslKeySize?: number;
    secret?: string;
    storedMethod?: string;
    jvmRoute?: string;
  };
  /** req_attribute (0x0A) pairs in arrival order, e.g. httpd's AJP_REMOTE_PORT, AJP_LOCAL_ADDR. */
  requestAttributes: Array<[name: string, value: string]>;
}

/** Input of `encodeForwardRequest`: any field left out takes a plain default. */
export interface ForwardRequestInit {
  method?: string; // 'GET'; names outside the method table go as 0xFF + stored_method
  protocol?: string; // 'HTTP/1.1'
  requestUri?: string; // '/'
  remoteAddr?: string; // '127.0.0.1'
  remoteHost?: string | null; // null
  serverName?: string; // 'localhost'
  serverPort?: number; // 80
  isSsl?: boolean; // false
  headers?: Array<[name: string, value: string]>;
  attributes?: ForwardRequest['attributes'];
  requestAttributes?: Array<[name: string, value: string]>;
}

/** A container -> web server packet, decoded (web-server side). */
export type ContainerPacket =
  | { type: 'headers'; status: number; message: string; headers: Array<[name: string, value: string]> }
  | { type: 'body'; data: Uint8Array }
  | { type: 'end'; reuse: boolean }
  | { type: 'get-body'; size: number }
  | { type: 'cpong' };

// Not in @types/node, present on Buffer.prototype since Node 0.x: toString('latin1') and
// write(s, at, 'latin1') minus the argument normalisation, on the per-request path.
type Latin1Buffer = Buffer & {
  latin1Slice(start: number, end: number): string;
  latin1Write(string: string, offset: number): number;
};

const EMPTY: Buffer = Buffer.alloc(0);
// Any char above U+00FF has no latin-1 byte; Buffer would silently keep its low byte.
const NOT_LATIN1 = /[^\u0000-\u00ff]/;

function asBuffer(bytes: Uint8Array): Latin1Buffer {
  return (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) as Latin1Buffer;
}

function checkUint(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`ajp: ${name} must be an integer 0..${max}, got ${value}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Framing ("Packet Headers")

interface PacketHeader {
  magic: number;
  length: number;
}

/** "Packet Headers": magic(2) length(2), as binary-parser declares it. */
export const packetHeaderLayout = new Parser().uint16be('magic').uint16be('length');

function hex4(n: number): string {
  return `0x${n.toString(16).padStart(4, '0')}`;
}

/**
 * Incremental packet decoder for one connection: `push` whatever arrived; the payload of every
 * whole packet (after magic and length) goes to `onPacket` in order, and the tail of an
 * incomplete one is kept for the next push.
 *
 * `magic` names the side whose packets are read: `'server'` (default, the container's view)
 * expects 0x12 0x34, `'container'` expects 'A' 'B'. A payload lying wholly in one chunk is a
 * `subarray` of it (no copy), valid as long as the caller leaves the chunk alone; one that
 * straddles chunks is assembled in a buffer of its exact length, each byte copied once.
 *
 * Throws `ProtocolError` `TSGI_AJP_BAD_MAGIC` for wrong magic and `TSGI_AJP_PACKET_TOO_LARGE`
 * for a declared length over `maxPacketSize - 4` (default packet size 8192), before any byte
 * of that payload is buffered. After a throw the stream is out of step: every later `push`
 * throws the same error.
 */
export class PacketDecoder {
  private readonly maxPayload: number;
  private readonly magic: number;
  private readonly header: Buffer = Buffer.alloc(HEADER_LENGTH);
  private headerFill = 0;
  private partial: Buffer | null = null;
  private partialFill = 0;
  private error: ProtocolError | null = null;

  constructor(opts: { maxPacketSize?: number; magic?: 'server' | 'container' } = {}) {
    const size = opts.maxPacketSize ?? DEFAULT_PACKET_SIZE;
    if (!Number.isInteger(size) || size < HEADER_LENGTH || size > MAX_PACKET_SIZE) {
      throw new RangeError(`ajp: maxPacketSize must be an integer ${HEADER_LENGTH}..${MAX_PACKET_SIZE}, got ${size}`);
    }
    this.maxPayload = size - HEADER_LENGTH;
    this.magic = opts.magic === 'container' ? CONTAINER_MAGIC : SERVER_MAGIC;
  }

  /**
   * Bytes of the packet in progress received so far: 0 exactly at a packet boundary, so a
   * connection ending with `buffered > 0` ended mid-packet.
   */
  get buffered(): number {
    return this.partial === null ? this.headerFill : HEADER_LENGTH + this.partialFill;
  }

  push(chunk: Uint8Array, onPacket: (payload: Uint8Array) => void): void {
    if (this.error !== null) throw this.error;
    const buf = asBuffer(chunk);
    const end = buf.length;
    let pos = 0;
    while (pos < end) {
      const partial = this.partial;
      if (partial !== null) {
        const n = Math.min(partial.length - this.partialFill, end - pos);
        buf.copy(partial, this.partialFill, pos, pos + n);
        this.partialFill += n;
        pos += n;
        if (this.partialFill < partial.length) return;
        this.partial = null;
        this.partialFill = 0;
        onPacket(partial);
        continue;
      }
      let length: number;
      if (this.headerFill === 0 && end - pos >= HEADER_LENGTH) {
        length = this.readHeader(buf.subarray(pos, pos + HEADER_LENGTH));
        pos += HEADER_LENGTH;
      } else {
        const n = Math.min(HEADER_LENGTH - this.headerFill, end - pos);
        buf.copy(this.header, this.headerFill, pos, pos + n);
        this.headerFill += n;
        pos += n;
        if (this.headerFill < HEADER_LENGTH) return;
        this.headerFill = 0;
        length = this.readHeader(this.header);
      }
      if (end - pos >= length) {
        const payload = length === 0 ? EMPTY : buf.subarray(pos, pos + length);
        pos += length;
        onPacket(payload);
      } else {
        const assembling = Buffer.allocUnsafe(length);
        this.partialFill = buf.copy(assembling, 0, pos, end);
        this.partial = assembling;
        return;
      }
    }
  }

  // magic(2) length(2), as packetHeaderLayout declares, read by hand: binary-parser's parse()
  // allocates a DataView and an object per call, which showed in per-request profiles (see the
  // FastCGI codec). A property test holds the two readings equal.
  private readHeader(bytes: Buffer): number {
    const h: PacketHeader = { magic: (bytes[0]! << 8) | bytes[1]!, length: (bytes[2]! << 8) | bytes[3]! };
    if (h.magic !== this.magic) {
      // An HTTP client at the AJP port is the usual cause: say so rather than print hex only.
      const text = /^[A-Z]{2}$/.test(String.fromCharCode(h.magic >>> 8, h.magic & 0xff)) ? ' (plain HTTP?)' : '';
      throw this.fail(AjpErrorCode.BadMagic, `ajp: bad packet magic ${hex4(h.magic)}, want ${hex4(this.magic)}${text}`);
    }
    if (h.length > this.maxPayload) {
      throw this.fail(
        AjpErrorCode.PacketTooLarge,
        `ajp: packet of ${h.length} bytes exceeds the packet size of ${this.maxPayload + HEADER_LENGTH} (header included)`,
      );
    }
    return h.length;
  }

  private fail(code: string, message: string): ProtocolError {
    this.error = new ProtocolError(code, message);
    return this.error;
  }
}

// ---------------------------------------------------------------------------------------------
// Reading payloads ("Basic Packet Structure": byte, boolean, integer, string)

/**
 * A read position in one payload; running past the end throws `ProtocolError` `code`.
 * Strings are cut from one latin-1 decode of the whole payload (bytes and chars line up one to
 * one): a FORWARD_REQUEST carries a dozen or more short strings, and one native latin1Slice
 * plus String#slice per field measured 3-4x faster than a latin1Slice per field.
 */
class PayloadReader {
  pos = 0;
  private text: string | null = null;
  private readonly buf: Latin1Buffer;
  private readonly end: number;
  private readonly code: string;
  private readonly what: string;

  constructor(buf: Latin1Buffer, code: string, what: string) {
    this.buf = buf;
    this.end = buf.length;
    this.code = code;
    this.what = what;
  }

  u8(field: string): number {
    if (this.pos >= this.end) throw this.truncated(field);
    return this.buf[this.pos++];
  }

  u16(field: string): number {
    const at = this.pos;
    if (at + 2 > this.end) throw this.truncated(field);
    this.pos = at + 2;
    return (this.buf[at] << 8) | this.buf[at + 1];
  }

  /** length(2), bytes, 0x00 (the terminator is skipped, not checked, as httpd and Tomcat do). */
  stringOrNull(field: string): string | null {
    const length = this.u16(field);
    return length === NULL_STRING_LENGTH ? null : this.chars(length, field);
  }

  /** A string where null makes no sense reads as '' (Tomcat's MessageBytes do the same). */
  string(field: string): string {
    const length = this.u16(field);
    return length === NULL_STRING_LENGTH ? '' : this.chars(length, field);
  }

  /**
   * `length` bytes as a string. A name is read through `cache`: the same string object as last
   * time when the bytes at this `slot` are the same as then (see name-cache.ts).
   */
  chars(length: number, field: string, cache: NameCache | null = null, slot = 0): string {
    const start = this.pos;
    const stop = start + length;
    if (stop >= this.end) throw this.truncated(field);
    this.pos = stop + 1;
    if (length === 0) return '';
    this.text ??= this.buf.latin1Slice(0, this.end);
    return cache === null ? this.text.slice(start, stop) : cache.name(this.buf, this.text, start, length, slot);
  }

  fail(why: string): ProtocolError {
    return new ProtocolError(this.code, `ajp: invalid ${this.what}: ${why}`);
  }

  truncated(field: string): ProtocolError {
    return this.fail(`truncated at ${field} (offset ${this.pos} of ${this.end})`);
  }
}

/**
 * httpd sends the same header and attribute names in the same order on every request of a
 * client: names are reused by position (NameCache, shared with FastCGI and SCGI), so that the
 * server's lookups by name (and the environ keys made from them) find a string V8 has seen,
 * hash computed, instead of a fresh one. One cache per kind of name, shared by all connections.
 */
const requestHeaderNames = new NameCache();
const requestAttributeNames = new NameCache();

/**
 * num_headers, then each header: a coded name (0xA0xx, from `codes`) or a string, and a value.
 * String names are reused through `cache` (see NameCache) when one is given.
 */
function readHeaders(r: PayloadReader, codes: readonly string[], side: string, cache: NameCache | null): Array<[string, string]> {
  const count = r.u16('num_headers');
  const headers: Array<[string, string]> = [];
  for (let i = 0; i < count; i++) {
    let name: string;
    const nameLength = r.u16('header name');
    if (nameLength >>> 8 === HEADER_CODE_MARKER) {
      const known = codes[nameLength & 0xff];
      if (known === undefined || known === '') throw r.fail(`unknown ${side} header code ${hex4(nameLength)}`);
      name = known;
    } else if (nameLength === NULL_STRING_LENGTH) {
      throw r.fail('null header name');
    } else {
      name = r.chars(nameLength, 'header name', cache, i);
    }
    headers.push([name, r.string('header value')]);
  }
  return headers;
}

/**
 * Decodes a FORWARD_REQUEST payload (from its prefix byte, 2). Throws `ProtocolError`
 * `TSGI_AJP_BAD_REQUEST` for anything truncated or malformed: another prefix, an unknown
 * method or header code, method 0xFF without stored_method, an unknown attribute code (it
 * cannot be skipped: its length is unknown), a missing 0xFF terminator. Bytes after the
 * terminator are ignored, as Tomcat does.
 */
export function decodeForwardRequest(payload: Uint8Array): ForwardRequest {
  const r = new PayloadReader(asBuffer(payload), AjpErrorCode.BadRequest, 'forward request');
  const prefix = r.u8('prefix code');
  if (prefix !== PrefixCode.ForwardRequest) throw r.fail(`prefix code ${prefix}, want ${PrefixCode.ForwardRequest}`);
  const methodCode = r.u8('method');
  const protocol = r.string('protocol');
  const requestUri = r.string('req_uri');
  const remoteAddr = r.string('remote_addr');
  const remoteHost = r.stringOrNull('remote_host');
  const serverName = r.string('server_name');
  const serverPort = r.u16('server_port');
  const isSsl = r.u8('is_ssl') !== 0;

  const headers = readHeaders(r, REQUEST_HEADER_NAMES, 'request', requestHeaderNames);

  const attributes: ForwardRequest['attributes'] = {};
  const requestAttributes: Array<[string, string]> = [];
  for (;;) {
    const code = r.u8('attribute code (no 0xFF terminator)');
    if (code === AttributeCode.AreDone) break;
    switch (code) {
      case AttributeCode.Context:
        attributes.context = r.string('context');
        break;
      case AttributeCode.ServletPath:
        attributes.servletPath = r.string('servlet_path');
        break;
      case AttributeCode.RemoteUser:
        attributes.remoteUser = r.string('remote_user');
        break;
      case AttributeCode.AuthType:
        attributes.authType = r.string('auth_type');
        break;
      case AttributeCode.QueryString:
        attributes.queryString = r.string('query_string');
        break;
      case AttributeCode.Route:
        attributes.route = r.string('route');
        break;
      case AttributeCode.SslCert:
        attributes.sslCert = r.string('ssl_cert');
        break;
      case AttributeCode.SslCipher:
        attributes.sslCipher = r.string('ssl_cipher');
        break;
      case AttributeCode.SslSession:
        attributes.sslSession = r.string('ssl_session');
        break;
      case AttributeCode.ReqAttribute: {
        const length = r.u16('req_attribute name');
        const name = length === NULL_STRING_LENGTH ? '' : r.chars(length, 'req_attribute name', requestAttributeNames, requestAttributes.length);
        requestAttributes.push([name, r.string('req_attribute value')]);
        break;
      }
      case AttributeCode.SslKeySize:
        attributes.sslKeySize = r.u16('ssl_key_size');
        break;
      case AttributeCode.Secret:
        attributes.secret = r.string('secret');
        break;
      case AttributeCode.StoredMethod:
        attributes.storedMethod = r.string('stored_method');
        break;
      default:
        throw r.fail(`unknown attribute code 0x${code.toString(16).padStart(2, '0')} at offset ${r.pos - 1}`);
    }
  }

  let method: string;
  if (methodCode === METHOD_STORED) {
    if (attributes.storedMethod === undefined || attributes.storedMethod === '') {
      throw r.fail('method code 0xFF without a stored_method attribute');
    }
    method = attributes.storedMethod;
  } else {
    const known = METHOD_NAMES[methodCode];
    if (known === undefined || known === '') throw r.fail(`unknown method code ${methodCode}`);
    method = known;
  }
  return {
    method,
    protocol,
    requestUri,
    remoteAddr,
    remoteHost,
    serverName,
    serverPort,
    isSsl,
    headers,
    attributes,
    requestAttributes,
  };
}

/**
 * Decodes a request body packet's payload, `length(2) data`, into its data (a `subarray`, no
 * copy). Empty data means the web server has no more body: httpd sends `00 00`, the document
 * describes an empty payload; both decode to an empty array. Throws `ProtocolError`
 * `TSGI_AJP_BAD_BODY` for a one-byte payload or a length running past the payload; bytes after
 * the data are ignored, as Tomcat does.
 */
export function decodeBodyChunk(payload: Uint8Array): Uint8Array {
  const total = payload.length;
  if (total === 0) return EMPTY;
  if (total < 2) {
    throw new ProtocolError(AjpErrorCode.BadBody, `ajp: invalid body packet: ${total}-byte payload`);
  }
  const length = (payload[0] << 8) | payload[1];
  if (length > total - 2) {
    throw new ProtocolError(
      AjpErrorCode.BadBody,
      `ajp: invalid body packet: data length ${length} runs past the ${total}-byte payload`,
    );
  }
  return length === 0 ? EMPTY : payload.subarray(2, 2 + length);
}

// ---------------------------------------------------------------------------------------------
// Writing packets

// One scratch buffer for building variable-length packets, copied out at the exact size. Sync
// code only touches it, so sharing it across connections is safe. 4 + 65535 is the most the
// length field can describe.
const SCRATCH_SIZE = HEADER_LENGTH + 0xffff;
let scratch: Latin1Buffer | null = null;

class PacketWriter {
  at = HEADER_LENGTH;
  private readonly buf: Latin1Buffer;
  private readonly limit: number;
  private readonly overflowCode: string | null;
  private readonly what: string;

  constructor(limit: number, overflowCode: string | null, what: string) {
    scratch ??= Buffer.allocUnsafe(SCRATCH_SIZE) as Latin1Buffer;
    this.buf = scratch;
    this.limit = limit;
    this.overflowCode = overflowCode;
    this.what = what;
  }

  room(n: number): void {
    if (this.at + n > this.limit) {
      const message = `ajp: ${this.what} exceeds the packet size of ${this.limit} bytes`;
      throw this.overflowCode === null ? new RangeError(message) : new ProtocolError(this.overflowCode, message);
    }
  }

  u8(value: number): void {
    this.room(1);
    this.buf[this.at++] = value;
  }

  u16(value: number): void {
    this.room(2);
    this.buf[this.at] = value >>> 8;
    this.buf[this.at + 1] = value & 0xff;
    this.at += 2;
  }

  string(value: string | null): void {
    if (value === null) {
      this.u16(NULL_STRING_LENGTH);
      return;
    }
    const length = value.length;
    this.room(length + 3);
    this.u16(length);
    if (length !== 0) this.buf.latin1Write(value, this.at);
    this.at += length;
    this.buf[this.at++] = 0;
  }

  /** Writes magic and length and copies the packet out of the scratch buffer. */
  finish(magic: number): Uint8Array {
    const buf = this.buf;
    buf[0] = magic >>> 8;
    buf[1] = magic & 0xff;
    const length = this.at - HEADER_LENGTH;
    buf[2] = length >>> 8;
    buf[3] = length & 0xff;
    const out = Buffer.allocUnsafe(this.at);
    buf.copy(out, 0, 0, this.at);
    return out;
  }
}

function fixedPacket(magic: number, payload: number[]): Buffer {
  const out = Buffer.allocUnsafe(HEADER_LENGTH + payload.length);
  out[0] = magic >>> 8;
  out[1] = magic & 0xff;
  out[2] = payload.length >>> 8;
  out[3] = payload.length & 0xff;
  for (let i = 0; i < payload.length; i++) out[HEADER_LENGTH + i] = payload[i];
  return out;
}

// Response header names to codes: the table's spelling first (what apps mostly write, and all
// Tomcat's getResponseAjpIndex codes), then any case; httpd reads a code the same either way.
const RESPONSE_CODES = new Map<string, number>(Object.entries(ResponseHeaderCode));
const RESPONSE_CODES_LOWER = new Map<string, number>(
  Object.entries(ResponseHeaderCode).map(([name, code]) => [name.toLowerCase(), code]),
);

function responseHeaderCode(name: string): number | undefined {
  return RESPONSE_CODES.get(name) ?? RESPONSE_CODES_LOWER.get(name.toLowerCase());
}

/**
 * SEND_HEADERS: status, reason phrase and headers, names coded where the table has them (any
 * case). Strings must be latin-1, as the runner's checks guarantee. Throws `ProtocolError`
 * `TSGI_AJP_HEADERS_TOO_LARGE` when the packet would exceed `maxPacketSize` (default 8192):
 * AJP has no continuation for headers.
 */
export function encodeSendHeaders(
  status: number,
  message: string,
  headers: Array<[string, string]>,
  maxPacketSize: number = DEFAULT_PACKET_SIZE,
): Uint8Array {
  checkUint('maxPacketSize', maxPacketSize, MAX_PACKET_SIZE);
  const size = sendHeadersSize(status, message, headers, maxPacketSize);
  const out = Buffer.allocUnsafe(size);
  writeSendHeaders(out, 0, size, status, message, headers);
  return out;
}

/**
 * The whole SEND_HEADERS packet's size, checked against `maxPacketSize` (ProtocolError
 * TSGI_AJP_HEADERS_TOO_LARGE) before a byte is written: header, prefix, status, the message
 * (length, bytes, 0x00), the count, then per header a code (2) or a string name, and the value.
 */
function sendHeadersSize(status: number, message: string, headers: Array<[string, string]>, maxPacketSize: number): number {
  checkUint('status', status, 0xffff);
  let size = HEADER_LENGTH + 1 + 2 + message.length + 3 + 2;
  for (let i = 0; i < headers.length; i++) {
    const [name, value] = headers[i]!;
    if (responseHeaderCode(name) !== undefined) size += 2;
    else {
      // A string name this long would read back as a header code (possible in 64 KiB packets).
      if (name.length >= HEADER_CODE_MARKER << 8) {
        throw new ProtocolError(AjpErrorCode.HeadersTooLarge, `ajp: header name of ${name.length} bytes`);
      }
      size += name.length + 3;
    }
    size += value.length + 3;
  }
  if (size > maxPacketSize || headers.length > 0xffff) {
    throw new ProtocolError(AjpErrorCode.HeadersTooLarge, `ajp: SEND_HEADERS exceeds the packet size of ${maxPacketSize} bytes`);
  }
  return size;
}

/** SEND_HEADERS of `size` bytes (from sendHeadersSize) into `buf` at `at`; returns the end. */
function writeSendHeaders(buf: Buffer, at: number, size: number, status: number, message: string, headers: Array<[string, string]>): number {
  const length = size - HEADER_LENGTH;
  buf[at] = CONTAINER_MAGIC >>> 8;
  buf[at + 1] = CONTAINER_MAGIC & 0xff;
  buf[at + 2] = length >>> 8;
  buf[at + 3] = length & 0xff;
  buf[at + 4] = PrefixCode.SendHeaders;
  buf[at + 5] = status >>> 8;
  buf[at + 6] = status & 0xff;
  // httpd 2.x with mod_jk failed on a null reason phrase (Tomcat bug 45026): always a string.
  at = putString(buf, at + 7, message);
  buf[at] = headers.length >>> 8;
  buf[at + 1] = headers.length & 0xff;
  at += 2;
  for (let i = 0; i < headers.length; i++) {
    const [name, value] = headers[i]!;
    const code = responseHeaderCode(name);
    if (code !== undefined) {
      buf[at] = code >>> 8;
      buf[at + 1] = code & 0xff;
      at += 2;
    } else at = putString(buf, at, name);
    at = putString(buf, at, value);
  }
  return at;
}

/**
 * length(2), latin-1 bytes, 0x00. Short strings (most header names and values) are written char
 * by char: cheaper than a call into latin1Write for each.
 */
function putString(buf: Buffer, at: number, value: string): number {
  const length = value.length;
  buf[at] = length >>> 8;
  buf[at + 1] = length & 0xff;
  at += 2;
  if (length > 32) (buf as Latin1Buffer).latin1Write(value, at);
  else for (let i = 0; i < length; i++) buf[at + i] = value.charCodeAt(i);
  at += length;
  buf[at] = 0;
  return at + 1;
}

/**
 * Appends to `out` the gather list (for `socket.writev` or `Buffer.concat`) of SEND_BODY_CHUNK
 * packets carrying `data`, each at most `maxPacketSize` bytes, so `maxPacketSize - 8` bytes of
 * data a packet: per packet a fresh 7-byte head ('AB' length 0x03 chunk length), a `subarray`
 * of `data` (no copy) and a shared one-byte 0x00, the trailer httpd checks for. Empty `data`
 * appends nothing: an empty SEND_BODY_CHUNK means "flush" to httpd. The caller must not modify
 * `data` until the list is written.
 */
export function encodeSendBodyChunk(data: Uint8Array, maxPacketSize: number, out: Uint8Array[]): void {
  checkUint('maxPacketSize', maxPacketSize, MAX_PACKET_SIZE);
  const perPacket = maxPacketSize - SEND_BODY_OVERHEAD;
  if (perPacket < 1) throw new RangeError(`ajp: maxPacketSize ${maxPacketSize} leaves no room for body data`);
  const total = data.length;
  for (let at = 0; at < total; at += perPacket) {
    const length = Math.min(perPacket, total - at);
    const head = Buffer.allocUnsafe(7);
    writeChunkHead(head, 0, length);
    out.push(head, length === total ? data : data.subarray(at, at + length), TRAILER);
  }
}
const TRAILER = new Uint8Array(1);

/**
 * Bodies up to this many bytes are copied into the buffer that carries the packets around them,
 * so that a small response is one buffer and one write(2). Measured on a loopback socket pair
 * (CPU of sender and receiver per response, min of 8 rounds): one buffer is cheaper up to 2 KiB
 * (0.3-0.8 µs), even at 3-4 KiB, and from 6 KiB on the gathered views win (0.4-0.6 µs): past 4
 * KiB a buffer no longer comes from Buffer's pool, and the copy grows.
 */
export const INLINE_BODY_MAX = 4096;

/** The head of a response for `encodeResponse`: status code, reason phrase, headers. */
export interface ResponseHead {
  status: number;
  message: string;
  headers: Array<[string, string]>;
}

/**
 * Appends to `out` what goes on the wire for (part of) a response, ready for one write: the
 * SEND_HEADERS of `head` (when given, same bytes as `encodeSendHeaders`), `data` as
 * SEND_BODY_CHUNK packets of at most `maxPacketSize` bytes (`maxPacketSize - 8` data bytes each,
 * as `encodeSendBodyChunk` splits it), then END_RESPONSE when `reuse` is given (same bytes as
 * `encodeEndResponse`). Everything goes into one buffer, `data` copied, when `data` has at most
 * `INLINE_BODY_MAX` bytes. Past that, each packet's data is a view of `data` (no copy; the caller
 * must not modify it until written) and the bytes around the views share one buffer: SEND_HEADERS
 * with the first packet's head, then per boundary the 0x00 trailer with the next head, then the
 * last trailer with END_RESPONSE: n + 1 pieces for n packets. Every piece is a Buffer (a plain
 * Uint8Array would be converted by each Writable.write). Throws as `encodeSendHeaders` does.
 */
export function encodeResponse(
  out: Uint8Array[],
  head: ResponseHead | null,
  data: Uint8Array | null,
  reuse: boolean | undefined,
  maxPacketSize: number,
): void {
  checkUint('maxPacketSize', maxPacketSize, MAX_PACKET_SIZE);
  const perPacket = maxPacketSize - SEND_BODY_OVERHEAD;
  if (perPacket < 1) throw new RangeError(`ajp: maxPacketSize ${maxPacketSize} leaves no room for body data`);
  const headLength = head === null ? 0 : sendHeadersSize(head.status, head.message, head.headers, maxPacketSize);
  const total = data === null ? 0 : data.length;
  const packets = Math.ceil(total / perPacket);
  const endLength = reuse === undefined ? 0 : END_RESPONSE_REUSE.length;
  if (total <= INLINE_BODY_MAX) {
    const buf = Buffer.allocUnsafe(headLength + total + packets * SEND_BODY_OVERHEAD + endLength);
    let at = head === null ? 0 : writeSendHeaders(buf, 0, headLength, head.status, head.message, head.headers);
    for (let from = 0; from < total; from += perPacket) {
      const length = Math.min(perPacket, total - from);
      at = writeChunkHead(buf, at, length);
      buf.set(from === 0 && length === total ? data! : data!.subarray(from, from + length), at);
      at += length;
      buf[at++] = 0;
    }
    if (reuse !== undefined) writeEnd(buf, at, reuse);
    if (buf.length > 0) out.push(buf);
    return;
  }
  // head + first chunk head, (n - 1) x (trailer + chunk head), trailer + END_RESPONSE.
  const glue = Buffer.allocUnsafe(headLength + 7 + (packets - 1) * SEND_BODY_OVERHEAD + 1 + endLength);
  let at = head === null ? 0 : writeSendHeaders(glue, 0, headLength, head.status, head.message, head.headers);
  let piece = 0;
  for (let from = 0; from < total; from += perPacket) {
    const length = Math.min(perPacket, total - from);
    if (from > 0) glue[at++] = 0;
    at = writeChunkHead(glue, at, length);
    out.push(glue.subarray(piece, at), bufferView(data!, from, length));
    piece = at;
  }
  glue[at++] = 0;
  if (reuse !== undefined) at = writeEnd(glue, at, reuse);
  out.push(glue.subarray(piece, at));
}

/** 'AB', length, SEND_BODY_CHUNK, chunk length: the 7 bytes before a packet's data. */
function writeChunkHead(buf: Buffer, at: number, length: number): number {
  const payload = length + 4; // prefix, chunk length, trailer
  buf[at] = 0x41; // 'A'
  buf[at + 1] = 0x42; // 'B'
  buf[at + 2] = payload >>> 8;
  buf[at + 3] = payload & 0xff;
  buf[at + 4] = PrefixCode.SendBodyChunk;
  buf[at + 5] = length >>> 8;
  buf[at + 6] = length & 0xff;
  return at + 7;
}

function writeEnd(buf: Buffer, at: number, reuse: boolean): number {
  return at + (reuse ? END_RESPONSE_REUSE : END_RESPONSE_CLOSE).copy(buf, at);
}

/** `length` bytes of `data` from `from` as a Buffer sharing its memory. */
function bufferView(data: Uint8Array, from: number, length: number): Buffer {
  if (Buffer.isBuffer(data)) return from === 0 && length === data.length ? data : data.subarray(from, from + length);
  return Buffer.from(data.buffer, data.byteOffset + from, length);
}

/** END_RESPONSE; `reuse` false asks the web server to close the connection. Shared: don't modify. */
export function encodeEndResponse(reuse: boolean): Uint8Array {
  return reuse ? END_RESPONSE_REUSE : END_RESPONSE_CLOSE;
}
const END_RESPONSE_REUSE = fixedPacket(CONTAINER_MAGIC, [PrefixCode.EndResponse, 1]);
const END_RESPONSE_CLOSE = fixedPacket(CONTAINER_MAGIC, [PrefixCode.EndResponse, 0]);

/** GET_BODY_CHUNK asking for up to `size` bytes (Tomcat asks for packet size - 6). */
export function encodeGetBodyChunk(size: number): Uint8Array {
  checkUint('GET_BODY_CHUNK size', size, 0xffff);
  return fixedPacket(CONTAINER_MAGIC, [PrefixCode.GetBodyChunk, size >>> 8, size & 0xff]);
}

/** CPONG, the answer to CPING. Shared: don't modify. */
export function encodeCPong(): Uint8Array {
  return CPONG;
}
const CPONG = fixedPacket(CONTAINER_MAGIC, [PrefixCode.CPong]);

// ---------------------------------------------------------------------------------------------
// Web-server side (tests, clients)

const METHOD_CODES = new Map<string, number>(Object.entries(MethodCode));
const REQUEST_CODES = new Map<string, number>(Object.entries(RequestHeaderCode));

function latin1(field: string, value: string): string {
  if (NOT_LATIN1.test(value)) throw new RangeError(`ajp: ${field} ${JSON.stringify(value)} is not latin-1`);
  return value;
}

function writeAttribute(w: PacketWriter, code: number, field: string, value: string | undefined): void {
  if (value === undefined) return;
  w.u8(code);
  w.string(latin1(field, value));
}

/**
 * A whole FORWARD_REQUEST packet (0x12 0x34 magic) as httpd's mod_proxy_ajp lays it out:
 * header names coded when the table has them (any case), attributes in httpd's order (secret
 * first; context and servlet_path, which httpd never sends, next), then `requestAttributes`,
 * then 0xFF. A method outside the table goes as 0xFF with stored_method (`attributes.storedMethod`
 * or the method). Throws `RangeError` for non-latin-1 strings or a payload over 65535 bytes.
 */
export function encodeForwardRequest(req: ForwardRequestInit): Uint8Array {
  const w = new PacketWriter(SCRATCH_SIZE, null, 'forward request');
  const method = req.method ?? 'GET';
  const methodCode = METHOD_CODES.get(method);
  const attrs = req.attributes ?? {};
  const storedMethod = attrs.storedMethod ?? (methodCode === undefined ? method : undefined);
  const serverPort = req.serverPort ?? 80;
  checkUint('server port', serverPort, 0xffff);
  w.u8(PrefixCode.ForwardRequest);
  w.u8(methodCode ?? METHOD_STORED);
  w.string(latin1('protocol', req.protocol ?? 'HTTP/1.1'));
  w.string(latin1('req_uri', req.requestUri ?? '/'));
  w.string(latin1('remote_addr', req.remoteAddr ?? '127.0.0.1'));
  const remoteHost = req.remoteHost ?? null;
  w.string(remoteHost === null ? null : latin1('remote_host', remoteHost));
  w.string(latin1('server_name', req.serverName ?? 'localhost'));
  w.u16(serverPort);
  w.u8(req.isSsl === true ? 1 : 0);
  const headers = req.headers ?? [];
  checkUint('header count', headers.length, 0xffff);
  w.u16(headers.length);
  for (const [name, value] of headers) {
    const code = REQUEST_CODES.get(name.toLowerCase());
    if (code !== undefined) {
      w.u16(code);
    } else {
      if (name.length >= HEADER_CODE_MARKER << 8) throw new RangeError(`ajp: header name of ${name.length} bytes`);
      w.string(latin1('header name', name));
    }
    w.string(latin1('header value', value));
  }
  writeAttribute(w, AttributeCode.Secret, 'secret', attrs.secret);
  writeAttribute(w, AttributeCode.Context, 'context', attrs.context);
  writeAttribute(w, AttributeCode.ServletPath, 'servlet_path', attrs.servletPath);
  writeAttribute(w, AttributeCode.RemoteUser, 'remote_user', attrs.remoteUser);
  writeAttribute(w, AttributeCode.AuthType, 'auth_type', attrs.authType);
  writeAttribute(w, AttributeCode.QueryString, 'query_string', attrs.queryString);
  writeAttribute(w, AttributeCode.Route, 'route', attrs.route ?? attrs.jvmRoute);
  writeAttribute(w, AttributeCode.SslCert, 'ssl_cert', attrs.sslCert);
  writeAttribute(w, AttributeCode.SslCipher, 'ssl_cipher', attrs.sslCipher);
  writeAttribute(w, AttributeCode.SslSession, 'ssl_session', attrs.sslSession);
  if (attrs.sslKeySize !== undefined) {
    checkUint('ssl_key_size', attrs.sslKeySize, 0xffff);
    w.u8(AttributeCode.SslKeySize);
    w.u16(attrs.sslKeySize);
  }
  writeAttribute(w, AttributeCode.StoredMethod, 'stored_method', storedMethod);
  for (const [name, value] of req.requestAttributes ?? []) {
    w.u8(AttributeCode.ReqAttribute);
    w.string(latin1('req_attribute name', name));
    w.string(latin1('req_attribute value', value));
  }
  w.u8(AttributeCode.AreDone);
  return w.finish(SERVER_MAGIC);
}

/**
 * A whole request body packet: 0x12 0x34, length, then `length(2) data`, as httpd sends it.
 * Empty `data` gives httpd's end-of-body packet 12 34 00 02 00 00. At most 65533 bytes.
 */
export function encodeBodyPacket(data: Uint8Array): Uint8Array {
  const length = data.length;
  if (length > 0xffff - 2) throw new RangeError(`ajp: body packet data of ${length} bytes exceeds 65533`);
  const out = Buffer.allocUnsafe(HEADER_LENGTH + 2 + length);
  out[0] = SERVER_MAGIC >>> 8;
  out[1] = SERVER_MAGIC & 0xff;
  out[2] = (length + 2) >>> 8;
  out[3] = (length + 2) & 0xff;
  out[4] = length >>> 8;
  out[5] = length & 0xff;
  out.set(data, 6);
  return out;
}

/** CPING: 12 34 00 01 0A. */
export function encodeCPing(): Uint8Array {
  return fixedPacket(SERVER_MAGIC, [PrefixCode.CPing]);
}

/**
 * Decodes the payload of a container -> web server packet. SEND_BODY_CHUNK must carry exactly
 * one byte after its data, as httpd's ajp_parse_data demands; END_RESPONSE's reuse is any
 * non-zero byte. Throws `ProtocolError` `TSGI_AJP_BAD_RESPONSE` for an unknown prefix code,
 * an unknown header code or anything truncated.
 */
export function decodeContainerPacket(payload: Uint8Array): ContainerPacket {
  const r = new PayloadReader(asBuffer(payload), AjpErrorCode.BadResponse, 'container packet');
  const prefix = r.u8('prefix code');
  switch (prefix) {
    case PrefixCode.SendHeaders: {
      const status = r.u16('status');
      const message = r.string('status message');
      const headers = readHeaders(r, RESPONSE_HEADER_NAMES, 'response', null);
      return { type: 'headers', status, message, headers };
    }
    case PrefixCode.SendBodyChunk: {
      const length = r.u16('chunk length');
      if (payload.length !== 3 + length + 1) {
        throw r.fail(`chunk length ${length} in a ${payload.length}-byte payload, want ${length + 4}`);
      }
      return { type: 'body', data: payload.subarray(3, 3 + length) };
    }
    case PrefixCode.EndResponse:
      return { type: 'end', reuse: r.u8('reuse') !== 0 };
    case PrefixCode.GetBodyChunk:
      return { type: 'get-body', size: r.u16('requested length') };
    case PrefixCode.CPong:
      return { type: 'cpong' };
    default:
      throw r.fail(`unknown prefix code ${prefix}`);
  }
}
