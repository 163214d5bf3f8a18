// CGI/1.1 (RFC 3875) from the script's side: one request per process. Meta-variables come from
// the environment, the body from standard input, the response goes to standard output.

import { closeSync, openSync, read, readSync, writeSync } from 'node:fs';
import { createLineLogger } from '../../log-line.js';
import { RequestAbort } from '../../runner/abort.js';
import { encodeCgiHead } from '../../runner/cgi-head.js';
import { parseContentLength } from '../../runner/environ.js';
import { LogErrorStream } from '../../runner/errors-stream.js';
import { Gateway, refusingApp } from '../../runner/gateway.js';
import { BodyQueue } from '../../runner/input.js';
import type { ResponseSink } from '../../runner/sink.js';
import { statusCode } from '../../runner/start-response.js';
import type { App, HeaderList } from '../../types.js';

export interface CgiOptions {
  /** NPH output: a full HTTP status line instead of `Status:` (default: script name starts with nph-). */
  nph?: boolean;
  debug?: boolean;
  logLevel?: string;
}

/** After SIGTERM the app has this long to stop before the process exits on its own. */
const TERM_GRACE_MS = 2_500;

/** Handles the one request of this process with `app`, then exits. */
export async function runCgi(app: App, opts: CgiOptions = {}): Promise<never> {
  keepStdoutForTheResponse();
  const log = createLineLogger({ level: opts.logLevel });
  const gw = new Gateway({ app, log, protocol: 'cgi', multiprocess: true, multithread: false, runOnce: true, debug: opts.debug });
  const vars = readEnvironment();
  // RFC 3875 4.1.5: no PATH_INFO means there is none. Never derive it from REQUEST_URI here (as
  // the runner does for front ends that omit it): after a rewrite or a local redirect, REQUEST_URI
  // is the client's URL, and the program would see a path that was not meant for it.
  vars.PATH_INFO ??= '';
  const nph = opts.nph ?? isNphScript(vars);
  const abort = new RequestAbort();
  const sink = new StdoutSink(nph, vars.SERVER_PROTOCOL, () => abort.abort());
  // The web server signals a program it gives up on (lighttpd when the client hangs up, Apache on
  // a timeout), and may follow with SIGKILL: the request is aborted, close() still runs once.
  const onSignal = (): void => {
    abort.abort();
    setTimeout(() => process.exit(process.exitCode ?? 1), TERM_GRACE_MS).unref();
  };
  for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(s, onSignal);
  let length: number | undefined;
  let refuse: Error | undefined;
  try {
    length = parseContentLength(vars.CONTENT_LENGTH);
  } catch (err) {
    refuse = err as Error;
  }
  // RFC 3875 4.2: "A request-body is supplied with the request if the CONTENT_LENGTH is not
  // NULL", and the script "MUST NOT attempt to read more than CONTENT_LENGTH bytes". Without it
  // there is no body, except a chunked upload (HTTP_TRANSFER_ENCODING) that Apache mod_cgi
  // streams to stdin with no CONTENT_LENGTH: that one is read to end of file.
  if (refuse) length = 0;
  else if (length === undefined && !vars.HTTP_TRANSFER_ENCODING) length = 0;
  const stdin = new StdinReader();
  const input = new BodyQueue({ length, highWaterMark: gw.limits.bodyHighWaterMark, onDemand: () => stdin.resume() });
  stdin.start(input, length);
  const errors = new LogErrorStream(log);
  await gw.handle(vars, input, sink, abort, errors, refuse ? refusingApp(refuse) : undefined);
  errors.flush();
  stdin.stop();
  await sink.flushed();
  process.exit(process.exitCode ?? 0);
}

/** RFC 3875 5: a program named nph-* speaks HTTP itself (SCRIPT_NAME, else SCRIPT_FILENAME). */
export function isNphScript(vars: Record<string, string | undefined> = process.env): boolean {
  return /(^|\/)nph-[^/]*$/.test(vars.SCRIPT_NAME || vars.SCRIPT_FILENAME || '');
}

/** `HTTP/1.1` for an NPH head: SERVER_PROTOCOL when it is one, else HTTP/1.0. */
export function nphProtocol(serverProtocol: string | undefined): string {
  return serverProtocol && /^HTTP\/[0-9.]+$/.test(serverProtocol) ? serverProtocol : 'HTTP/1.0';
}

let stdoutKept = false;

/**
 * Standard output carries the response and nothing else: console.log and friends from the app
 * go to standard error, where the web server logs them, instead of corrupting the response.
 */
export function keepStdoutForTheResponse(): void {
  if (stdoutKept) return;
  stdoutKept = true;
  // The Console is made on first use: it and process.stderr load Node's stream modules, which a
  // program that logs nothing never needs (a CGI program pays its start-up on every request).
  let toStderr: Console | undefined;
  for (const m of ['log', 'info', 'debug', 'dir', 'dirxml', 'table', 'group', 'groupCollapsed', 'groupEnd', 'count', 'countReset', 'time', 'timeEnd', 'timeLog'] as const) {
    (console as unknown as Record<string, unknown>)[m] = (...args: unknown[]): void => {
      toStderr ??= new console.Console({ stdout: process.stderr, stderr: process.stderr });
      (toStderr[m] as (...a: unknown[]) => void)(...args);
    };
  }
}

/** The environment as byte strings: /proc/self/environ keeps bytes that are not UTF-8 exact. */
function readEnvironment(): Record<string, string> {
  const vars: Record<string, string> = {};
  const raw = readProcEnviron();
  if (raw) {
    let start = 0;
    for (let i = raw.indexOf(0); i >= 0; i = raw.indexOf(0, start)) {
      const eq = raw.indexOf(0x3d, start);
      if (eq > start && eq < i) vars[raw.toString('latin1', start, eq)] = raw.toString('latin1', eq + 1, i);
      start = i + 1;
    }
    return vars;
  }
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined) vars[k] = Buffer.from(v, 'utf8').toString('latin1');
  }
  return vars;
}

/** /proc/self/environ, or null where there is none (read directly: /proc reports no size). */
function readProcEnviron(): Buffer | null {
  let fd: number;
  try {
    fd = openSync('/proc/self/environ', 'r');
  } catch {
    return null;
  }
  try {
    let buf = Buffer.allocUnsafe(16 * 1024);
    let len = 0;
    for (;;) {
      if (len === buf.length) buf = Buffer.concat([buf, Buffer.allocUnsafe(buf.length)]);
      const n = readSync(fd, buf, len, buf.length - len, null);
      if (n === 0) return buf.subarray(0, len);
      len += n;
    }
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/**
 * Standard input into the body queue, never asking the kernel for more than the bytes the body
 * still lacks (a stream reading ahead would take bytes past CONTENT_LENGTH off the pipe).
 */
class StdinReader {
  private input: BodyQueue | undefined;
  private reading = false;
  private paused = false;
  private stopped = false;
  private readonly buf = Buffer.allocUnsafe(64 * 1024);

  start(input: BodyQueue, length: number | undefined): void {
    this.input = input;
    if (length === 0) return;
    this.next();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.next();
  }

  stop(): void {
    this.stopped = true;
  }

  private next(): void {
    const input = this.input!;
    if (this.reading || this.paused || this.stopped || input.complete) return;
    const want = Math.min(this.buf.length, input.remaining);
    if (want <= 0) return;
    this.reading = true;
    read(0, this.buf, 0, want, null, (err, n) => {
      this.reading = false;
      if (this.stopped) return;
      if (err) {
        // A non-blocking stdin (a parent set O_NONBLOCK on a shared pipe): try again shortly.
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return void setTimeout(() => this.next(), 5);
        return input.fail(err);
      }
      if (n === 0) return input.end();
      // Copy: the buffer is reused for the next read while the app may still hold this chunk.
      if (!input.push(Buffer.from(this.buf.subarray(0, n)))) this.paused = true;
      this.next();
    });
  }
}

/** Whole responses up to this size are written to fd 1 directly (a pipe holds 64 KiB). */
const DIRECT_WRITE_MAX = 64 * 1024;

/** Where StdoutSink writes: fd 1, and process.stdout (replaced in tests). */
export interface StdoutIo {
  /** fs.writeSync on fd 1: bytes written, or throws (EAGAIN, EPIPE, ...). */
  writeSync(data: Uint8Array, offset: number, length: number): number;
  /** The stream on fd 1, asked for only when a write does not go out directly. */
  stream(): NodeJS.WritableStream;
}

const STDOUT: StdoutIo = {
  writeSync: (data, offset, length) => writeSync(1, data, offset, length),
  stream: () => process.stdout,
};

/** A write that the stream may still complete: the kernel took nothing for now, or was interrupted. */
const TRY_LATER = new Set(['EAGAIN', 'EWOULDBLOCK', 'EINTR']);

/** The response on standard output (exported for tests). */
export class StdoutSink implements ResponseSink {
  private pending = 0;
  private waiters: Array<() => void> = [];
  private broken = false;
  private readonly nph: boolean;
  private readonly protocol: string;
  private readonly onBroken: () => void;
  private readonly io: StdoutIo;
  private out: NodeJS.WritableStream | undefined;

  constructor(nph: boolean, protocol: string | undefined, onBroken: () => void, io: StdoutIo = STDOUT) {
    this.nph = nph;
    this.protocol = nphProtocol(protocol);
    this.onBroken = onBroken;
    this.io = io;
  }

  /** process.stdout, made on first use: a small response never needs it (writeWhole). */
  private stream(): NodeJS.WritableStream {
    if (!this.out) {
      this.out = this.io.stream();
      // EPIPE when the web server closed our stdout (the client went away): the request is
      // aborted, not failed; nothing reaches uncaughtException.
      this.out.on('error', () => this.brokenPipe());
    }
    return this.out;
  }

  start(status: string, headers: HeaderList, chunk: Uint8Array | null, last: boolean): void | Promise<void> {
    let head: Buffer;
    if (this.nph) {
      head = encodeCgiHead(status, headers);
      // `Status: 200 OK` -> `HTTP/1.1 200 OK` (RFC 3875 5: the script speaks HTTP itself).
      head = Buffer.concat([Buffer.from(`${this.protocol} ${status}\r\n`, 'latin1'), head.subarray(head.indexOf(0x0a) + 1)]);
    } else if (isLocalRedirect(status, headers, chunk)) {
      // RFC 3875 6.2.2: a Location path and nothing else; the server serves that path instead.
      head = Buffer.from(`Location: ${headers.find(([n]) => n.toLowerCase() === 'location')![1]}\r\n\r\n`, 'latin1');
      chunk = null;
    } else {
      head = encodeCgiHead(status, headers);
    }
    if (last) return this.writeWhole(chunk ? Buffer.concat([head, chunk]) : head);
    const p = this.write(head);
    if (chunk) return this.write(chunk);
    return p;
  }

  /**
   * The whole response in one piece: a small one goes out with one write(2) on fd 1, without
   * process.stdout (whose stream machinery costs a CGI process more start-up than the write).
   * Anything the kernel does not take at once (a full non-blocking pipe: EAGAIN) goes through
   * the stream, as do large responses (a blocking write would hold the event loop, and with it
   * the SIGTERM handler, for as long as the reader takes).
   */
  private writeWhole(data: Buffer): void | Promise<void> {
    if (this.broken) return;
    let off = 0;
    if (!this.out && data.length <= DIRECT_WRITE_MAX) {
      try {
        while (off < data.length) off += this.io.writeSync(data, off, data.length - off);
        return;
      } catch (err) {
        // EPIPE (the reader is gone), EBADF, ...: what the stream reports as 'error'.
        if (!TRY_LATER.has((err as NodeJS.ErrnoException).code!)) return this.brokenPipe();
      }
    }
    return this.write(off ? data.subarray(off) : data);
  }

  write(chunk: Uint8Array): void | Promise<void> {
    if (this.broken) return;
    this.pending++;
    const out = this.stream();
    const ok = out.write(chunk, () => this.done());
    if (ok) return;
    // Resolved on drain, or when the pipe breaks (no drain ever comes then).
    return new Promise((resolve) => {
      const wake = (): void => {
        out.off('drain', wake);
        resolve();
      };
      out.once('drain', wake);
      this.waiters.push(wake);
    });
  }

  end(): void {}

  abort(_error: Error): void {
    // Nothing on stdout can mark a CGI response incomplete once its head is out; the log has the
    // error, and the exit status is not 0.
    process.exitCode = 1;
  }

  /** Resolves once everything written reached the pipe (or the pipe broke). */
  flushed(): Promise<void> {
    if (this.pending === 0 || this.broken) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private done(): void {
    if (--this.pending === 0) for (const w of this.waiters.splice(0)) w();
  }

  private brokenPipe(): void {
    if (this.broken) return;
    this.broken = true;
    this.onBroken();
    for (const w of this.waiters.splice(0)) w();
  }
}

/** An app asks for a local redirect with status 200, a `Location: /path` and an empty body. */
function isLocalRedirect(status: string, headers: HeaderList, chunk: Uint8Array | null): boolean {
  if (statusCode(status) !== 200 || (chunk && chunk.length)) return false;
  let location: string | undefined;
  for (const [n, v] of headers) {
    const l = n.toLowerCase();
    if (l === 'location') location = v;
    else if (l !== 'content-length') return false;
  }
  // `//host/path` is a network-path reference, not a local path.
  return location !== undefined && location.startsWith('/') && !location.startsWith('//');
}
