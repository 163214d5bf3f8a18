// The checks of start_response (PEP 3333 "The start_response() Callable"): status and header
// syntax, no CR/LF or characters above U+00FF, no hop-by-hop headers, Content-Length parsed.

import { AppError } from '../errors.js';
import type { HeaderList } from '../types.js';

// RFC 9110: reason-phrase = *( HTAB / SP / VCHAR / obs-text ); three digits, a space, the reason.
const STATUS = /^[1-9][0-9]{2} [\t\x20-\x7e\x80-\xff]*$/;
// token
const NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// field-value: no CR, LF, NUL or other controls but HTAB; latin-1 only.
const VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** Hop-by-hop headers belong to the server (PEP 3333; RFC 9110 §7.6.1): refused here, and left out
 * by the framework adapters of what a framework answers (Hono's streaming helpers set
 * Transfer-Encoding, node:http sets Connection and its chunked framing). */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'trailers',
  'transfer-encoding',
  'upgrade',
]);

const PLAIN = 0;
const CONTENT_LENGTH = 1;
/** Header names that passed the name checks, and which kind they are: apps send the same few
 * names (their literals) on every response. Bounded, as names may come from requests. */
const goodNames = new Map<string, number>();

/** The rules on a (token) name beyond its syntax; remembers the names that pass. */
function nameKind(name: string): number {
  const lower = name.toLowerCase();
  if (HOP_BY_HOP.has(lower)) throw new AppError(`hop-by-hop header ${name} is the server's to set, not the app's`);
  if (lower === 'status') throw new AppError('the status goes in startResponse\'s first argument, not in a Status header');
  const kind = lower === 'content-length' ? CONTENT_LENGTH : PLAIN;
  if (goodNames.size < 512) goodNames.set(name, kind);
  return kind;
}

export function checkStatus(status: unknown): asserts status is string {
  if (typeof status !== 'string') throw new AppError(`status must be a string, got ${typeof status}`);
  if (!STATUS.test(status)) {
    throw new AppError(`malformed status ${JSON.stringify(status)}: want three digits, a space and a reason, latin-1, no control characters`);
  }
}

/**
 * Validates the header list and returns the declared Content-Length (undefined when none).
 * Throws AppError naming the rule broken.
 */
export function checkHeaders(headers: unknown): number | undefined {
  if (!Array.isArray(headers)) throw new AppError('headers must be an array of [name, value] pairs');
  let contentLength: number | undefined;
  for (const h of headers as unknown[]) {
    if (!Array.isArray(h) || h.length !== 2) throw new AppError('each header must be a [name, value] pair');
    const [name, value] = h as [unknown, unknown];
    if (typeof name !== 'string' || typeof value !== 'string') {
      throw new AppError(`header name and value must be strings: ${JSON.stringify(h)}`);
    }
    let kind = goodNames.get(name);
    if (kind === undefined && !NAME.test(name)) throw new AppError(`invalid header name ${JSON.stringify(name)}`);
    if (!VALUE.test(value)) {
      throw new AppError(`invalid value for header ${name}: CR, LF, NUL, control characters and characters above U+00FF are not allowed`);
    }
    if (kind === undefined) kind = nameKind(name);
    if (kind === CONTENT_LENGTH) {
      if (!/^[0-9]{1,15}$/.test(value)) throw new AppError(`invalid Content-Length ${JSON.stringify(value)}`);
      const n = Number(value);
      if (contentLength !== undefined && contentLength !== n) throw new AppError('conflicting Content-Length headers');
      contentLength = n;
    }
  }
  return contentLength;
}

/** The numeric status code of a checked status string. */
export function statusCode(status: string): number {
  return (status.charCodeAt(0) - 48) * 100 + (status.charCodeAt(1) - 48) * 10 + (status.charCodeAt(2) - 48);
}

/** Statuses whose responses never carry a body (RFC 9110 §6.4.1). */
export function bodyless(code: number): boolean {
  return code < 200 || code === 204 || code === 304;
}

export function copyHeaders(headers: HeaderList): HeaderList {
  return headers.map(([n, v]) => [n, v]);
}
