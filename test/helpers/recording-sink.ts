// A ResponseSink that records what the runner does to it, in order (CPython's run_amock over
// BytesIO, Go's writeOnlyConn), plus makeRequest(): the environ, body queue, signal and an
// in-memory pino log that runApp needs, so runner tests stay in memory and assert on calls.

import { Buffer } from 'node:buffer';
import { pino, type Logger } from 'pino';
import { buildEnviron, type ServerContext } from '../../src/runner/environ.js';
import { LogErrorStream } from '../../src/runner/errors-stream.js';
import { BodyQueue } from '../../src/runner/input.js';
import { runApp, type RunOptions, type RunResult } from '../../src/runner/run.js';
import type { ResponseSink } from '../../src/runner/sink.js';
import type { App, Environ, HeaderList } from '../../src/types.js';

export type SinkCall =
  | { kind: 'start'; status: string; headers: HeaderList; chunk: Uint8Array | null; last: boolean }
  | { kind: 'write'; chunk: Uint8Array }
  | { kind: 'end' }
  | { kind: 'abort'; error: Error };

export interface RecordingSinkOptions {
  /** start() and write() return a promise that stays pending until release() (backpressure). */
  backpressure?: boolean;
  /** end() returns a promise that stays pending until releaseEnd(). */
  slowEnd?: boolean;
  /** start() and write() return a promise resolved on the next event-loop turn (a busy socket). */
  asyncWrites?: boolean;
  /** Called synchronously inside every start()/write() carrying bytes, with the count so far. */
  onWrite?: (count: number) => void;
}

export class RecordingSink implements ResponseSink {
  readonly calls: SinkCall[] = [];
  /**
   * One timeline shared with the test: the sink pushes 'start', 'write', 'end', 'abort'; tests
   * push their own marks ('close', 'yield 1') to check what happened before what.
   */
  readonly timeline: string[] = [];
  backpressure: boolean;
  private readonly slowEnd: boolean;
  private readonly asyncWrites: boolean;
  private readonly onWrite: ((count: number) => void) | undefined;
  private pending: Array<() => void> = [];
  private endRelease: (() => void) | null = null;
  private bodyWrites = 0;

  constructor(opts: RecordingSinkOptions = {}) {
    this.backpressure = opts.backpressure ?? false;
    this.slowEnd = opts.slowEnd ?? false;
    this.asyncWrites = opts.asyncWrites ?? false;
    this.onWrite = opts.onWrite;
  }

  start(status: string, headers: HeaderList, chunk: Uint8Array | null, last: boolean): void | Promise<void> {
    // Copies: what was on the wire at this moment, whatever the app does to its arrays later.
    this.calls.push({
      kind: 'start',
      status,
      headers: headers.map(([n, v]) => [n, v]),
      chunk: chunk && new Uint8Array(chunk),
      last,
    });
    this.timeline.push('start');
    if (chunk) this.onWrite?.(++this.bodyWrites);
    return this.maybeWait();
  }

  write(chunk: Uint8Array): void | Promise<void> {
    this.calls.push({ kind: 'write', chunk: new Uint8Array(chunk) });
    this.timeline.push('write');
    this.onWrite?.(++this.bodyWrites);
    return this.maybeWait();
  }

  end(): void | Promise<void> {
    this.calls.push({ kind: 'end' });
    this.timeline.push('end');
    if (!this.slowEnd) return;
    return new Promise<void>((resolve) => {
      this.endRelease = () => {
        this.timeline.push('end done');
        resolve();
      };
    });
  }

  abort(error: Error): void {
    this.calls.push({ kind: 'abort', error });
    this.timeline.push('abort');
  }

  /** Promises handed out by start()/write() and not yet released. */
  get waiting(): number {
    return this.pending.length;
  }

  /** Lets every pending start()/write() promise resolve (the socket drained). */
  release(): void {
    const ps = this.pending;
    this.pending = [];
    for (const r of ps) r();
  }

  /** Lets a pending end() promise resolve (the response is finished on the wire). */
  releaseEnd(): void {
    this.endRelease?.();
    this.endRelease = null;
  }

  /** The response's body bytes, in order: start's chunk, then every write. */
  collect(): Uint8Array {
    const parts: Uint8Array[] = [];
    for (const c of this.calls) {
      if (c.kind === 'start' && c.chunk) parts.push(c.chunk);
      if (c.kind === 'write') parts.push(c.chunk);
    }
    return new Uint8Array(Buffer.concat(parts));
  }

  /** collect() as UTF-8 text. */
  text(): string {
    return Buffer.from(this.collect()).toString('utf8');
  }

  /** The one start() call (throws when there is none or more than one). */
  get head(): Extract<SinkCall, { kind: 'start' }> {
    const starts = this.calls.filter((c) => c.kind === 'start');
    if (starts.length !== 1) throw new Error(`expected exactly one start() call, got ${starts.length}`);
    return starts[0] as Extract<SinkCall, { kind: 'start' }>;
  }

  /** The values of header `name` (case-insensitive) sent with start(). */
  header(name: string): string[] {
    const lower = name.toLowerCase();
    return this.head.headers.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
  }

  /** The kinds of the calls, in order: ['start', 'write', 'end']. */
  get kinds(): string[] {
    return this.calls.map((c) => c.kind);
  }

  private maybeWait(): void | Promise<void> {
    if (this.asyncWrites && !this.backpressure) return new Promise<void>((resolve) => setImmediate(resolve));
    if (!this.backpressure) return;
    return new Promise<void>((resolve) => this.pending.push(resolve));
  }
}

export interface LogLine {
  level: number;
  msg: string;
  err?: { type?: string; message?: string; stack?: string; code?: string };
  code?: string;
  [key: string]: unknown;
}

/** pino levels by number. */
export const Level = { debug: 20, info: 30, warn: 40, error: 50 } as const;

export interface TestRequest {
  environ: Environ;
  input: BodyQueue;
  sink: RecordingSink;
  /** Abort it to simulate the client or the web server going away. */
  controller: AbortController;
  signal: AbortSignal;
  log: Logger;
  /** Every log line so far, parsed. */
  logs: LogLine[];
  /** The RunOptions for `app` (override any field with `extra`). */
  options(app: App, extra?: Partial<RunOptions>): RunOptions;
  /** runApp over this request. */
  run(app: App, extra?: Partial<RunOptions>): Promise<RunResult>;
}

export interface MakeRequestOptions {
  sink?: RecordingSinkOptions;
  ctx?: Partial<ServerContext>;
  /** Leave the body queue open (the test pushes and ends it). */
  openBody?: boolean;
  /**
   * When the client goes away, let pending writes resolve, as the HTTP sink does on 'close'
   * (the runner then sees the aborted signal). Off: pending writes stay pending forever.
   */
  releaseOnAbort?: boolean;
}

/** A pino logger writing JSON lines into `lines`, at debug level. */
export function memoryLogger(): { log: Logger; logs: LogLine[] } {
  const logs: LogLine[] = [];
  const stream = { write: (s: string) => void logs.push(JSON.parse(s) as LogLine) };
  return { log: pino({ level: 'debug' }, stream), logs };
}

/**
 * Everything runApp needs for one request. `vars` are CGI variables (defaults: GET /);
 * `body`, when given, is queued whole (its chunks as given) with CONTENT_LENGTH set.
 */
export function makeRequest(
  vars: Record<string, string> = {},
  body?: string | Uint8Array | Array<string | Uint8Array>,
  opts: MakeRequestOptions = {},
): TestRequest {
  const parts = body === undefined ? [] : (Array.isArray(body) ? body : [body]).map(toBytes);
  const length = parts.reduce((n, p) => n + p.length, 0);
  const all: Record<string, string> = {
    REQUEST_METHOD: 'GET',
    SCRIPT_NAME: '',
    PATH_INFO: '/',
    QUERY_STRING: '',
    SERVER_NAME: 'example.test',
    SERVER_PORT: '80',
    SERVER_PROTOCOL: 'HTTP/1.1',
    REMOTE_ADDR: '127.0.0.1',
    ...(body === undefined ? {} : { CONTENT_LENGTH: String(length) }),
    ...vars,
  };
  const input = new BodyQueue(body === undefined ? {} : { length });
  for (const p of parts) input.push(p);
  if (!opts.openBody) input.end();
  const { log, logs } = memoryLogger();
  const controller = new AbortController();
  const environ = buildEnviron(all, input, new LogErrorStream(log), controller.signal, {
    protocol: 'http',
    multithread: false,
    multiprocess: false,
    runOnce: false,
    ...opts.ctx,
  });
  const sink = new RecordingSink(opts.sink);
  if (opts.releaseOnAbort) controller.signal.addEventListener('abort', () => sink.release(), { once: true });
  const options = (app: App, extra: Partial<RunOptions> = {}): RunOptions => ({
    app,
    environ,
    sink,
    signal: controller.signal,
    log,
    ...extra,
  });
  return {
    environ,
    input,
    sink,
    controller,
    signal: controller.signal,
    log,
    logs,
    options,
    run: (app, extra) => runApp(options(app, extra)),
  };
}

export function toBytes(c: string | Uint8Array): Uint8Array {
  return typeof c === 'string' ? new Uint8Array(Buffer.from(c, 'utf8')) : c;
}

export const latin1 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));
export const utf8 = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

/** Waits for `p`, failing the test (instead of hanging it) after `ms`. */
export function within<T>(p: Promise<T>, ms = 1_000, what = 'the promise'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Lets queued microtasks and one macrotask turn run. */
export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Polls `cond` every turn until it holds, failing after `ms`. */
export async function until(cond: () => boolean, ms = 1_000, what = 'the condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what} did not hold within ${ms} ms`);
    await tick();
  }
}

/** A promise and its resolve, for apps that must wait on the test. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: Error) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
