// Helpers the middleware share: header lists as PEP 3333 has them, small fixed responses, and
// bodies that pass the inner body's close() on (a middleware that drops it breaks the inner
// app's work after the response; docs/tsgi.md section 2).

import type { Body, Chunk, Environ, HeaderList, StartResponse } from '../types.js';

/** The first value of header `name` (case-insensitive), or undefined. */
export function getHeader(headers: HeaderList, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [n, v] of headers) if (n.toLowerCase() === lower) return v;
  return undefined;
}

/** `headers` without any header named `name` (case-insensitive). */
export function withoutHeader(headers: HeaderList, ...names: string[]): HeaderList {
  const lower = new Set(names.map((n) => n.toLowerCase()));
  return headers.filter(([n]) => !lower.has(n.toLowerCase()));
}

/** Adds `token` to the Vary header unless it is already there or Vary is `*`. */
export function addVary(headers: HeaderList, token: string): HeaderList {
  const i = headers.findIndex(([n]) => n.toLowerCase() === 'vary');
  if (i < 0) return [...headers, ['Vary', token]];
  const parts = headers[i]![1].split(',').map((s) => s.trim().toLowerCase());
  if (parts.includes('*') || parts.includes(token.toLowerCase())) return headers;
  const out = headers.slice();
  out[i] = [headers[i]![0], headers[i]![1] ? `${headers[i]![1]}, ${token}` : token];
  return out;
}

/** A complete small response: status, headers with Content-Type and Content-Length, one chunk. */
export function respond(
  startResponse: StartResponse,
  status: string,
  text: string,
  headers: HeaderList = [],
  contentType = 'text/plain; charset=utf-8',
  excInfo?: unknown,
): Body {
  const bytes = Buffer.from(text, 'utf8');
  startResponse(status, [['Content-Type', contentType], ['Content-Length', String(bytes.length)], ...headers], excInfo);
  return [bytes];
}

/** PEP 3333 byte string (one char per byte) -> text, when the bytes are UTF-8; else undefined. */
export function decodeUtf8(byteString: string): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(byteString, 'latin1'));
  } catch {
    return undefined;
  }
}

/** Text -> PEP 3333 byte string of its UTF-8 bytes. */
export function encodeUtf8(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

const isThenable = (v: unknown): v is PromiseLike<unknown> =>
  v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function';

/** Calls `fn` and returns its result, awaiting it only when it is a promise. */
export function after<T, U>(v: T | Promise<T>, fn: (v: T) => U | Promise<U>): U | Promise<U> {
  return isThenable(v) ? (v as Promise<T>).then(fn) : fn(v as T);
}

/** The body's chunks, sync or async, as one async iterator. */
export function iterate(body: Body): AsyncIterator<Chunk> | Iterator<Chunk> {
  if (typeof (body as Iterable<Chunk>)[Symbol.iterator] === 'function' && typeof body !== 'string') {
    return (body as Iterable<Chunk>)[Symbol.iterator]();
  }
  if (typeof (body as AsyncIterable<Chunk>)[Symbol.asyncIterator] === 'function') {
    return (body as AsyncIterable<Chunk>)[Symbol.asyncIterator]();
  }
  throw new TypeError('the app must return an iterable or async iterable body');
}

/** A body made of `chunks` (an async generator function) whose close() closes `inner`. */
export function bodyWith(chunks: () => AsyncGenerator<Chunk>, inner: () => Body | undefined, onClose?: () => void): Body {
  return {
    [Symbol.asyncIterator]: chunks,
    async close() {
      onClose?.();
      await inner()?.close?.();
    },
  };
}

/** The request path as the client asked for it: SCRIPT_NAME + PATH_INFO. */
export function requestPath(environ: Environ): string {
  return (environ.SCRIPT_NAME ?? '') + (environ.PATH_INFO ?? '');
}

/** Escapes text for HTML. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
