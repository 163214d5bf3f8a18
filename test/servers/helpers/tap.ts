// A byte tap between a web server and an app server: a TCP proxy that forwards everything both
// ways and lets the test watch each connection (what nginx sends to a FastCGI/SCGI/AJP backend,
// how many connections it opens, who closes first). Protocol decoding is left to the caller.

import net from 'node:net';
import { type Endpoint, within } from './daemon.js';

export type Direction = 'up' | 'down'; // up: web server -> app; down: app -> web server

export interface TapConnection {
  readonly id: number;
  bytesUp: number;
  bytesDown: number;
  /** Who ended first: the web server ('up' FIN), the app ('down' FIN), or undefined yet. */
  firstFin: Direction | undefined;
  /** Whose side went first, by FIN or by reset: 'up' the web server, 'down' the app. */
  firstClose: Direction | undefined;
  /** A side that reset its connection (ECONNRESET) rather than ending it. */
  resetBy: Direction | undefined;
  closed: boolean;
}

export interface Tap {
  readonly port: number;
  readonly connections: TapConnection[];
  close(): Promise<void>;
}

/**
 * Listens on 127.0.0.1 (a free port) and forwards each connection to `target`.
 * `observe` sees every chunk, per connection and direction, before it is forwarded.
 */
export async function startTap(
  target: Endpoint,
  observe?: (conn: TapConnection, dir: Direction, chunk: Buffer) => void,
): Promise<Tap> {
  const connections: TapConnection[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const conn: TapConnection = {
      id: connections.length + 1,
      bytesUp: 0,
      bytesDown: 0,
      firstFin: undefined,
      firstClose: undefined,
      resetBy: undefined,
      closed: false,
    };
    connections.push(conn);
    const upstream = 'path' in target ? net.connect(target.path) : net.connect({ host: target.host ?? '127.0.0.1', port: target.port });
    sockets.add(client);
    sockets.add(upstream);
    client.on('data', (c: Buffer) => {
      conn.bytesUp += c.length;
      observe?.(conn, 'up', c);
      if (!upstream.write(c)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    upstream.on('data', (c: Buffer) => {
      conn.bytesDown += c.length;
      observe?.(conn, 'down', c);
      if (!client.write(c)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
    client.on('end', () => {
      conn.firstFin ??= 'up';
      conn.firstClose ??= 'up';
      upstream.end();
    });
    upstream.on('end', () => {
      conn.firstFin ??= 'down';
      conn.firstClose ??= 'down';
      client.end();
    });
    const done = () => {
      conn.closed = true;
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', () => {
      conn.firstClose ??= 'up';
      done();
    });
    upstream.on('close', () => {
      conn.firstClose ??= 'down';
      done();
    });
    client.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNRESET') conn.resetBy ??= 'up';
    });
    upstream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNRESET') conn.resetBy ??= 'down';
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, resolve);
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    async close() {
      for (const s of sockets) s.destroy();
      await within(new Promise<void>((r) => server.close(() => r())), 5_000, 'tap to close').catch(() => {});
    },
  };
}
