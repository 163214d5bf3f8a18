// Response compression (nginx's gzip/brotli filters, Express's compression): gzip and brotli
// through node:zlib, chosen from Accept-Encoding with its q-values. Small responses, responses
// already encoded, partial (206) or bodyless ones, HEAD and types that do not compress are
// passed on as they are. A body is compressed chunk by chunk as the server pulls it, so a slow
// client slows the app down instead of piling compressed bytes up in memory.

import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { AppError } from '../errors.js';
import { toBytes } from '../runner/run.js';
import { bodyless, statusCode } from '../runner/start-response.js';
import type { App, Body, Chunk, HeaderList, StartResponse, WriteCallable } from '../types.js';
import { addVary, getHeader, after, withoutHeader } from './util.js';

export type Coding = 'br' | 'gzip';

export interface CompressionOptions {
  /** Codings offered, in the server's order of preference (ties in q go to the first). Default ['br', 'gzip']. */
  encodings?: Coding[];
  /** Bodies known to be smaller than this many bytes are sent as they are. Default 1024. */
  minSize?: number;
  /** gzip level, 1 (fast) to 9 (small). Default 6. */
  gzipLevel?: number;
  /** brotli quality, 0 to 11. Default 4: 11 is for files compressed ahead of time, not per request. */
  brotliQuality?: number;
  /**
   * Media types to compress: exact (`application/json`), `text/*`, or `*\/*+json`-style suffixes.
   * Or a function of the Content-Type value. Default: text (not event streams), JSON, JavaScript,
   * XML, SVG, wasm, and fonts that are not compressed already.
   */
  types?: string[] | ((contentType: string) => boolean);
  /**
   * Flush the compressor after each chunk so that it reaches the client at once: 'auto' (for
   * async bodies, which produce chunks over time, and for write()), 'always' or 'never'.
   */
  flush?: 'auto' | 'always' | 'never';
}

export const DEFAULT_COMPRESSIBLE = [
  'text/*',
  'application/json',
  'application/javascript',
  'application/x-javascript',
  'application/ecmascript',
  'application/xml',
  'application/xhtml+xml',
  'application/rss+xml',
  'application/atom+xml',
  'application/wasm',
  'application/manifest+json',
  'application/vnd.ms-fontobject',
  'image/svg+xml',
  'image/x-icon',
  'image/bmp',
  'font/ttf',
  'font/otf',
  '*/*+json',
  '*/*+xml',
];
/** Text that is not compressed: an event stream is consumed as it arrives, and proxies buffer it. */
const NEVER = new Set(['text/event-stream']);

/**
 * The coding to use for an Accept-Encoding value, or undefined for identity (RFC 9110 §12.5.3):
 * the highest q above 0, ties broken by `offered`'s order; `*` stands for codings not named;
 * `x-gzip` is gzip. No header means identity.
 */
export function negotiateEncoding(accept: string | undefined, offered: readonly Coding[] = ['br', 'gzip']): Coding | undefined {
  if (accept === undefined) return undefined;
  const q = new Map<string, number>();
  for (const part of accept.split(',')) {
    const [rawName, ...params] = part.split(';');
    let name = rawName!.trim().toLowerCase();
    if (!name) continue;
    if (name === 'x-gzip') name = 'gzip';
    let weight = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*(.*?)\s*$/i.exec(p);
      if (m) {
        weight = /^(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)$/.test(m[1]!) ? Number(m[1]) : NaN;
      }
    }
    if (Number.isNaN(weight)) continue; // a q that is not a qvalue: ignore the entry
    // A coding named twice: the most favourable entry counts.
    q.set(name, Math.max(q.get(name) ?? 0, weight));
  }
  let best: Coding | undefined;
  let bestQ = 0;
  for (const c of offered) {
    const w = q.get(c) ?? q.get('*') ?? 0;
    if (w > bestQ) {
      best = c;
      bestQ = w;
    }
  }
  return best;
}

/** A type matcher for `types` (exact, `major/*`, `*\/*+suffix`). */
export function typeMatcher(types: string[] | ((contentType: string) => boolean) = DEFAULT_COMPRESSIBLE): (contentType: string | undefined) => boolean {
  if (typeof types === 'function') return (ct) => ct !== undefined && types(ct);
  const exact = new Set<string>();
  const majors = new Set<string>();
  const suffixes = new Set<string>();
  for (const t of types) {
    const s = t.toLowerCase();
    if (s.startsWith('*/*+')) suffixes.add(s.slice(4));
    else if (s.endsWith('/*')) majors.add(s.slice(0, -2));
    else exact.add(s);
  }
  return (ct) => {
    if (!ct) return false;
    const mt = ct.split(';')[0]!.trim().toLowerCase();
    if (NEVER.has(mt) && !exact.has(mt)) return false;
    if (exact.has(mt)) return true;
    const slash = mt.indexOf('/');
    if (slash < 0) return false;
    if (majors.has(mt.slice(0, slash))) return true;
    const plus = mt.lastIndexOf('+');
    return plus > slash && suffixes.has(mt.slice(plus + 1));
  };
}

const gzipAsync = promisify(zlib.gzip);
const brotliAsync = promisify(zlib.brotliCompress);

/** One response's compressor: bytes in, compressed bytes out, one step at a time. */
class Encoder {
  private readonly z: zlib.Gzip | zlib.BrotliCompress;
  private readonly flushFlag: number;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(coding: Coding, o: Required<Pick<CompressionOptions, 'gzipLevel' | 'brotliQuality'>>, text: boolean) {
    if (coding === 'br') {
      this.z = zlib.createBrotliCompress({
        params: {
          [zlib.constants.BROTLI_PARAM_QUALITY]: o.brotliQuality,
          [zlib.constants.BROTLI_PARAM_MODE]: text ? zlib.constants.BROTLI_MODE_TEXT : zlib.constants.BROTLI_MODE_GENERIC,
        },
      });
      this.flushFlag = zlib.constants.BROTLI_OPERATION_FLUSH;
    } else {
      this.z = zlib.createGzip({ level: o.gzipLevel });
      this.flushFlag = zlib.constants.Z_SYNC_FLUSH;
    }
    this.z.on('error', () => {}); // reported through the callbacks below
  }

  /** Compresses `chunk` (and flushes when asked); resolves with the output it produced. */
  push(chunk: Uint8Array, flush: boolean): Promise<Buffer> {
    return this.step((done) =>
      this.z.write(chunk, (err) => {
        if (err || !flush) return done(err);
        this.z.flush(this.flushFlag, () => done());
      }),
    );
  }

  /** Ends the stream; resolves with the rest of the output. */
  end(): Promise<Buffer> {
    return this.step((done) => {
      this.z.once('end', () => done());
      this.z.once('error', done);
      this.z.end();
    });
  }

  destroy(): void {
    this.z.destroy();
  }

  // The write callback fires once zlib has taken the chunk; its output is read from the readable
  // side meanwhile (zlib holds the callback back while that side is full). Steps run one at a
  // time, in the order they were asked for.
  private step(op: (done: (err?: Error | null) => void) => void): Promise<Buffer> {
    const run = () =>
      new Promise<Buffer>((resolve, reject) => {
        const z = this.z;
        const out: Buffer[] = [];
        const read = () => {
          for (let b: Buffer | null; (b = z.read() as Buffer | null) !== null; ) out.push(b);
        };
        z.on('readable', read);
        op((err) => {
          read();
          z.off('readable', read);
          if (err) reject(err);
          else resolve(out.length === 1 ? out[0]! : Buffer.concat(out));
        });
      });
    const p = this.queue.then(run);
    this.queue = p.catch(() => {});
    return p;
  }
}

interface Pending {
  status: string;
  headers: HeaderList;
  excInfo?: unknown;
}

/** Compresses the responses of `app` that are worth it, for clients that accept it. */
export function compression(app: App, options: CompressionOptions = {}): App {
  const offered = options.encodings ?? ['br', 'gzip'];
  for (const c of offered) if (c !== 'br' && c !== 'gzip') throw new TypeError(`compression: unknown encoding '${String(c)}' (br or gzip)`);
  const minSize = options.minSize ?? 1024;
  const levels = { gzipLevel: options.gzipLevel ?? 6, brotliQuality: options.brotliQuality ?? 4 };
  const compressible = typeMatcher(options.types);
  const flushMode = options.flush ?? 'auto';

  return function compressionApp(environ, startResponse) {
    const coding = negotiateEncoding(environ.HTTP_ACCEPT_ENCODING as string | undefined, offered);
    const head = environ.REQUEST_METHOD === 'HEAD';
    let pending: Pending | undefined;
    let started = false; // the server's startResponse has been called with the final headers
    let emitted = false; // a non-empty chunk went to the server: the headers are out
    let encoder: Encoder | undefined;
    let realWrite: WriteCallable | undefined;
    let declared: number | undefined; // Content-Length of a response being compressed
    let taken = 0;

    /** What to do with the pending response, `total` being the body's size when known. */
    const decide = (p: Pending, total: number | undefined, canCompress = true): { headers: HeaderList; compress: boolean; text: boolean } => {
      const code = statusCode(p.status);
      const type = getHeader(p.headers, 'content-type');
      const ce = getHeader(p.headers, 'content-encoding');
      const eligible =
        compressible(type) &&
        (ce === undefined || ce.trim().toLowerCase() === 'identity') &&
        !bodyless(code) &&
        code !== 206 &&
        getHeader(p.headers, 'content-range') === undefined &&
        !/(?:^|,)\s*no-transform\s*(?:,|$)/i.test(getHeader(p.headers, 'cache-control') ?? '');
      if (!eligible) return { headers: p.headers, compress: false, text: false };
      let headers = addVary(p.headers, 'Accept-Encoding');
      const cl = getHeader(p.headers, 'content-length');
      const size = total ?? (cl !== undefined ? Number(cl) : undefined);
      if (!canCompress || head || coding === undefined || (size !== undefined && size < minSize)) return { headers, compress: false, text: false };
      headers = withoutHeader(headers, 'content-length', 'accept-ranges', 'content-encoding');
      headers.push(['Content-Encoding', coding]);
      // The compressed bytes are another representation: a strong validator must not claim
      // they are the same (what nginx does too).
      const i = headers.findIndex(([n]) => n.toLowerCase() === 'etag');
      if (i >= 0 && !headers[i]![1].startsWith('W/')) headers[i] = [headers[i]![0], `W/${headers[i]![1]}`];
      return { headers, compress: true, text: type!.toLowerCase().startsWith('text/') };
    };

    const begin = (total: number | undefined, canCompress = true): void => {
      const p = pending!;
      const d = decide(p, total, canCompress);
      realWrite = startResponse(p.status, d.headers, p.excInfo);
      started = true;
      if (d.compress) {
        encoder = new Encoder(coding!, levels, d.text);
        const cl = getHeader(p.headers, 'content-length');
        declared = cl !== undefined ? Number(cl) : undefined;
      }
    };

    /** The part of `bytes` within a declared Content-Length (the runner's rule, kept for the app). */
    const cap = (bytes: Uint8Array): Uint8Array => {
      if (declared === undefined) return bytes;
      const room = Math.max(0, declared - taken);
      taken += Math.min(bytes.length, room);
      return bytes.length > room ? bytes.subarray(0, room) : bytes;
    };

    const sr: StartResponse = (status, headers, excInfo) => {
      if (excInfo !== undefined && excInfo !== null) {
        if (emitted) return startResponse(status, headers, excInfo); // throws: headers are out
        if (started && !encoder) {
          // Passing the body through untouched: only the headers change.
          pending = { status, headers, excInfo };
          realWrite = startResponse(status, decide(pending, undefined, false).headers, excInfo);
          return write;
        }
        encoder?.destroy();
        encoder = undefined;
        started = false;
        declared = undefined;
        taken = 0;
      } else if (pending !== undefined) {
        throw new AppError('startResponse() called a second time without excInfo (headers already set)');
      }
      pending = { status, headers, excInfo };
      return write;
    };

    const write: WriteCallable = (chunk) => {
      if (pending === undefined) throw new AppError('write() called before startResponse()');
      const bytes = toBytes(chunk);
      if (!started) begin(undefined);
      if (!encoder) {
        if (bytes.length > 0) emitted = true;
        return realWrite!(bytes);
      }
      const enc = encoder;
      return enc.push(cap(bytes), flushMode !== 'never').then((out) => {
        if (out.length === 0) return;
        emitted = true;
        return realWrite!(out);
      });
    };

    const wrap = (body: Body): Body | Promise<Body> => {
      if (pending === undefined && !started) return stream(body); // a generator: startResponse comes later
      if (!started && Array.isArray(body)) return whole(body);
      if (!started) {
        // Known now whatever the size: nothing to compress, so the body goes through as it is.
        if (!decide(pending!, undefined).compress) {
          begin(undefined, false);
          return body;
        }
        return stream(body);
      }
      return encoder ? stream(body) : body;
    };

    /** An array: its size is known, so it is compressed whole, with a Content-Length. */
    const whole = (body: Body & unknown[]): Body | Promise<Body> => {
      const parts = body.map((c) => toBytes(c as Chunk));
      const total = parts.reduce((n, p) => n + p.length, 0);
      const d = decide(pending!, total);
      if (!d.compress) {
        begin(total, false);
        return body;
      }
      const cl = getHeader(pending!.headers, 'content-length');
      if (cl !== undefined && Number(cl) !== total) {
        // The app's Content-Length is wrong: pass it on as it is, for the server to report.
        begin(total, false);
        return body;
      }
      const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      const done = coding === 'br'
        ? brotliAsync(data, {
            params: {
              [zlib.constants.BROTLI_PARAM_QUALITY]: levels.brotliQuality,
              [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length,
              [zlib.constants.BROTLI_PARAM_MODE]: d.text ? zlib.constants.BROTLI_MODE_TEXT : zlib.constants.BROTLI_MODE_GENERIC,
            },
          })
        : gzipAsync(data, { level: levels.gzipLevel });
      return done.then((out) => {
        const p = pending!;
        realWrite = startResponse(p.status, [...d.headers, ['Content-Length', String(out.length)]], p.excInfo);
        started = true;
        emitted = out.length > 0;
        const result: Body = [out];
        if (typeof body.close === 'function') (result as Body).close = () => body.close!();
        return result;
      });
    };

    /** Any other body: compressed as the server pulls it. */
    const stream = (body: Body): Body => {
      const flushEach = flushMode === 'always' || (flushMode === 'auto' && typeof (body as AsyncIterable<Chunk>)[Symbol.asyncIterator] === 'function');
      return {
        async *[Symbol.asyncIterator](): AsyncGenerator<Chunk> {
          try {
            for await (const chunk of body as AsyncIterable<Chunk>) {
              if (pending === undefined) {
                yield chunk; // before startResponse: the server reports it
                continue;
              }
              const bytes = toBytes(chunk);
              if (!started) {
                if (bytes.length === 0) continue;
                begin(undefined);
              }
              if (!encoder) {
                if (bytes.length > 0) emitted = true;
                yield bytes;
                continue;
              }
              const out = await encoder.push(cap(bytes), flushEach);
              if (out.length > 0) {
                emitted = true;
                yield out;
              }
            }
            if (pending === undefined) return;
            if (!started) begin(0);
            if (encoder) {
              const out = await encoder.end();
              encoder = undefined;
              if (out.length > 0) {
                emitted = true;
                yield out;
              }
            }
          } finally {
            encoder?.destroy();
          }
        },
        close: async () => {
          encoder?.destroy();
          await body.close?.();
        },
      };
    };

    return after(app(environ, sr), wrap) as Body | Promise<Body>;
  };
}
