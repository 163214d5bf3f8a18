// SCGI from the web server's side, for tests: request bytes, a raw exchange with tsgi's socket
// (what came back, and whether tsgi ended it with FIN or RST), and an observer for the byte tap
// that reads each connection's netstring as the web server sent it (names in order, repeats kept).

import { Buffer } from 'node:buffer';
import net from 'node:net';
import { encodeRequest } from '../../../src/protocols/scgi/codec.js';
import { type CgiHead, parseCgiHead } from '../../../src/runner/cgi-head.js';
import type { Direction, TapConnection } from './tap.js';

export type Target = { port: number; host?: string } | { path: string };

/**
 * A whole SCGI request: CONTENT_LENGTH (the body's length) first, SCGI=1, then `vars` in order.
 * `vars` may override CONTENT_LENGTH (a lying length) but it still goes first.
 */
export function scgiRequest(vars: Record<string, string> | Array<[string, string]> = {}, body: Uint8Array | string = ''): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'latin1') : body;
  const list = Array.isArray(vars) ? vars : Object.entries(vars);
  const cl = list.find(([n]) => n === 'CONTENT_LENGTH')?.[1] ?? String(bytes.length);
  const rest = list.filter(([n]) => n !== 'CONTENT_LENGTH' && n !== 'SCGI');
  return Buffer.from(encodeRequest([['CONTENT_LENGTH', cl], ['SCGI', '1'], ...rest], bytes));
}

export interface Exchange {
  /** Everything tsgi sent. */
  bytes: Buffer;
  /** Its CGI response head, when one arrived whole. */
  head: CgiHead | null;
  body: Buffer;
  /** How the connection ended: tsgi's FIN, a reset (ECONNRESET/EPIPE), or our own timer. */
  end: 'fin' | 'reset' | 'timeout';
  /** ms from connect until the end. */
  ms: number;
}

export interface ExchangeOptions {
  /** Chunks written one after another (each awaited); a Buffer is one chunk. */
  send?: Buffer | Buffer[];
  /** ms to wait between chunks (default 0: straight after the previous write's callback). */
  gapMs?: number;
  /** Half-close our side after the last chunk. */
  endAfter?: boolean;
  /** Give up (and destroy the socket) after this many ms; the result then says 'timeout'. */
  timeoutMs?: number;
}

/** Connects to `target`, sends, and collects what comes back until tsgi ends the connection. */
export function exchange(target: Target, o: ExchangeOptions = {}): Promise<Exchange> {
  const started = performance.now();
  const socket = 'path' in target ? net.connect(target.path) : net.connect({ host: target.host ?? '127.0.0.1', port: target.port });
  socket.setNoDelay(true);
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve) => {
    let end: Exchange['end'] | undefined;
    const timer = setTimeout(() => {
      end ??= 'timeout';
      socket.destroy();
    }, o.timeoutMs ?? 10_000);
    socket.on('end', () => (end ??= 'fin'));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') end ??= 'reset';
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const bytes = Buffer.concat(chunks);
      let head: CgiHead | null = null;
      try {
        head = parseCgiHead(bytes);
      } catch {
        // not a CGI head
      }
      resolve({ bytes, head, body: head ? bytes.subarray(head.bodyOffset) : Buffer.alloc(0), end: end ?? 'reset', ms: performance.now() - started });
    });
    socket.once('connect', async () => {
      const list = o.send === undefined ? [] : Array.isArray(o.send) ? o.send : [o.send];
      for (const c of list) {
        if (socket.destroyed) return;
        await new Promise<void>((r) => socket.write(c, () => r()));
        if (o.gapMs) await new Promise((r) => setTimeout(r, o.gapMs));
      }
      if (o.endAfter && !socket.destroyed) socket.end();
    });
  });
}

/** `bytes` cut into pieces of `size` bytes (1: byte by byte). */
export function pieces(bytes: Uint8Array, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(Buffer.from(bytes.subarray(at, at + size)));
  return out;
}

// ---------------------------------------------------------------------------------------------
// The tap's view: one record per connection, filled as bytes pass.

export interface ScgiSeen {
  /** The tap's connection (who closed first, byte counts). */
  conn: TapConnection;
  /** Header pairs in the order sent, repeats kept; undefined until the netstring is whole. */
  pairs?: Array<[string, string]>;
  /** Netstring payload length. */
  headBytes?: number;
  /** Body bytes that followed the netstring. */
  bodyBytes: number;
  /** The response's status, once its head passed. */
  status?: number;
  /** Response bytes (head included). */
  responseBytes: number;
  /** Why the netstring could not be read, if it could not. */
  error?: string;
}

export interface ScgiTapWire {
  readonly seen: ScgiSeen[];
  observe(conn: TapConnection, dir: Direction, chunk: Buffer): void;
  clear(): void;
  /** The value of `name` (the first one) in a connection's head. */
  value(s: ScgiSeen, name: string): string | undefined;
}

export function scgiTapWire(): ScgiTapWire {
  const byConn = new Map<TapConnection, { s: ScgiSeen; up: Buffer[]; upLen: number; down: Buffer[]; downLen: number; headDone: boolean }>();
  let seen: ScgiSeen[] = [];
  const MAX_HEAD = 1024 * 1024;
  return {
    get seen() {
      return seen;
    },
    clear() {
      seen = [];
      byConn.clear();
    },
    value(s, name) {
      return s.pairs?.find(([n]) => n === name)?.[1];
    },
    observe(conn, dir, chunk) {
      let st = byConn.get(conn);
      if (!st) {
        st = { s: { conn, bodyBytes: 0, responseBytes: 0 }, up: [], upLen: 0, down: [], downLen: 0, headDone: false };
        byConn.set(conn, st);
        seen.push(st.s);
      }
      if (dir === 'up') {
        if (st.headDone) {
          st.s.bodyBytes += chunk.length;
          return;
        }
        st.up.push(chunk);
        st.upLen += chunk.length;
        const all = Buffer.concat(st.up);
        const parsed = splitNetstring(all);
        if (parsed === null) {
          if (st.upLen > MAX_HEAD) {
            st.headDone = true;
            st.s.error = 'no netstring in the first MiB';
          }
          return;
        }
        st.headDone = true;
        st.up = [];
        if ('error' in parsed) {
          st.s.error = parsed.error;
          return;
        }
        st.s.pairs = parsed.pairs;
        st.s.headBytes = parsed.headBytes;
        st.s.bodyBytes += all.length - parsed.end;
        return;
      }
      st.s.responseBytes += chunk.length;
      if (st.s.status !== undefined || st.downLen > 65536) return;
      st.down.push(chunk);
      st.downLen += chunk.length;
      try {
        const head = parseCgiHead(Buffer.concat(st.down));
        if (head) {
          st.s.status = head.status;
          st.down = [];
        }
      } catch {
        st.s.status = -1;
      }
    },
  };
}

/** A netstring of NUL-separated pairs at the start of `bytes`: null while incomplete. */
export function splitNetstring(bytes: Buffer): { pairs: Array<[string, string]>; headBytes: number; end: number } | { error: string } | null {
  const colon = bytes.indexOf(0x3a);
  if (colon < 0) return bytes.length > 20 ? { error: 'no ":" in the first 20 bytes' } : null;
  const len = Number(bytes.toString('latin1', 0, colon));
  if (!Number.isSafeInteger(len)) return { error: 'bad netstring length' };
  if (bytes.length < colon + 1 + len + 1) return null;
  if (bytes[colon + 1 + len] !== 0x2c) return { error: 'no "," after the payload' };
  const parts = bytes.toString('latin1', colon + 1, colon + 1 + len).split('\0');
  parts.pop(); // after the last NUL
  const pairs: Array<[string, string]> = [];
  for (let i = 0; i + 1 < parts.length; i += 2) pairs.push([parts[i]!, parts[i + 1]!]);
  return { pairs, headBytes: len, end: colon + 1 + len + 1 };
}
