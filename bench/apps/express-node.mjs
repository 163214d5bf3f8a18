// Peer "express-node": the Express app of express.mjs on node:http, as app.listen() runs it.
import fs from 'node:fs';
import http from 'node:http';
import app from './express.mjs';
import { listenArgs, parseArgs, runWorkers } from './common.mjs';

const opts = parseArgs(process.argv.slice(2));
runWorkers(opts, () => {
  const server = http.createServer(app);
  // nginx keeps idle upstream connections up to 60 s; do not close them first (node's default is 5 s).
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 121_000;
  const args = listenArgs(opts.bind);
  server.listen(...args, () => {
    if (typeof args[0] === 'string') fs.chmodSync(args[0], 0o666);
  });
});
