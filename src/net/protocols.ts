// Which server speaks which protocol. A protocol server is a net.Server (node:http for HTTP)
// plus a way to close its idle connections on shutdown.

import type net from 'node:net';
import type { Gateway } from '../runner/gateway.js';
import type { Protocol } from '../types.js';
import { DRAIN_GRACE_MS } from './stream-server.js';

export interface ProtocolServer {
  server: net.Server;
  /** Stop keeping connections alive: close the idle ones now, the busy ones when their request ends. */
  drain(): void;
}

export type ServeProtocol = Exclude<Protocol, 'cgi'>;

/** Protocol-specific settings from the command line. */
export interface ProtocolOptions {
  ajpSecret?: string;
  ajpPacketSize?: number;
  ajpAllowedAttributes?: RegExp;
  ajpAllowShutdown?: boolean;
  fcgiStderr?: boolean;
}

/** The protocols `serve` offers, in the order the help lists them. */
export const PROTOCOLS: Record<string, { defaultPort: number; create: (gw: Gateway, opts: ProtocolOptions) => Promise<ProtocolServer> }> = {
  http: {
    defaultPort: 8000,
    async create(gw) {
      const { createHttpServer } = await import('../protocols/http/server.js');
      const server = createHttpServer(gw);
      return {
        server,
        drain() {
          // Responses now say Connection: close (the server no longer listens). Idle connections
          // get DRAIN_GRACE_MS to send the request that may be on its way (a client reusing a
          // kept-alive connection, one just accepted) before they are closed; then keep sweeping,
          // as connections that finish a request are idle too.
          const t = setTimeout(() => {
            server.closeIdleConnections();
            setInterval(() => server.closeIdleConnections(), 100).unref();
          }, DRAIN_GRACE_MS);
          t.unref();
        },
      };
    },
  },
  fastcgi: {
    defaultPort: 9000,
    async create(gw, opts) {
      const { createFastcgiServer } = await import('../protocols/fastcgi/server.js');
      return createFastcgiServer(gw, { stderrToWebServer: opts.fcgiStderr });
    },
  },
  scgi: {
    defaultPort: 4000,
    async create(gw) {
      const { createScgiServer } = await import('../protocols/scgi/server.js');
      return createScgiServer(gw);
    },
  },
  ajp: {
    defaultPort: 8009,
    async create(gw, opts) {
      const { createAjpServer } = await import('../protocols/ajp/server.js');
      return createAjpServer(gw, {
        secret: opts.ajpSecret,
        packetSize: opts.ajpPacketSize,
        allowedAttributes: opts.ajpAllowedAttributes,
        allowShutdown: opts.ajpAllowShutdown,
      });
    },
  },
};
