// CGI/1.1 (RFC 3875) from the script's side: one request per process. Meta-variables come from
// the environment, the body from standard input, the response goes to standard output.

import fs from 'node:fs';
import { ClientGoneError } from '../../errors.js';
import { createLineLogger } from '../../log-line.js';
import { encodeCgiHead } from '../../runner/cgi-head.js';
import { parseContentLength } from '../../runner/environ.js';
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

/** Handles the one request of this process with `app`, then exits. */
export async function runCgi(app: App, opts: CgiOptions = {}): Promise<never> {
  const log = createLineLogger({ level: opts.logLevel });
  const gw = new Gateway({ app, log, protocol: 'cgi', multiprocess: true, multithread: false, runOnce: true, debug: opts.debug });
  const vars = readEnvironment();
  const nph = opts.nph ?? /(^|\/)nph-[^/]*$/.test(vars.SCRIPT_NAME ?? vars.SCRIPT_FILENAME ?? '');
  const ac = new AbortController();
  const sink = new StdoutSink(nph, vars.SERVER_PROTOCOL, () => ac.abort());
  let length: number | undefined;
  let refuse: Error | undefined;
  try {
    length = parseContentLength(vars.CONTENT_LENGTH);
  } catch (err) {
    refuse = err as Error;
  }
  // RFC 3875 4.2: with no CONTENT_LENGTH there is no body (a server that streams a chunked
  // upload sets it or closes stdin; read to its end then).
  const input = new BodyQueue({ length: refuse ? 0 : length, highWaterMark: gw.limits.bodyHighWaterMark, onDemand: () => stdin.resume() });
  const stdin = readStdin(input, length);
  await gw.handle(vars, input, sink, ac.signal, undefined, refuse ? refusingApp(refuse) : undefined);
  await sink.flushed();
  stdin.destroy();
  process.exit(process.exitCode ?? 0);
}

/** The environment as byte strings: /proc/self/environ keeps bytes that are not UTF-8 exact. */
function readEnvironment(): Record<string, string> {
  const vars: Record<string, string> = {};
  let raw: Buffer | null = null;
  try {
    raw = fs.readFileSync('/proc/self/environ');
  } catch {
    raw = null;
  }
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

function readStdin(input: BodyQueue, length: number | undefined): fs.ReadStream {
  const stream = fs.createReadStream('', { fd: 0, autoClose: false, highWaterMark: 64 * 1024 });
  if (length === 0) {
    stream.pause();
    return stream;
  }
  stream.on('data', (chunk) => {
    if (!input.push(chunk as Buffer)) stream.pause();
    if (input.remaining === 0) stream.pause();
  });
  stream.on('end', () => input.end());
  stream.on('error', (err) => input.fail(err));
  return stream;
}

class StdoutSink implements ResponseSink {
  private pending = 0;
  private waiters: Array<() => void> = [];
  private broken = false;
  private readonly nph: boolean;
  private readonly protocol: string;
  private readonly onBroken: () => void;

  constructor(nph: boolean, protocol: string | undefined, onBroken: () => void) {
    this.nph = nph;
    this.protocol = protocol && /^HTTP\/[0-9.]+$/.test(protocol) ? protocol : 'HTTP/1.0';
    this.onBroken = onBroken;
    process.stdout.on('error', () => this.brokenPipe());
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
    const p = this.write(chunk && last ? Buffer.concat([head, chunk]) : head);
    if (chunk && !last) return this.write(chunk);
    return p;
  }

  write(chunk: Uint8Array): void | Promise<void> {
    if (this.broken) return;
    this.pending++;
    const ok = process.stdout.write(chunk, () => this.done());
    if (ok) return;
    return new Promise((resolve) => process.stdout.once('drain', resolve));
  }

  end(): void {}

  abort(_error: Error): void {
    // Nothing on stdout can mark a CGI response incomplete once its head is out; the log has the
    // error, and the exit status is not 0.
    process.exitCode = 1;
  }

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
    void new ClientGoneError();
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
  return location !== undefined && location.startsWith('/');
}
