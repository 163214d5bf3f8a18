// What every protocol server shares: the app, the log, the limits, and one call that turns
// CGI variables + a body queue + a sink into a finished request.

import { randomBytes } from 'node:crypto';
import type { Logger } from '../log-line.js';
import type { App, ErrorStream, Protocol } from '../types.js';
import { followFlag, RequestAbort, type AbortFlag } from './abort.js';
import { buildEnviron } from './environ.js';
import { LogErrorStream } from './errors-stream.js';
import { RequestError } from '../errors.js';
import { BodyQueue } from './input.js';
import { runApp, type RunResult } from './run.js';
import type { ResponseSink } from './sink.js';

/** Sizes and times the protocols enforce; each has a flag (bin/tsgi serve --help). */
export interface Limits {
  /** Request head: FastCGI params, SCGI netstring, AJP forward request, HTTP headers (bytes). */
  maxHeaderBytes: number;
  /** Request body (bytes); larger bodies are answered 413. */
  maxBodyBytes: number;
  /** Body bytes buffered for an app that reads slower than the peer sends. */
  bodyHighWaterMark: number;
  /** Concurrent requests on one connection (FastCGI multiplexing). */
  maxRequestsPerConnection: number;
  /** Concurrent connections. */
  maxConnections: number;
  /** An idle connection (no request under way) is closed after this many ms; 0 = never. */
  idleTimeoutMs: number;
  /** A request head must arrive whole within this many ms. */
  headerTimeoutMs: number;
  /** A response must be complete within this many ms, else 504 or aborted (--timeout); 0 = no limit. */
  requestTimeoutMs: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxHeaderBytes: 128 * 1024,
  maxBodyBytes: Number.MAX_SAFE_INTEGER,
  bodyHighWaterMark: 256 * 1024,
  maxRequestsPerConnection: 100,
  maxConnections: 10_000,
  idleTimeoutMs: 5 * 60_000,
  headerTimeoutMs: 60_000,
  requestTimeoutMs: 0,
};

export interface GatewayOptions {
  app: App;
  log: Logger;
  protocol: Protocol;
  multiprocess?: boolean;
  multithread?: boolean;
  runOnce?: boolean;
  debug?: boolean;
  accessLog?: boolean;
  limits?: Partial<Limits>;
  /** The worker process (--workers), named in the access log. */
  worker?: number;
  /** A request running longer than this many ms is counted and logged as slow (0: off). */
  slowRequestMs?: number;
  /** Requests for this path (SCRIPT_NAME + PATH_INFO) go to `app` instead (--status-path). */
  status?: { path: string; app: App };
  /** Keep the table of requests in flight (`current`), for the status page. */
  track?: boolean;
}

/** A request under way, as the status page lists it. */
export interface CurrentRequest {
  id: string;
  method: string;
  path: string;
  /** Date.now() when it began. */
  since: number;
}

/** Counters since the process started, for the status page and --max-requests. */
export interface GatewayStats {
  /** Requests finished (close() included). */
  requests: number;
  /** ... of which ran longer than slowRequestMs. */
  slow: number;
  /** ... of which ran over --timeout. */
  timeouts: number;
}

/** X-Request-Id taken from a request: printable ASCII without spaces, at most 128 characters. */
const SANE_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

export class Gateway {
  readonly app: App;
  readonly log: Logger;
  readonly limits: Limits;
  readonly debug: boolean;
  readonly accessLog: boolean;
  readonly worker: number | undefined;
  readonly slowRequestMs: number;
  private readonly ctx: { protocol: Protocol; multiprocess: boolean; multithread: boolean; runOnce: boolean };
  private readonly status: { path: string; app: App } | undefined;
  /** Requests under way, across all connections. */
  active = 0;
  readonly stats: GatewayStats = { requests: 0, slow: 0, timeouts: 0 };
  /** Requests under way by sequence number (with `track`). */
  readonly current: Map<number, CurrentRequest> | undefined;
  /** Called after each request is finished (--max-requests counts them). */
  onRequestDone: (() => void) | undefined;
  private idleWaiters: Array<() => void> = [];
  private seq = 0;
  /** Generated request ids: a random prefix per process, then a counter. */
  private readonly idPrefix = randomBytes(6).toString('base64url');

  constructor(o: GatewayOptions) {
    this.app = o.app;
    this.log = o.log;
    this.limits = { ...DEFAULT_LIMITS, ...o.limits };
    this.debug = o.debug ?? false;
    this.accessLog = o.accessLog ?? false;
    this.worker = o.worker;
    this.slowRequestMs = o.slowRequestMs ?? 0;
    this.status = o.status;
    this.current = o.track ? new Map() : undefined;
    this.ctx = {
      protocol: o.protocol,
      multiprocess: o.multiprocess ?? false,
      multithread: o.multithread ?? false,
      runOnce: o.runOnce ?? false,
    };
  }

  /**
   * Runs one request. `vars` are the CGI variables (latin-1 strings) and become the environ.
   * `signal` is aborted by the adapter when the peer goes away. `app` replaces the served app
   * for this request (adapters pass `refusingApp(err)` to answer a request over a limit).
   */
  async handle(
    vars: Record<string, string>,
    input: BodyQueue,
    sink: ResponseSink,
    signal: AbortFlag,
    errors?: ErrorStream,
    app: App = this.app,
  ): Promise<RunResult> {
    this.active++;
    const seq = ++this.seq;
    const given = vars.HTTP_X_REQUEST_ID;
    const requestId = given !== undefined && SANE_REQUEST_ID.test(given) ? given : `${this.idPrefix}-${seq.toString(36)}`;
    const errs = errors ?? new LogErrorStream(this.log);
    const timeoutMs = this.limits.requestTimeoutMs;
    // The timeout sets the request's flag, so that the app's tsgi.signal fires: it needs one it may set.
    const flag = timeoutMs > 0 && !(signal instanceof RequestAbort) ? followFlag(signal) : signal;
    try {
      const environ = buildEnviron(vars, input, errs, flag, this.ctx);
      environ['tsgi.request_id'] = requestId;
      const path = environ.SCRIPT_NAME + environ.PATH_INFO;
      if (this.status && app === this.app && path === this.status.path) app = this.status.app;
      this.current?.set(seq, { id: requestId, method: environ.REQUEST_METHOD, path, since: Date.now() });
      const started = this.slowRequestMs > 0 ? performance.now() : 0;
      const r = await runApp({
        app,
        environ,
        sink,
        signal: flag,
        log: this.log,
        debug: this.debug,
        accessLog: this.accessLog,
        timeoutMs,
        requestId,
        worker: this.worker,
      });
      if (r.outcome === 'timeout') this.stats.timeouts++;
      const ms = started ? Math.round(performance.now() - started) : 0;
      if (this.slowRequestMs > 0 && ms >= this.slowRequestMs) {
        this.stats.slow++;
        this.log.warn({ code: 'TSGI_SLOW_REQUEST', requestId, method: environ.REQUEST_METHOD, path, ms, status: r.status }, 'slow request');
      }
      return r;
    } finally {
      errs.flush();
      input.discard();
      this.current?.delete(seq);
      this.stats.requests++;
      this.onRequestDone?.();
      if (--this.active === 0 && this.idleWaiters.length) {
        const ws = this.idleWaiters;
        this.idleWaiters = [];
        for (const w of ws) w();
      }
    }
  }

  /** The protocol named in environ['tsgi.protocol'] (set before serving starts). */
  setProtocol(protocol: Protocol): void {
    this.ctx.protocol = protocol;
  }

  /**
   * A body queue for a request whose body has `length` bytes (undefined: delimited by the
   * protocol), sized and limited by the gateway's limits. A declared length over the limit is
   * a 413 RequestError, thrown here so that the adapter answers it before reading anything.
   */
  bodyQueue(length: number | undefined, onDemand: () => void): BodyQueue {
    const max = this.limits.maxBodyBytes;
    if (length !== undefined && length > max) {
      throw new RequestError('TSGI_BODY_TOO_LARGE', `request body of ${length} bytes is over the limit of ${max}`, 413);
    }
    return new BodyQueue({ length, highWaterMark: this.limits.bodyHighWaterMark, onDemand, maxBytes: max });
  }

  /** Resolves once no request is under way. */
  whenIdle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

/** An app that answers with `err`'s status: how adapters refuse a request over a limit. */
export function refusingApp(err: Error): App {
  return () => {
    throw err;
  };
}
