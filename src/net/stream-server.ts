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
  /** Shutting down: close now if idle, else once the requests under way are finished. */
  drain(): void;
}

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
  let draining = false;
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
    socket.once('close', () => connections.delete(conn));
    if (gw.limits.idleTimeoutMs > 0) {
      socket.setTimeout(gw.limits.idleTimeoutMs, () => {
        if (conn.idle()) {
          gw.log.debug(`${name}: closing idle connection`);
          socket.destroy();
        }
      });
    }
    if (draining) conn.drain();
  });
  server.maxConnections = gw.limits.maxConnections;
  return {
    server,
    drain() {
      draining = true;
      for (const c of connections) c.drain();
    },
  };
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
