// The CGI response head (RFC 3875 §6) that FastCGI, SCGI and CGI put before the body: written
// by the application side, parsed by the web-server side (tests) and when reading CGI output.

import { Buffer } from 'node:buffer';
import { ProtocolError } from '../errors.js';

/** A parsed CGI response head; `bodyOffset` is where the body starts in the bytes given. */
export interface CgiHead {
  status: number;
  reason: string;
  /** The header fields in order, without `Status:` (Location and the rest stay). */
  headers: Array<[string, string]>;
  bodyOffset: number;
}

/**
 * `Status: <status>\r\n`, each `Name: value\r\n`, then `\r\n`. Names and values are already
 * validated byte strings (latin-1, no CR/LF), so they are written as they are.
 */
export function encodeCgiHead(status: string, headers: Array<[string, string]>): Buffer {
  return Buffer.from(cgiHeadText(status, headers), 'latin1');
}

/** The head of encodeCgiHead() as a string, one char per byte: its length is its size on the
 * wire, so a sink can write it straight into the buffer that also carries the body. */
export function cgiHeadText(status: string, headers: Array<[string, string]>): string {
  let head = `Status: ${status}\r\n`;
  for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
  return `${head}\r\n`;
}

const LF = 0x0a;
const CR = 0x0d;

// RFC 9110 §5.1 field-name = token; §5.5 field-value: no CTLs but HTAB (obs-text allowed).
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const CTL = /[\x00-\x08\x0a-\x1f\x7f]/;
// RFC 3875 §6.3.3: Status: status-code SP reason-phrase. A missing reason is tolerated.
const STATUS_VALUE = /^([1-9][0-9]{2})(?:[ \t]+(.*))?$/;
// NPH scripts (RFC 3875 §5) write an HTTP status line first instead.
const STATUS_LINE = /^HTTP\/[0-9]\.[0-9] ([1-9][0-9]{2})(?: (.*))?$/;

// Only SP and HTAB: String#trim would also eat U+00A0, which here is the byte 0xA0.
function trimOws(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && (s[start] === ' ' || s[start] === '\t')) start++;
  while (end > start && (s[end - 1] === ' ' || s[end - 1] === '\t')) end--;
  return s.slice(start, end);
}

const badHead = (message: string) => new ProtocolError('TSGI_CGI_BAD_HEAD', `cgi: ${message}`);

/**
 * Parses a CGI response head from the start of `bytes`: null while the blank line that ends it
 * has not arrived, else the head. Lines end in CRLF or LF. Without `Status:` the status is
 * 302 Found when `Location:` is present (RFC 3875 §6.2.3), else 200 OK. An NPH status line
 * (`HTTP/1.1 200 OK`) may come first. Malformed lines throw a `ProtocolError`
 * (`TSGI_CGI_BAD_HEAD`) as soon as they are complete, before the blank line.
 */
export function parseCgiHead(bytes: Uint8Array): CgiHead | null {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headers: Array<[string, string]> = [];
  let status: number | undefined;
  let reason = '';
  let location = false;

  for (let start = 0; ; ) {
    const lf = buf.indexOf(LF, start);
    if (lf === -1) return null;
    const end = lf > start && buf[lf - 1] === CR ? lf - 1 : lf;
    const line = buf.toString('latin1', start, end);
    const first = start === 0;
    start = lf + 1;

    if (line === '') {
      if (first) throw badHead('response head has no fields');
      if (status === undefined) {
        status = location ? 302 : 200;
        reason = location ? 'Found' : 'OK';
      }
      return { status, reason, headers, bodyOffset: start };
    }
    if (CTL.test(line)) throw badHead('control character in response head');

    if (first && line.startsWith('HTTP/')) {
      const match = STATUS_LINE.exec(line);
      if (!match) throw badHead(`bad status line ${JSON.stringify(line)}`);
      status = Number(match[1]);
      reason = trimOws(match[2] ?? '');
      continue;
    }

    const colon = line.indexOf(':');
    const name = colon === -1 ? '' : line.slice(0, colon);
    // Also rejects obsolete line folding: a continuation line starts with SP or HTAB.
    if (!TOKEN.test(name)) throw badHead(`bad header line ${JSON.stringify(line)}`);
    const value = trimOws(line.slice(colon + 1));
    const lower = name.toLowerCase();
    if (lower === 'status') {
      const match = STATUS_VALUE.exec(value);
      if (!match) throw badHead(`bad Status ${JSON.stringify(value)}`);
      if (status !== undefined) throw badHead('more than one status');
      status = Number(match[1]);
      reason = match[2] ?? '';
      continue;
    }
    if (lower === 'location') location = true;
    headers.push([name, value]);
  }
}
