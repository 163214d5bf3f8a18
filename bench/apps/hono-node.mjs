// Peer "hono-node": the Hono app of hono.mjs on its usual Node server, @hono/node-server.
import fs from 'node:fs';
import { createAdaptorServer } from '@hono/node-server';
import app from './hono.mjs';
import { listenArgs, parseArgs, runWorkers } from './common.mjs';

const opts = parseArgs(process.argv.slice(2));
runWorkers(opts, () => {
  const args = listenArgs(opts.bind);
  // What serve() does, minus its listen(): the same server, on a unix socket or TCP.
  const server = createAdaptorServer({ fetch: app.fetch });
  // nginx keeps idle upstream connections up to 60 s; do not close them first (node's default is 5 s).
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 121_000;
  server.listen(...args, () => {
    if (typeof args[0] === 'string') fs.chmodSync(args[0], 0o666);
  });
});
