// The socket side shared by the byte-stream protocols (FastCGI, SCGI, AJP): accept, limit,
// time out idle peers, log and drop a connection that sends bad bytes, drain on shutdown.

import net from 'node:net';
import { ProtocolError, RequestError } from '../errors.js';
import type { Gateway } from '../runner/gateway.js';
import type { ProtocolServer } from './protocols.js';

/** One connection's protocol state machine, as the shared server sees it. */
export interface Connection {
  /** No request is under way on it. */
  idle(): boolean;
  /** Requests begun on it so far (0: the header timeout applies, not the idle one). */
  readonly requests: number;
  /** Shutting down: close now if idle, else once the requests under way are finished. */
  drain(): void;
}

/**
 * On shutdown, an idle connection gets this long to begin a request before it is closed: a
 * connection just accepted has its first request on the way, and a web server may be sending one
 * on a kept-alive connection; closing under it would fail that request. The request is answered,
 * and the connection closed after it.
 */
export const DRAIN_GRACE_MS = 1000;

export interface StreamServerOptions {
  /** Only peers in this list may connect (FastCGI's FCGI_WEB_SERVER_ADDRS). */
  allow?: net.BlockList;
  /** Keep our side open after the peer's FIN, to finish the answers under way. */
  allowHalfOpen?: boolean;
}

export function createStreamServer(
  gw: Gateway,
  name: string,
  accept: (socket: net.Socket) => Connection,
  opts: StreamServerOptions = {},
): ProtocolServer {
  const connections = new Set<Connection>();
  const sweeper = new Sweeper(gw, name);
  let draining = false;
  /** Idle connections in their grace, with their request count when it began. */
  const waiting = new Map<Connection, number>();
  let graceTimer: NodeJS.Timeout | undefined;
  let graceSince = 0;
  // Shutting down: a busy connection closes after its requests; an idle one once it begins a
  // request (closed after it; one that began and ended between two looks is closed now) or after
  // DRAIN_GRACE_MS.
  const drainSoon = (c: Connection) => {
    if (!c.idle()) return c.drain();
    waiting.set(c, c.requests);
    graceTimer ??= setInterval(() => {
      const late = performance.now() - graceSince >= DRAIN_GRACE_MS;
      for (const [w, requests] of waiting) {
        if (!late && w.idle() && w.requests === requests) continue;
        waiting.delete(w);
        if (connections.has(w)) w.drain();
      }
      if (waiting.size === 0) {
        clearInterval(graceTimer);
        graceTimer = undefined;
      }
    }, 20);
  };
  const server = net.createServer({ noDelay: true, allowHalfOpen: opts.allowHalfOpen ?? false }, (socket) => {
    if (opts.allow && socket.remoteAddress && !peerAllowed(opts.allow, socket.remoteAddress)) {
      gw.log.warn({ peer: socket.remoteAddress }, `${name}: connection refused: peer not in FCGI_WEB_SERVER_ADDRS`);
      socket.destroy();
      return;
    }
    socket.on('error', (err: NodeJS.ErrnoException) => {
      gw.log.debug({ code: err.code }, `${name}: connection error: ${err.message}`);
    });
    const conn = accept(socket);
    connections.add(conn);
    sweeper.add(conn, socket);
    socket.once('close', () => {
      connections.delete(conn);
      waiting.delete(conn);
      sweeper.delete(conn);
    });
    if (draining) drainSoon(conn);
  });
  server.maxConnections = gw.limits.maxConnections;
  server.once('close', () => sweeper.stop());
  return {
    server,
    drain() {
      if (draining) return;
      draining = true;
      graceSince = performance.now();
      for (const c of connections) drainSoon(c);
    },
  };
}

/**
 * Idle and header timeouts for all connections of a server, from one timer: a per-socket
 * setTimeout costs a timer refresh on every read and write, which the one-request connections
 * of FastCGI (nginx's default) and SCGI pay on every request. Granularity: a quarter of the
 * shortest timeout, at least 250 ms.
 */
class Sweeper {
  private readonly tracked = new Map<Connection, { socket: net.Socket; requests: number; quietMs: number }>();
  private timer: NodeJS.Timeout | undefined;
  private last = 0;
  private readonly gw: Gateway;
  private readonly name: string;
  private readonly tick: number;

  constructor(gw: Gateway, name: string) {
    this.gw = gw;
    this.name = name;
    const timeouts = [gw.limits.idleTimeoutMs, gw.limits.headerTimeoutMs].filter((t) => t > 0);
    this.tick = timeouts.length ? Math.max(250, Math.min(...timeouts) / 4) : 0;
  }

  add(conn: Connection, socket: net.Socket): void {
    if (!this.tick) return;
    this.tracked.set(conn, { socket, requests: conn.requests, quietMs: 0 });
    if (!this.timer) {
      this.last = performance.now();
      this.timer = setInterval(() => this.sweep(), this.tick);
      this.timer.unref();
    }
  }

  delete(conn: Connection): void {
    this.tracked.delete(conn);
    if (this.tracked.size === 0) this.stop();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private sweep(): void {
    const now = performance.now();
    const elapsed = now - this.last;
    this.last = now;
    const { idleTimeoutMs, headerTimeoutMs } = this.gw.limits;
    for (const [conn, t] of this.tracked) {
      if (!conn.idle() || conn.requests !== t.requests) {
        t.requests = conn.requests;
        t.quietMs = 0;
        continue;
      }
      t.quietMs += elapsed;
      const fresh = conn.requests === 0;
      const limit = fresh ? headerTimeoutMs : idleTimeoutMs;
      if (limit > 0 && t.quietMs >= limit) {
        if (fresh) this.gw.log.warn({ code: 'TSGI_HEADER_TIMEOUT' }, `${this.name}: request head not received in time; connection closed`);
        else this.gw.log.debug({ code: 'TSGI_IDLE_TIMEOUT' }, `${this.name}: closing an idle connection`);
        this.tracked.delete(conn);
        t.socket.destroy();
      }
    }
  }
}

function peerAllowed(list: net.BlockList, address: string): boolean {
  const v6 = address.includes(':');
  if (v6 && address.toLowerCase().startsWith('::ffff:') && address.includes('.')) {
    return list.check(address.slice(7), 'ipv4') || list.check(address, 'ipv6');
  }
  return list.check(address, v6 ? 'ipv6' : 'ipv4');
}

/** FCGI_WEB_SERVER_ADDRS: comma-separated addresses (FastCGI spec 3.2), v4 and v6. */
export function parseAddressList(value: string): net.BlockList {
  const list = new net.BlockList();
  for (const raw of value.split(',')) {
    const a = raw.trim();
    if (!a) continue;
    const type = net.isIPv6(a) ? 'ipv6' : net.isIPv4(a) ? 'ipv4' : null;
    if (!type) throw new RequestError('TSGI_BAD_ADDRS', `FCGI_WEB_SERVER_ADDRS: '${a}' is not an IP address`, 500);
    list.addAddress(a, type);
    if (type === 'ipv4') list.addAddress(`::ffff:${a}`, 'ipv6');
  }
  return list;
}

/** Logs a protocol error once, at warn, without a stack: the peer sent bad bytes. */
export function logProtocolError(gw: Gateway, name: string, err: unknown, peer?: string): void {
  if (err instanceof ProtocolError || err instanceof RequestError) {
    gw.log.warn({ code: err.code, peer }, `${name}: ${err.message}; connection closed`);
  } else {
    gw.log.error({ err, peer }, `${name}: internal error; connection closed`);
  }
}

/** `list` in one write (a writev when it has several pieces); false once the socket is backed up. */
export function writeList(socket: net.Socket, list: readonly Uint8Array[]): boolean {
  if (list.length === 1) return socket.write(list[0]!);
  let ok = true;
  socket.cork();
  for (let i = 0; i < list.length; i++) ok = socket.write(list[i]!);
  socket.uncork();
  return ok;
}

/**
 * Closes a connection whose requests are answered and read to their end. When what we wrote is
 * already in the kernel, close(2) now: the FIN follows the data at once, and the web server reads
 * answer and end in one go (no shutdown(2), no wait for its FIN). Otherwise end() as usual. Only
 * for a peer that will send nothing more: closing on unread bytes makes the kernel send a reset,
 * which can destroy the answer before the peer reads it.
 */
export function closeAfterWrite(socket: net.Socket): void {
  if (socket.writableLength === 0) socket.destroy();
  else socket.end();
}
