// What every protocol server shares: the app, the log, the limits, and one call that turns
// CGI variables + a body queue + a sink into a finished request.

import type { Logger } from '../log-line.js';
import type { App, ErrorStream, Protocol } from '../types.js';
import type { AbortFlag } from './abort.js';
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
}

export const DEFAULT_LIMITS: Limits = {
  maxHeaderBytes: 128 * 1024,
  maxBodyBytes: Number.MAX_SAFE_INTEGER,
  bodyHighWaterMark: 256 * 1024,
  maxRequestsPerConnection: 100,
  maxConnections: 10_000,
  idleTimeoutMs: 5 * 60_000,
  headerTimeoutMs: 60_000,
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
}

export class Gateway {
  readonly app: App;
  readonly log: Logger;
  readonly limits: Limits;
  readonly debug: boolean;
  readonly accessLog: boolean;
  private readonly ctx: { protocol: Protocol; multiprocess: boolean; multithread: boolean; runOnce: boolean };
  /** Requests under way, across all connections. */
  active = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(o: GatewayOptions) {
    this.app = o.app;
    this.log = o.log;
    this.limits = { ...DEFAULT_LIMITS, ...o.limits };
    this.debug = o.debug ?? false;
    this.accessLog = o.accessLog ?? false;
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
    const errs = errors ?? new LogErrorStream(this.log);
    try {
      const environ = buildEnviron(vars, input, errs, signal, this.ctx);
      return await runApp({
        app,
        environ,
        sink,
        signal,
        log: this.log,
        debug: this.debug,
        accessLog: this.accessLog,
      });
    } finally {
      errs.flush();
      input.discard();
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
