// The app runner: one request through a TSGI app, for every protocol (PEP 3333's server side;
// CPython wsgiref BaseHandler). It calls the app, iterates the body into the sink, sends a 500 or
// aborts on error, and calls close() exactly once, after the response is finished on the wire.

import { AppError, ClientGoneError, RequestError } from '../errors.js';
import type { Logger } from '../log-line.js';
import type { App, Body, Chunk, Environ, HeaderList, StartResponse, WriteCallable } from '../types.js';
import { followFlag, RequestAbort, signalOf, type AbortFlag } from './abort.js';
import type { ResponseSink } from './sink.js';
import { bodyless, checkHeaders, checkStatus, copyHeaders, statusCode } from './start-response.js';

export interface RunOptions {
  app: App;
  environ: Environ;
  sink: ResponseSink;
  /** Aborted by the adapter when the client or the web server goes away. */
  signal: AbortFlag;
  log: Logger;
  /** Error responses carry the stack (never in production). */
  debug?: boolean;
  /** Writes one access-log line per request at level info. */
  accessLog?: boolean;
  /**
   * The response must be complete within this many ms (0: no limit): past it, a response whose
   * headers are not sent yet is answered 504, one under way is aborted, and the abort flag is set
   * (environ['tsgi.signal'] fires when `signal` is a RequestAbort) so that the app can stop.
   */
  timeoutMs?: number;
  /** Named in the access log and in the lines about this request. */
  requestId?: string;
  /** The worker process (--workers), named in the access log. */
  worker?: number;
}

export interface RunResult {
  status: number;
  /** Body bytes handed to the sink. */
  bytes: number;
  outcome: 'ok' | 'error' | 'aborted' | 'timeout';
}

type Outcome = RunResult['outcome'];

const EMPTY_CHUNK = new Uint8Array(0);
const isThenable = (v: unknown): v is PromiseLike<unknown> =>
  v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function';

/** Runs `app` for one request. Never rejects: every failure is answered, logged and reported. */
export function runApp(o: RunOptions): Promise<RunResult> {
  return new Run(o).run();
}

class Run {
  private status: string | undefined;
  private headers: HeaderList | undefined;
  private declaredLength: number | undefined;
  private headersSent = false;
  private finished = false; // no more body goes out (HEAD, bodyless status, Content-Length reached)
  private ended = false; // the response is over on the wire, or abandoned
  private bytes = 0;
  private readonly isHead: boolean;
  /** performance.now() at the start, for the access log only (the first use of `performance` loads perf_hooks). */
  private readonly started: number;
  private closeFn: (() => unknown) | undefined;
  private readonly o: RunOptions;
  /** o.signal, or a flag that follows it and that the timeout can set. */
  private readonly flag: AbortFlag;
  private timer: NodeJS.Timeout | undefined;
  private timedOut = false;
  /** The 504 being written after a timeout. */
  private timeoutAnswer: Promise<void> | undefined;

  constructor(o: RunOptions) {
    this.o = o;
    this.started = o.accessLog ? performance.now() : 0;
    this.isHead = o.environ.REQUEST_METHOD === 'HEAD';
    this.flag = o.timeoutMs && !(o.signal instanceof RequestAbort) ? followFlag(o.signal) : o.signal;
  }

  private readonly startResponse: StartResponse = (status, headers, excInfo) => {
    if (this.ended) throw new AppError('startResponse() called after the response ended');
    if (excInfo !== undefined && excInfo !== null) {
      // PEP 3333: with exc_info, headers may be replaced until they are sent; after that the
      // error is raised again so the response is aborted.
      if (this.headersSent) throw excInfo;
    } else if (this.status !== undefined) {
      throw new AppError('startResponse() called a second time without excInfo (headers already set)');
    }
    checkStatus(status);
    // A copy, checked: what the app does to its array afterwards cannot reach the wire.
    this.declaredLength = checkHeaders(headers);
    const copy = copyHeaders(headers);
    this.status = status;
    this.headers = copy;
    return this.write;
  };

  private readonly write: WriteCallable = (chunk) => {
    if (this.ended) throw new AppError('write() called after the response ended');
    if (this.flag.aborted) throw new ClientGoneError();
    if (this.status === undefined) throw new AppError('write() called before startResponse()');
    return this.send(toBytes(chunk), false);
  };

  async run(): Promise<RunResult> {
    const { o } = this;
    let outcome: Outcome = 'ok';
    if (o.timeoutMs) this.timer = setTimeout(() => this.onTimeout(), o.timeoutMs);
    try {
      const r = o.app(o.environ, this.startResponse);
      const body = (isThenable(r) ? await r : r) as Body;
      if (body === null || typeof body !== 'object' && typeof body !== 'function') {
        throw new AppError(`the app must return an iterable body, got ${body === null ? 'null' : typeof body}`);
      }
      if (typeof body.close === 'function') this.closeFn = () => body.close!();
      if (typeof (body as Iterable<Chunk>)[Symbol.iterator] === 'function' && typeof body !== 'string') {
        const p = this.iterateSync(body as Iterable<Chunk>);
        if (p) await p;
      } else if (typeof (body as AsyncIterable<Chunk>)[Symbol.asyncIterator] === 'function') {
        await this.iterateAsync(body as AsyncIterable<Chunk>);
      } else {
        throw new AppError('the app must return an iterable or async iterable body');
      }
      if (this.flag.aborted) throw new ClientGoneError();
      if (this.status === undefined) throw new AppError('the app returned without calling startResponse()');
      const p = this.finish();
      if (p) await p;
    } catch (err) {
      outcome = await this.fail(err);
    } finally {
      clearTimeout(this.timer);
      if (this.timeoutAnswer) await this.timeoutAnswer;
      this.ended = true;
      if (this.closeFn) await this.close();
    }
    if (this.flag.aborted && outcome === 'ok') outcome = 'aborted';
    if (this.timedOut) outcome = 'timeout';
    const code = this.status !== undefined && this.headersSent ? statusCode(this.status) : 0;
    if (o.accessLog) this.logAccess(code, outcome, Math.round((performance.now() - this.started) * 1000) / 1000);
    return { status: code, bytes: this.bytes, outcome };
  }

  /**
   * --timeout: the response is not complete in time. Before the headers: a 504 now; after them:
   * the runner's abort path. Either way the flag is set, so that iteration stops, close() runs,
   * and the app sees tsgi.signal fire. Code still running in the app is not interrupted.
   */
  private onTimeout(): void {
    if (this.ended && this.headersSent) return;
    const { o } = this;
    this.timedOut = true;
    const before = !this.headersSent;
    o.log.warn(
      { code: 'TSGI_REQUEST_TIMEOUT', requestId: o.requestId, method: o.environ.REQUEST_METHOD, path: o.environ.SCRIPT_NAME + o.environ.PATH_INFO, timeoutS: o.timeoutMs! / 1000 },
      before ? 'request timed out before its response began; answered 504' : 'request timed out during its response; response aborted',
    );
    if (before) {
      this.headersSent = true;
      this.finished = true;
      this.ended = true;
      this.status = '504 Gateway Timeout';
      const text = Buffer.from('Gateway Timeout: the app did not answer in time\n', 'utf8');
      this.bytes = this.isHead ? 0 : text.length;
      const headers: HeaderList = [
        ['Content-Type', 'text/plain; charset=utf-8'],
        ['Content-Length', String(text.length)],
      ];
      this.timeoutAnswer = (async () => {
        try {
          const p1 = o.sink.start(this.status!, headers, this.isHead ? null : text, true);
          if (p1) await p1;
          const p2 = o.sink.end();
          if (p2) await p2;
        } catch (e) {
          o.sink.abort(e instanceof Error ? e : new Error(String(e)));
        }
      })();
    } else if (!this.ended) {
      this.ended = true;
      o.sink.abort(Object.assign(new Error('request timed out'), { code: 'TSGI_REQUEST_TIMEOUT' }));
    }
    (this.flag as RequestAbort).abort();
  }

  /** Synchronous (no promise) as long as the sink takes every chunk at once. */
  private iterateSync(body: Iterable<Chunk>): void | Promise<void> {
    if (!Array.isArray(body)) return this.iterateIterator(body);
    // An array runs no app code as it is read, so knowing which chunk is the last costs
    // nothing, and lets the sink put a whole small response in one write.
    for (let i = 0; i < body.length; i++) {
      const p = this.send(this.checkChunk(body[i] as Chunk), i === body.length - 1);
      if (p) return this.iterateArrayAfter(body as Chunk[], i, p);
      if (this.finished || this.flag.aborted) return;
    }
  }

  /** The rest of an array body, once the sink's backpressure on chunk `i` is relieved. */
  private async iterateArrayAfter(body: Chunk[], i: number, pending: Promise<void>): Promise<void> {
    await this.settle(pending);
    if (this.finished || this.flag.aborted) return;
    for (let j = i + 1; j < body.length; j++) {
      const p = this.send(this.checkChunk(body[j] as Chunk), j === body.length - 1);
      if (p) await this.settle(p);
      if (this.finished || this.flag.aborted) return;
    }
  }

  private async iterateIterator(body: Iterable<Chunk>): Promise<void> {
    // A generator's next step runs only after the chunk it yielded is on its way (PEP 3333:
    // no block is held back), so an error or an excInfo after a yield meets headers as sent.
    const it = body[Symbol.iterator]();
    let done = false;
    try {
      for (;;) {
        const r = it.next();
        if (r.done) {
          done = true;
          return;
        }
        const p = this.send(this.checkChunk(r.value), false);
        if (p) await this.settle(p);
        if (this.finished || this.flag.aborted) return;
      }
    } finally {
      if (!done) it.return?.();
    }
  }

  /** Waits for the sink's backpressure, or for the client to go away, whichever comes first. */
  private async settle(p: Promise<void>): Promise<void> {
    if (this.flag.aborted) return;
    const aborted = abortPromise(signalOf(this.flag));
    try {
      await Promise.race([p, aborted.promise]);
    } finally {
      aborted.dispose();
    }
  }

  private async iterateAsync(body: AsyncIterable<Chunk>): Promise<void> {
    const it = body[Symbol.asyncIterator]();
    const aborted = abortPromise(signalOf(this.flag));
    let done = false;
    try {
      for (;;) {
        const r = await Promise.race([it.next(), aborted.promise]);
        if (r.done) {
          done = true;
          return;
        }
        const p = this.send(this.checkChunk(r.value), false);
        if (p) await this.settle(p);
        if (this.finished || this.flag.aborted) return;
      }
    } finally {
      aborted.dispose();
      // Stop a generator early (its finally blocks run), without waiting on one stuck in await.
      if (!done) void Promise.resolve(it.return?.()).catch(() => {});
    }
  }

  private checkChunk(value: Chunk): Uint8Array {
    if (this.status === undefined) throw new AppError('the body yielded a chunk before startResponse() was called');
    return toBytes(value);
  }

  /** Sends one piece of body: headers first if they are still pending. */
  private send(chunk: Uint8Array, last: boolean): void | Promise<void> {
    if (chunk.length === 0 || this.finished) return;
    let data = chunk;
    const cl = this.declaredLength;
    // `last` tells the sink the response is whole: never so while Content-Length is not met.
    if (last && cl !== undefined && this.bytes + data.length < cl) last = false;
    if (cl !== undefined) {
      const room = cl - this.bytes;
      if (data.length >= room) {
        if (data.length > room) {
          this.o.log.warn({ declared: cl }, 'app sent more bytes than its Content-Length; the excess was not sent');
          data = data.subarray(0, room);
        }
        last = true;
        this.finished = true;
      }
    }
    if (!this.headersSent) return this.sendHead(data, last);
    this.bytes += data.length;
    return this.o.sink.write(data);
  }

  private sendHead(data: Uint8Array, last: boolean): void | Promise<void> {
    const code = statusCode(this.status!);
    const bodyless_ = this.isHead || bodyless(code);
    let headers = this.headers!;
    if (!bodyless_ && last && this.declaredLength === undefined) headers = headers.concat([['Content-Length', String(data.length)]]);
    this.headersSent = true;
    try {
      const p = bodyless_ ? this.o.sink.start(this.status!, headers, null, true) : this.o.sink.start(this.status!, headers, data, last);
      if (bodyless_) this.finished = true;
      else this.bytes += data.length;
      return p;
    } catch (err) {
      // The sink refused the head before writing anything (AJP: headers over the packet size):
      // the headers are not sent, so the error can still be answered with a 500.
      this.headersSent = false;
      throw err;
    }
  }

  /**
   * The body is exhausted: send what is still pending and end the response on the wire.
   * Synchronous when the head is out (the usual case) and the sink ends at once.
   */
  private finish(): void | Promise<void> {
    if (!this.headersSent) return this.finishWithHead();
    const cl = this.declaredLength;
    if (cl !== undefined && this.bytes < cl && !this.isHead && !bodyless(statusCode(this.status!))) {
      throw new AppError(`the app sent ${this.bytes} bytes of the ${cl} its Content-Length declared`);
    }
    if (this.flag.aborted) throw new ClientGoneError();
    const p = this.o.sink.end();
    this.ended = true;
    if (p) return this.settle(p);
  }

  private async finishWithHead(): Promise<void> {
    const code = statusCode(this.status!);
    const cl = this.declaredLength;
    const short = cl !== undefined && this.bytes < cl && !this.isHead && !bodyless(code);
    if (!this.headersSent) {
      this.headersSent = true;
      let headers = this.headers!;
      if (cl === undefined && !this.isHead && !bodyless(code)) headers = headers.concat([['Content-Length', '0']]);
      let p: void | Promise<void>;
      try {
        p = this.o.sink.start(this.status!, headers, null, !short);
      } catch (err) {
        this.headersSent = false;
        throw err;
      }
      if (p) await this.settle(p);
    }
    if (short) throw new AppError(`the app sent ${this.bytes} bytes of the ${cl} its Content-Length declared`);
    if (this.flag.aborted) throw new ClientGoneError();
    const p = this.o.sink.end();
    this.ended = true;
    if (p) await this.settle(p);
  }

  /** Answers or aborts after an error; returns the outcome for the access log. */
  private async fail(err: unknown): Promise<Outcome> {
    const { o } = this;
    const error = err instanceof Error ? err : new Error(String(err));
    if (this.timedOut) return 'timeout';
    if (this.flag.aborted || error instanceof ClientGoneError) {
      this.ended = true;
      o.log.debug({ code: 'TSGI_CLIENT_GONE' }, 'client went away before the response was complete');
      return 'aborted';
    }
    if (this.headersSent || this.ended) {
      this.ended = true;
      o.log.error({ err: error, requestId: o.requestId }, 'error after the response headers were sent; response aborted');
      o.sink.abort(error);
      return 'error';
    }
    // Headers not sent yet: a clean error response.
    this.headersSent = true;
    this.ended = true;
    let status = '500 Internal Server Error';
    let text = 'Internal Server Error\n';
    if (error instanceof RequestError) {
      status = `${error.status} ${REASONS[error.status] ?? 'Error'}`;
      text = `${REASONS[error.status] ?? 'Error'}: ${error.message}\n`;
      o.log.warn({ code: error.code, requestId: o.requestId }, error.message);
    } else {
      o.log.error({ err: error, requestId: o.requestId }, 'app error before the response headers were sent');
      if (o.debug) text += `\n${error.stack ?? error.message}\n`;
    }
    this.status = status;
    const bytes = Buffer.from(text, 'utf8');
    this.bytes = bytes.length;
    try {
      const headers: HeaderList = [
        ['Content-Type', 'text/plain; charset=utf-8'],
        ['Content-Length', String(bytes.length)],
      ];
      const p1 = o.sink.start(status, headers, this.isHead ? null : bytes, true);
      if (p1) await this.settle(p1);
      if (this.flag.aborted) return 'error';
      const p2 = o.sink.end();
      if (p2) await this.settle(p2);
    } catch (e) {
      o.sink.abort(e instanceof Error ? e : new Error(String(e)));
    }
    return 'error';
  }

  private async close(): Promise<void> {
    const fn = this.closeFn;
    if (!fn) return;
    this.closeFn = undefined;
    try {
      const r = fn();
      if (isThenable(r)) await r;
    } catch (err) {
      this.o.log.error({ err }, 'error in the body\'s close()');
    }
  }

  private logAccess(code: number, outcome: Outcome, ms: number): void {
    const e = this.o.environ;
    this.o.log.info(
      {
        method: e.REQUEST_METHOD,
        path: (e.SCRIPT_NAME ?? '') + (e.PATH_INFO ?? ''),
        query: e.QUERY_STRING || undefined,
        status: code,
        bytes: this.bytes,
        ms,
        outcome: outcome === 'ok' ? undefined : outcome,
        requestId: this.o.requestId,
        worker: this.o.worker,
      },
      'request',
    );
  }
}

/** Chunks are bytes; strings are sent as UTF-8. */
export function toBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === 'string') return chunk.length === 0 ? EMPTY_CHUNK : Buffer.from(chunk, 'utf8');
  throw new AppError(`body chunks must be Uint8Array or string, got ${chunk === null ? 'null' : typeof chunk}`);
}

function abortPromise(signal: AbortSignal): { promise: Promise<never>; dispose: () => void } {
  let onAbort: (() => void) | undefined;
  const promise = new Promise<never>((_, reject) => {
    if (signal.aborted) return reject(new ClientGoneError());
    onAbort = () => reject(new ClientGoneError());
    signal.addEventListener('abort', onAbort, { once: true });
  });
  promise.catch(() => {});
  return { promise, dispose: () => onAbort && signal.removeEventListener('abort', onAbort) };
}

export const REASONS: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  408: 'Request Timeout',
  411: 'Length Required',
  413: 'Content Too Large',
  414: 'URI Too Long',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};
