// FastCGI from the web server's side, for server tests: builds request records with the codec,
// sends them whole or in odd splits, and collects what comes back per request id (STDOUT and
// STDERR bytes, END_REQUEST) and on the management id. Every wait is bounded by a timer, so a
// hang fails as an assertion.

import { Buffer } from 'node:buffer';
import net from 'node:net';
import {
  RecordDecoder,
  decodeEndRequest,
  decodeParams,
  encodeBeginRequest,
  encodeParams,
  encodeRecord,
  encodeStream,
  type FcgiRecord,
} from '../../src/protocols/fastcgi/codec.js';
import { FCGI_KEEP_CONN, FCGI_MPXS_CONNS, NULL_REQUEST_ID, RecordType, Role } from '../../src/protocols/fastcgi/constants.js';
import { parseCgiHead, type CgiHead } from '../../src/runner/cgi-head.js';

export type Bytes = Uint8Array | string;

const bytes = (b: Bytes): Uint8Array => (typeof b === 'string' ? Buffer.from(b, 'latin1') : b);

/** One request as a web server would send it. */
export interface FcgiRequestSpec {
  /** FCGI_RESPONDER unless given (any number, to send an unknown role). */
  role?: number;
  keepConn?: boolean;
  params?: Record<string, string> | Array<[string, string]>;
  /** Largest PARAMS record to send (default 65535): small values make pairs straddle records. */
  paramsRecordSize?: number;
  /** STDIN content, as one stream or as the records to send. Default: none. */
  stdin?: Bytes | Bytes[];
  /** Send the empty STDIN record that ends the stream (default true). */
  endStdin?: boolean;
  /** DATA content (Filter role), as one stream or as records; the empty DATA record follows. */
  data?: Bytes | Bytes[];
}

/** A stream's records: the content split at most `max` bytes a record, then the empty record. */
export function streamRecords(type: number, id: number, content: Bytes | Bytes[], max = 65535, end = true): Uint8Array[] {
  const out: Uint8Array[] = [];
  const parts = Array.isArray(content) ? content.map(bytes) : [bytes(content)];
  for (const part of parts) {
    for (let at = 0; at < part.length; at += max) out.push(encodeRecord(type, id, part.subarray(at, at + max)));
  }
  if (end) out.push(encodeRecord(type, id));
  return out;
}

/** The records of one request, in the order a web server sends them, one Uint8Array each. */
export function requestRecords(id: number, spec: FcgiRequestSpec = {}): Uint8Array[] {
  const out = [encodeBeginRequest(id, spec.role ?? Role.Responder, spec.keepConn ? FCGI_KEEP_CONN : 0)];
  const params = spec.params ?? { REQUEST_METHOD: 'GET', SCRIPT_NAME: '', PATH_INFO: '/' };
  const pairs = Array.isArray(params) ? params : Object.entries(params);
  out.push(...streamRecords(RecordType.Params, id, encodeParams(pairs), spec.paramsRecordSize ?? 65535));
  out.push(...streamRecords(RecordType.Stdin, id, spec.stdin ?? [], 65535, spec.endStdin ?? true));
  if (spec.data !== undefined) out.push(...streamRecords(RecordType.Data, id, spec.data));
  return out;
}

/** The whole request as one buffer. */
export function encodeRequest(id: number, spec: FcgiRequestSpec = {}): Buffer {
  return Buffer.concat(requestRecords(id, spec));
}

/** Round-robin over several requests' record lists: how a multiplexing web server interleaves. */
export function interleave(...lists: Uint8Array[][]): Buffer {
  const out: Uint8Array[] = [];
  for (let i = 0; lists.some((l) => i < l.length); i++) for (const l of lists) if (i < l.length) out.push(l[i]!);
  return Buffer.concat(out);
}

/** A record with any padding (bytes as given), as other senders may frame it. */
export function paddedRecord(type: number, id: number, content: Bytes, padding: Uint8Array): Buffer {
  const c = bytes(content);
  const header = Buffer.from([1, type, id >>> 8, id & 0xff, c.length >>> 8, c.length & 0xff, padding.length, 0]);
  return Buffer.concat([header, c, padding]);
}

/** A record header as it was on the wire. */
export interface WireHeader {
  version: number;
  type: number;
  requestId: number;
  contentLength: number;
  paddingLength: number;
}

/** What came back for one request id. */
export class Collected {
  readonly stdoutChunks: Buffer[] = [];
  readonly stderrChunks: Buffer[] = [];
  /** Content length of every STDOUT record, the empty one included. */
  readonly stdoutRecords: number[] = [];
  stdoutBytes = 0;
  /** An empty STDOUT record arrived (end of stream). */
  stdoutEnded = false;
  /** Every END_REQUEST body, in order (there should be exactly one). */
  readonly ends: Array<{ appStatus: number; protocolStatus: number }> = [];
  /** Per record: `out:N`, `err:N`, `end`, or `type:N` for anything else. */
  readonly events: string[] = [];

  get stdout(): Buffer {
    return Buffer.concat(this.stdoutChunks);
  }

  get stderr(): string {
    return Buffer.concat(this.stderrChunks).toString('utf8');
  }

  get end(): { appStatus: number; protocolStatus: number } | undefined {
    return this.ends[0];
  }

  /** The STDOUT parsed as a CGI response: head, then body. Throws if the head is incomplete. */
  response(): CgiHead & { body: Buffer; header(name: string): string[] } {
    const out = this.stdout;
    const head = parseCgiHead(out);
    if (!head) throw new Error(`no complete CGI head in ${JSON.stringify(out.subarray(0, 200).toString('latin1'))}`);
    return {
      ...head,
      body: out.subarray(head.bodyOffset),
      header: (name) => head.headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v),
    };
  }
}

export interface ClientOptions {
  /** Keep every byte received, for `wireHeaders()` (default false). */
  raw?: boolean;
  /** Keep STDOUT bytes (default true); false only counts them (large responses). */
  keepStdout?: boolean;
}

export type Target = { port: number; host?: string } | { path: string };

/** Rejects with `timeout: what` when `p` has not settled within `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout: ${what} (after ${ms} ms)`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** One connection to a FastCGI application. */
export class FcgiClient {
  readonly socket: net.Socket;
  /** Management records (request id 0), in order. */
  readonly management: FcgiRecord[] = [];
  /** Every record's type and id, in arrival order. */
  readonly order: Array<{ type: number; requestId: number; length: number }> = [];
  closed = false;
  /** The socket closed with an error (ECONNRESET...). */
  closeError: Error | undefined;
  /** The server sent bytes that are not FastCGI. */
  decodeError: Error | undefined;
  private readonly decoder = new RecordDecoder();
  private readonly requests = new Map<number, Collected>();
  private readonly rawChunks: Buffer[] = [];
  private readonly opts: ClientOptions;
  private waiters: Array<() => void> = [];

  private constructor(socket: net.Socket, opts: ClientOptions) {
    this.socket = socket;
    this.opts = opts;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.data(chunk));
    socket.on('error', (err) => {
      this.closeError = err;
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  static connect(target: Target, opts: ClientOptions = {}, ms = 5000): Promise<FcgiClient> {
    const socket = 'path' in target ? net.connect(target.path) : net.connect({ port: target.port, host: target.host ?? '127.0.0.1' });
    const client = new FcgiClient(socket, opts);
    const ready = new Promise<FcgiClient>((resolve, reject) => {
      socket.once('connect', () => resolve(client));
      socket.once('error', reject);
    });
    return within(ready, ms, 'connect').catch((e: unknown) => {
      socket.destroy();
      throw e;
    });
  }

  /** What came back for request `id` so far (an empty collection if nothing). */
  req(id: number): Collected {
    let c = this.requests.get(id);
    if (!c) {
      c = new Collected();
      this.requests.set(id, c);
    }
    return c;
  }

  /** Ids that received anything. */
  ids(): number[] {
    return [...this.requests.keys()].filter((id) => this.requests.get(id)!.events.length > 0).sort((a, b) => a - b);
  }

  /**
   * Writes `data`: whole, or cut into pieces (`split` bytes each, or the sizes listed, cycled),
   * each written on its own event-loop turn so the server sees them as separate reads.
   */
  async send(data: Uint8Array, split?: number | number[]): Promise<void> {
    if (split === undefined) {
      this.socket.write(data);
      return;
    }
    const sizes = Array.isArray(split) ? split : [split];
    let at = 0;
    for (let i = 0; at < data.length; i++) {
      const n = Math.max(1, sizes[i % sizes.length]!);
      if (!this.socket.write(data.subarray(at, at + n))) await within(new Promise((r) => this.socket.once('drain', r)), 10_000, 'drain');
      at += n;
      await turn();
    }
  }

  /** Sends the request's records. */
  request(id: number, spec: FcgiRequestSpec = {}, split?: number | number[]): Promise<void> {
    return this.send(encodeRequest(id, spec), split);
  }

  /** Resolves once `pred()` holds (checked after every record and on close); rejects after `ms`. */
  waitFor(pred: () => boolean, what: string, ms = 5000): Promise<void> {
    if (pred()) return Promise.resolve();
    let settled = false;
    const p = new Promise<void>((resolve) => {
      const waiter = () => {
        if (settled) return;
        if (pred()) resolve();
        else this.waiters.push(waiter);
      };
      this.waiters.push(waiter);
    });
    return within(p, ms, what).finally(() => {
      settled = true;
    });
  }

  /** Waits for END_REQUEST on `id` and returns what came for it. */
  async waitEnd(id: number, ms = 5000): Promise<Collected> {
    await this.waitFor(() => this.req(id).ends.length > 0, `END_REQUEST for request ${id}`, ms);
    return this.req(id);
  }

  /** Waits until the server closed the connection. */
  waitClosed(ms = 5000): Promise<void> {
    return this.waitFor(() => this.closed, 'connection closed', ms);
  }

  /**
   * A round trip on the management id (GET_VALUES FCGI_MPXS_CONNS): once it is answered the
   * server has handled every record sent before it.
   */
  async ping(ms = 5000): Promise<void> {
    const seen = this.management.length;
    this.socket.write(encodeRecord(RecordType.GetValues, NULL_REQUEST_ID, encodeParams([[FCGI_MPXS_CONNS, '']])));
    await this.waitFor(
      () => this.management.slice(seen).some((r) => r.type === RecordType.GetValuesResult),
      'GET_VALUES_RESULT (ping)',
      ms,
    );
  }

  /** Names and values of the GET_VALUES_RESULT record `rec`. */
  static values(rec: FcgiRecord): Record<string, string> {
    const out: Record<string, string> = Object.create(null) as Record<string, string>;
    decodeParams(rec.content, out);
    return out;
  }

  /** Every record header received (needs `raw: true`). */
  wireHeaders(): WireHeader[] {
    if (!this.opts.raw) throw new Error('wireHeaders() needs the client created with raw: true');
    const buf = Buffer.concat(this.rawChunks);
    const out: WireHeader[] = [];
    let at = 0;
    while (at + 8 <= buf.length) {
      const h = {
        version: buf[at]!,
        type: buf[at + 1]!,
        requestId: buf.readUInt16BE(at + 2),
        contentLength: buf.readUInt16BE(at + 4),
        paddingLength: buf[at + 6]!,
      };
      out.push(h);
      at += 8 + h.contentLength + h.paddingLength;
    }
    if (at !== buf.length) throw new Error(`stream ends mid-record (${buf.length - at} bytes over)`);
    return out;
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  /** Half-close: no more bytes from us, the server may still answer. */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private data(chunk: Buffer): void {
    if (this.opts.raw) this.rawChunks.push(chunk);
    try {
      this.decoder.push(chunk, (rec) => this.record(rec));
    } catch (err) {
      this.decodeError = err as Error;
      this.socket.destroy();
    }
    this.wake();
  }

  private record(rec: FcgiRecord): void {
    this.order.push({ type: rec.type, requestId: rec.requestId, length: rec.content.length });
    if (rec.requestId === NULL_REQUEST_ID) {
      this.management.push({ ...rec, content: Buffer.from(rec.content) });
      return;
    }
    const c = this.req(rec.requestId);
    const n = rec.content.length;
    switch (rec.type) {
      case RecordType.Stdout:
        c.events.push(`out:${n}`);
        c.stdoutRecords.push(n);
        c.stdoutBytes += n;
        if (n === 0) c.stdoutEnded = true;
        else if (this.opts.keepStdout !== false) c.stdoutChunks.push(Buffer.from(rec.content));
        break;
      case RecordType.Stderr:
        c.events.push(`err:${n}`);
        if (n > 0) c.stderrChunks.push(Buffer.from(rec.content));
        break;
      case RecordType.EndRequest:
        c.events.push('end');
        c.ends.push(decodeEndRequest(rec.content));
        break;
      default:
        c.events.push(`type:${rec.type}`);
    }
  }

  private wake(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }
}
