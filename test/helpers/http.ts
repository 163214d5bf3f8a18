// HTTP from the client's side for integration tests: node:http requests that keep repeated
// headers and the body bytes, and raw sockets for exact bytes (keep-alive, smuggling, aborts).
// Every wait is bounded, so a hang fails as an assertion.

import { Buffer } from 'node:buffer';
import http from 'node:http';
import net from 'node:net';
import { within } from './spawn.js';

export interface Response {
  status: number;
  reason: string;
  /** Header lines as received, in order, repeats kept (names as sent). */
  rawHeaders: Array<[string, string]>;
  /** Every value of header `name` (case-insensitive), in order. */
  header(name: string): string[];
  body: Buffer;
  /** False when the connection ended before the message did (short body, no last chunk). */
  complete: boolean;
}

function headerLookup(raw: Array<[string, string]>): (name: string) => string[] {
  return (name) => raw.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
}

export interface RequestOptions {
  method?: string;
  /** Request target, e.g. `/path?query` (sent as is). */
  path?: string;
  /** A name with an array value is sent as repeated header lines. */
  headers?: Record<string, string | string[]>;
  /** A Buffer/string is sent with Content-Length; an async iterable is sent chunked. */
  body?: Buffer | string | AsyncIterable<Uint8Array>;
  timeoutMs?: number;
  /** Reuse a keep-alive agent; default is a fresh connection per request. */
  agent?: http.Agent;
  /** Connect to this Unix socket instead of 127.0.0.1:port. */
  socketPath?: string;
}

/** One HTTP/1.1 request over node:http; rejects on a connection error before the response head. */
export function request(port: number, o: RequestOptions = {}): Promise<Response> {
  const ms = o.timeoutMs ?? 10_000;
  const what = `${o.method ?? 'GET'} ${o.path ?? '/'} on ${o.socketPath ?? `port ${port}`}`;
  let req: http.ClientRequest | undefined;
  const p = new Promise<Response>((resolve, reject) => {
    req = http.request(
      {
        ...(o.socketPath ? { socketPath: o.socketPath } : { host: '127.0.0.1', port }),
        method: o.method ?? 'GET',
        path: o.path ?? '/',
        headers: o.headers,
        agent: o.agent ?? false,
      },
      (res) => {
        const raw: Array<[string, string]> = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) raw.push([res.rawHeaders[i]!, res.rawHeaders[i + 1]!]);
        const chunks: Buffer[] = [];
        let settled = false;
        const finish = () => {
          if (settled) return;
          settled = true;
          resolve({
            status: res.statusCode ?? 0,
            reason: res.statusMessage ?? '',
            rawHeaders: raw,
            header: headerLookup(raw),
            body: Buffer.concat(chunks),
            complete: res.complete,
          });
        };
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', finish);
        res.on('error', finish); // "aborted": the body was cut short; `complete` says so
        res.on('close', finish);
      },
    );
    req.on('error', reject);
    const body = o.body;
    if (body === undefined) req.end();
    else if (typeof body === 'string' || Buffer.isBuffer(body)) {
      req.setHeader('Content-Length', Buffer.byteLength(body));
      req.end(body);
    } else {
      void (async () => {
        try {
          for await (const c of body) {
            if (!req!.write(c)) await new Promise((r) => req!.once('drain', r));
          }
          req!.end();
        } catch (e) {
          req!.destroy(e as Error);
        }
      })();
    }
  });
  return within(p, ms, what).catch((e: unknown) => {
    req?.destroy();
    throw e;
  });
}

// ---- raw bytes --------------------------------------------------------------------------

export interface ParsedResponse {
  status: number;
  reason: string;
  rawHeaders: Array<[string, string]>;
  header(name: string): string[];
  body: Buffer;
  /** Bytes of `buf` this response took. */
  consumed: number;
}

/**
 * Parses one HTTP/1.x response at the start of `buf`; null when it is not all there yet.
 * `head` is true for the answer to a HEAD request (no body whatever the headers say). A body
 * without Content-Length or chunked framing runs to the end of the connection: pass
 * `eof` once the peer closed.
 */
export function parseResponse(buf: Buffer, o: { head?: boolean; eof?: boolean } = {}): ParsedResponse | null {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] ([0-9]{3}) ?(.*)$/.exec(lines[0]!);
  if (!m) throw new Error(`not an HTTP response: ${JSON.stringify(lines[0])}`);
  const raw: Array<[string, string]> = lines.slice(1).map((l) => {
    const c = l.indexOf(':');
    return [l.slice(0, c), l.slice(c + 1).trim()];
  });
  const header = headerLookup(raw);
  const status = Number(m[1]);
  let pos = end + 4;
  const base = { status, reason: m[2]!, rawHeaders: raw, header };
  if (o.head || status === 204 || status === 304 || (status >= 100 && status < 200)) {
    return { ...base, body: Buffer.alloc(0), consumed: pos };
  }
  if (header('transfer-encoding').some((v) => /chunked/i.test(v))) {
    const parts: Buffer[] = [];
    for (;;) {
      const eol = buf.indexOf('\r\n', pos);
      if (eol < 0) return null;
      const size = parseInt(buf.subarray(pos, eol).toString('latin1').split(';')[0]!, 16);
      if (!Number.isFinite(size)) throw new Error('bad chunk size');
      pos = eol + 2;
      if (size === 0) {
        // trailers (none expected) then the final CRLF
        const fin = buf.indexOf('\r\n', pos);
        if (fin < 0) return null;
        if (fin !== pos) {
          const t = buf.indexOf('\r\n\r\n', pos);
          if (t < 0) return null;
          pos = t + 4;
        } else pos = fin + 2;
        return { ...base, body: Buffer.concat(parts), consumed: pos };
      }
      if (buf.length < pos + size + 2) return null;
      parts.push(buf.subarray(pos, pos + size));
      pos += size + 2;
    }
  }
  const cl = header('content-length')[0];
  if (cl !== undefined) {
    const n = Number(cl);
    if (buf.length < pos + n) return null;
    return { ...base, body: buf.subarray(pos, pos + n), consumed: pos + n };
  }
  if (!o.eof) return null;
  return { ...base, body: buf.subarray(pos), consumed: buf.length };
}

/** A raw TCP connection that collects what the server sends. */
export class RawConn {
  readonly socket: net.Socket;
  /** Everything received and not yet consumed by `readResponse`. */
  buf: Buffer = Buffer.alloc(0);
  closed = false;
  error: Error | null = null;
  private wake: () => void = () => {};

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    socket.on('error', (e) => {
      this.error = e;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  static async open(port: number, host = '127.0.0.1', ms = 5_000): Promise<RawConn> {
    const socket = net.connect({ host, port });
    await within(
      new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      }),
      ms,
      `connect to ${host}:${port}`,
    ).catch((e: unknown) => {
      socket.destroy();
      throw e;
    });
    return new RawConn(socket);
  }

  write(data: string | Uint8Array): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Resolves with `pred`'s value once it returns non-undefined; checked on every arrival and on close. */
  until<T>(pred: () => T | undefined, ms: number, what: string): Promise<T> {
    const p = new Promise<T>((resolve, reject) => {
      const check = () => {
        try {
          const v = pred();
          if (v !== undefined) {
            this.wake = () => {};
            resolve(v);
          } else if (this.closed) {
            this.wake = () => {};
            reject(new Error(`connection closed while waiting for ${what}; received ${JSON.stringify(this.buf.toString('latin1').slice(0, 400))}`));
          }
        } catch (e) {
          reject(e as Error);
        }
      };
      this.wake = check;
      check();
    });
    return within(p, ms, what);
  }

  /** Waits for `text` to appear in what was received. */
  waitFor(text: string, ms = 5_000): Promise<void> {
    return this.until(() => (this.buf.includes(text) ? true : undefined), ms, JSON.stringify(text)).then(() => {});
  }

  /** Reads one whole response (and removes it from `buf`). */
  async readResponse(o: { head?: boolean; ms?: number } = {}): Promise<ParsedResponse> {
    const r = await this.until(() => parseResponse(this.buf, { head: o.head, eof: this.closed }) ?? undefined, o.ms ?? 5_000, 'a whole response');
    this.buf = this.buf.subarray(r.consumed);
    return r;
  }

  /** Resolves once the server closed (or reset) the connection. */
  waitClose(ms = 5_000): Promise<void> {
    if (this.closed) return Promise.resolve();
    return within(new Promise<void>((r) => this.socket.once('close', () => r())), ms, 'the server to close the connection');
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/**
 * Sends `bytes` on a fresh connection and collects the answer until the server closes it (or
 * `ms` passes: then `closedByServer` is false).
 */
export async function exchange(port: number, bytes: string | Uint8Array, ms = 5_000): Promise<{ data: Buffer; closedByServer: boolean }> {
  const c = await RawConn.open(port);
  c.write(bytes);
  let closedByServer = true;
  await c.waitClose(ms).catch(() => (closedByServer = false));
  c.destroy();
  return { data: c.buf, closedByServer };
}

/** Attempts a TCP connection: 'connected', or the error code (ECONNREFUSED...). */
export function tryConnect(port: number, host = '127.0.0.1', ms = 2_000): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (v: string) => {
      clearTimeout(t);
      s.destroy();
      resolve(v);
    };
    const t = setTimeout(() => done('timeout'), ms);
    s.once('connect', () => done('connected'));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
  });
}
