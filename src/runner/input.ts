// wsgi.input: the request body as the app reads it, over a bounded queue that the protocol
// adapter fills. The app's reads pace the socket: past the high-water mark the adapter is told
// to pause, and asked for more once the app has taken enough.

import { RequestError } from '../errors.js';
import type { InputStream } from '../types.js';

const EMPTY = new Uint8Array(0);
const NL = 0x0a;

export interface BodyQueueOptions {
  /** CONTENT_LENGTH when known: never more is yielded, and the body ends once it arrived. */
  length?: number;
  /** Bytes buffered before `push` answers false (the adapter pauses its source). */
  highWaterMark?: number;
  /** Called when the app wants more and the adapter had been told to pause. */
  onDemand?: () => void;
  /** A body growing past this many bytes fails with a 413 RequestError (--max-body-size). */
  maxBytes?: number;
}

type Waiter = { resolve: () => void; reject: (err: Error) => void };

/** The adapter's side: push(), end(), fail(); the app's side: the InputStream methods. */
export class BodyQueue implements InputStream {
  private chunks: Uint8Array[] = [];
  private head = 0; // index of the first unread chunk in `chunks`
  private size = 0; // bytes buffered
  private received = 0; // bytes accepted in total
  private done = false;
  private error: Error | null = null;
  private waiters: Waiter[] = [];
  private paused = false;
  private discarding = false;
  private readonly limit: number;
  private readonly highWaterMark: number;
  private readonly onDemand: (() => void) | undefined;
  private readonly maxBytes: number;

  constructor(opts: BodyQueueOptions = {}) {
    this.limit = opts.length ?? Infinity;
    this.maxBytes = opts.maxBytes ?? Infinity;
    this.highWaterMark = opts.highWaterMark ?? 256 * 1024;
    this.onDemand = opts.onDemand;
    if (this.limit === 0) this.done = true;
  }

  /** Bytes the body still expects (Infinity when its length is not known). */
  get remaining(): number {
    return this.limit - this.received;
  }

  /** Bytes received and not yet read. */
  get buffered(): number {
    return this.size;
  }

  /** True once the whole body arrived (or the queue failed). */
  get complete(): boolean {
    return this.done || this.error !== null;
  }

  /**
   * Adds bytes from the wire. Returns false when the adapter should pause its source until
   * onDemand is called. Bytes past CONTENT_LENGTH are dropped.
   */
  push(chunk: Uint8Array): boolean {
    if (this.done || this.error) return true;
    let c = chunk;
    const room = this.limit - this.received;
    if (c.length >= room) {
      c = c.subarray(0, room);
      this.done = true;
    }
    this.received += c.length;
    if (this.received > this.maxBytes) {
      this.fail(new RequestError('TSGI_BODY_TOO_LARGE', `request body is over the limit of ${this.maxBytes} bytes`, 413));
      return true;
    }
    if (!this.discarding && c.length > 0) {
      this.chunks.push(c);
      this.size += c.length;
    }
    this.wake();
    if (this.size >= this.highWaterMark && !this.done) {
      this.paused = true;
      return false;
    }
    return true;
  }

  /** The protocol says the body ended. Short of CONTENT_LENGTH, that is an incomplete body. */
  end(): void {
    if (this.done || this.error) return;
    if (this.limit !== Infinity && this.received < this.limit) {
      this.fail(new RequestError('TSGI_BODY_INCOMPLETE', `request body ended after ${this.received} of ${this.limit} bytes`, 400));
      return;
    }
    this.done = true;
    this.wake();
  }

  /** The body cannot be completed (connection lost, request aborted, limit passed). */
  fail(err: Error): void {
    if (this.done && this.size === 0) return;
    if (this.error) return;
    this.error = err;
    this.chunks = [];
    this.head = 0;
    this.size = 0;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w.reject(err);
  }

  /** The response is over: drop what is buffered and whatever still comes, never pause again. */
  discard(): void {
    this.discarding = true;
    this.chunks = [];
    this.head = 0;
    this.size = 0;
    if (this.paused) this.demand();
  }

  async read(size?: number): Promise<Uint8Array> {
    if (size === undefined || size === null || size < 0) return this.readAll();
    size = Math.floor(size);
    if (size === 0) return EMPTY;
    while (this.size < size && !this.done) await this.wait();
    return this.take(Math.min(size, this.size));
  }

  async readline(size?: number): Promise<Uint8Array> {
    const max = size === undefined || size === null || size < 0 ? Infinity : Math.floor(size);
    if (max === 0) return EMPTY;
    let scanned = 0; // bytes already searched for a newline
    for (;;) {
      let offset = 0;
      for (let i = this.head; i < this.chunks.length; i++) {
        const c = this.chunks[i]!;
        if (offset + c.length > scanned) {
          const from = Math.max(0, scanned - offset);
          const j = c.indexOf(NL, from);
          if (j >= 0) return this.take(Math.min(offset + j + 1, max));
        }
        offset += c.length;
      }
      scanned = this.size;
      if (this.size >= max || this.done) return this.take(Math.min(this.size, max));
      await this.wait();
    }
  }

  async readlines(hint?: number): Promise<Uint8Array[]> {
    const lines: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const line = await this.readline();
      if (line.length === 0) return lines;
      lines.push(line);
      total += line.length;
      if (hint !== undefined && hint > 0 && total >= hint) return lines;
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      while (this.size === 0 && !this.done) await this.wait();
      if (this.size === 0) return;
      const c = this.chunks[this.head]!;
      yield this.take(c.length);
    }
  }

  private async readAll(): Promise<Uint8Array> {
    while (!this.done) await this.wait();
    return this.take(this.size);
  }

  private wait(): Promise<void> {
    if (this.error) return Promise.reject(this.error);
    if (this.paused) this.demand();
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
    });
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w.resolve();
  }

  private demand(): void {
    this.paused = false;
    this.onDemand?.();
  }

  /** Removes n bytes from the front: a view when they lie in one chunk, one copy otherwise. */
  private take(n: number): Uint8Array {
    if (this.error) throw this.error;
    if (n === 0) return EMPTY;
    let out: Uint8Array;
    const first = this.chunks[this.head]!;
    if (first.length >= n) {
      out = n === first.length ? first : first.subarray(0, n);
      if (n === first.length) this.chunks[this.head++] = EMPTY;
      else this.chunks[this.head] = first.subarray(n);
    } else {
      out = new Uint8Array(n);
      let off = 0;
      while (off < n) {
        const c = this.chunks[this.head]!;
        const k = Math.min(c.length, n - off);
        out.set(k === c.length ? c : c.subarray(0, k), off);
        off += k;
        if (k === c.length) this.chunks[this.head++] = EMPTY;
        else this.chunks[this.head] = c.subarray(k);
      }
    }
    this.size -= n;
    if (this.head > 32 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
    if (this.paused && this.size < this.highWaterMark / 2) this.demand();
    return out;
  }
}
