// node:http from the client's side for what curl cannot show: when each piece of a response
// arrives (streaming through a web server), and a client that hangs up mid-response.
// Every wait is bounded.

import http from 'node:http';
import net from 'node:net';
import { within } from './daemon.js';

export interface OpenResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Body bytes so far. */
  body(): Buffer;
  /** ms from the request until each chunk arrived. */
  readonly arrivals: number[];
  /** Resolves once the body so far satisfies `test` (rejects on end/error without it, or after `ms`). */
  waitFor(test: (body: Buffer) => boolean, ms: number, what: string): Promise<void>;
  /** Resolves when the response ended; `complete` false when it was cut short. */
  readonly ended: Promise<{ complete: boolean }>;
  /** Hangs up: destroys the socket. */
  destroy(): void;
}

/** A GET whose response is returned at its head, the body then observed as it arrives. */
export function openResponse(url: string, ms = 10_000): Promise<OpenResponse> {
  const started = performance.now();
  let req: http.ClientRequest | undefined;
  const p = new Promise<OpenResponse>((resolve, reject) => {
    req = http.get(url, { agent: false }, (res) => {
      const chunks: Buffer[] = [];
      const arrivals: number[] = [];
      const watchers = new Set<() => void>();
      let finished = false;
      const ended = new Promise<{ complete: boolean }>((r) => {
        const done = () => {
          if (finished) return;
          finished = true;
          r({ complete: res.complete });
          for (const w of watchers) w();
        };
        res.on('end', done);
        res.on('close', done);
        res.on('error', done);
      });
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        arrivals.push(performance.now() - started);
        for (const w of watchers) w();
      });
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: () => Buffer.concat(chunks),
        arrivals,
        ended,
        destroy: () => {
          res.destroy();
          req!.destroy();
        },
        waitFor(test, wms, what) {
          let w: () => void = () => {};
          const wp = new Promise<void>((ok, fail) => {
            w = () => {
              const body = Buffer.concat(chunks);
              if (test(body)) ok();
              else if (finished) fail(new Error(`response ended before ${what}; body: ${body.subarray(0, 200).toString('latin1')}`));
            };
            watchers.add(w);
            w();
          });
          return within(wp, wms, what).finally(() => watchers.delete(w));
        },
      });
    });
    req.on('error', reject);
  });
  return within(p, ms, `response head of GET ${url}`).catch((e: unknown) => {
    req?.destroy();
    throw e;
  });
}

export interface SimpleResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  complete: boolean;
}

/** One GET over a fresh connection, body collected (small responses only). */
export function get(url: string, o: { headers?: Record<string, string>; ms?: number } = {}): Promise<SimpleResponse> {
  let req: http.ClientRequest | undefined;
  const p = new Promise<SimpleResponse>((resolve, reject) => {
    req = http.get(url, { agent: false, headers: o.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      let settled = false;
      const done = () => {
        if (settled) return;
        settled = true;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete: res.complete });
      };
      res.on('end', done);
      res.on('close', done);
      res.on('error', done);
    });
    req.on('error', reject);
  });
  return within(p, o.ms ?? 10_000, `GET ${url}`).catch((e: unknown) => {
    req?.destroy();
    throw e;
  });
}

/**
 * Writes `bytes` on a fresh TCP connection and collects everything until the server closes it
 * (bounded): for pipelined requests, where what follows one response shows whether stray body
 * bytes leaked after it (HEAD).
 */
export function rawExchange(port: number, bytes: string, ms = 10_000): Promise<Buffer> {
  const s = net.connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  const p = new Promise<Buffer>((resolve, reject) => {
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('close', () => resolve(Buffer.concat(chunks)));
    s.once('error', reject);
    s.once('connect', () => s.write(bytes));
  });
  return within(p, ms, `the server on port ${port} to answer and close`).finally(() => s.destroy());
}
