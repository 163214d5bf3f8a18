// In-process cost of the framework adapters. `npm run build` first; then
//   node bench/micro/adapters-loop.mjs MODE [N]
//
// plain | hono | hono-native | node | express: `Gateway.handle` in a loop over a no-op sink, for a
//   plain TSGI hello, a Hono app through fromFetch as `bin/tsgi serve` runs it (the global Response
//   made lightweight: overrideGlobalObjects), the same with the globals left alone (hono-native), a
//   bare (req, res) listener and an Express app through fromNodeListener.
// node-http | express-http: the same listener on node:http itself, each request written into an
//   in-memory keep-alive socket (node's own path, its HTTP parsing included).
// hono-http: the Hono app on @hono/node-server's listener over node:http (the hono-node peer).
// plain-fcgi | node-fcgi | express-fcgi | hono-fcgi: through tsgi's FastCGI server, each request's records
//   written into an in-memory connection kept open (fastcgi_keep_conn), FastCGI parsing included:
//   the peer of node-http / express-http.
//
// Each request is its own event-loop turn (setImmediate), as a server's I/O callback is: node:http's
// req and res do their 'finish', 'end' and 'close' on process.nextTick, which would otherwise pile
// up until the loop ends (an earlier version of this loop measured that pile, and ran out of memory
// with Express at 200,000 requests). Prints wall-clock and CPU (user + system) µs per request.
import http from 'node:http';
import { Duplex } from 'node:stream';

const D = new URL('../../dist/', import.meta.url).href;
const { fromFetch } = await import(D + 'adapters/fetch.js');
const { fromNodeListener } = await import(D + 'adapters/node.js');
const { Gateway } = await import(D + 'runner/gateway.js');
const { RequestAbort } = await import(D + 'runner/abort.js');
const { createLineLogger } = await import(D + 'log-line.js');
const { createFastcgiServer } = await import(D + 'protocols/fastcgi/server.js');
const { encodeBeginRequest, encodeParams, encodeRecord } = await import(D + 'protocols/fastcgi/codec.js');

const HELLO = 'Hello, world!';
const bare = (req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '13' });
  res.end(HELLO);
};
const plain = (_env, sr) => {
  sr('200 OK', [['Content-Type', 'text/plain'], ['Content-Length', '13']]);
  return [HELLO];
};

async function listenerFor(name) {
  if (name.startsWith('hono')) {
    // hono-http: the Hono app on @hono/node-server's listener, as the hono-node peer serves it.
    const { getRequestListener } = await import('@hono/node-server');
    return getRequestListener((await import('../apps/hono.mjs')).default.fetch);
  }
  return name.startsWith('express') ? (await import('../apps/express.mjs')).default : bare;
}

async function appFor(name) {
  if (name === 'plain' || name === 'plain-fcgi') return plain;
  if (name === 'hono' || name === 'hono-fcgi') return fromFetch((await import('../apps/hono.mjs')).default, { overrideGlobalObjects: true });
  if (name === 'hono-native') return fromFetch((await import('../apps/hono.mjs')).default);
  return fromNodeListener(await listenerFor(name));
}

/** A connection in memory: what the server writes is counted, what we push is what it reads. */
class MemorySocket extends Duplex {
  remoteAddress = '127.0.0.1';
  remotePort = 51234;
  written = 0;
  _read() {}
  _write(c, _e, cb) {
    this.written += c.length;
    cb();
  }
  _writev(cs, cb) {
    for (const c of cs) this.written += c.chunk.length;
    cb();
  }
  setTimeout() {
    return this;
  }
  setNoDelay() {
    return this;
  }
  setKeepAlive() {
    return this;
  }
}

const name = process.argv[2] ?? 'plain';
const N = Number(process.argv[3] ?? 20000);
const log = createLineLogger({ level: 'warn' });
let bodyBytes = 0;
let one;
let check = () => {};
if (name.endsWith('-http')) {
  const server = http.createServer(await listenerFor(name));
  server.keepAliveTimeout = 120_000;
  const sock = new MemorySocket();
  server.emit('connection', sock);
  // What nginx's proxy_pass sends for GET /hello (HTTP/1.1, upstream keepalive).
  const req = Buffer.from('GET /hello HTTP/1.1\r\nHost: localhost\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n');
  one = () => sock.push(req);
  check = () => {
    if (sock.written < 3 * N * 100) throw new Error(`only ${sock.written} bytes written`);
  };
} else if (name.endsWith('-fcgi')) {
  const gw = new Gateway({ app: await appFor(name), log, protocol: 'fastcgi' });
  const sock = new MemorySocket();
  createFastcgiServer(gw).server.emit('connection', sock);
  // What nginx's fastcgi_params send for GET /hello, on a kept connection.
  const params = [
    ['QUERY_STRING', ''], ['REQUEST_METHOD', 'GET'], ['CONTENT_TYPE', ''], ['CONTENT_LENGTH', ''],
    ['SCRIPT_NAME', ''], ['REQUEST_URI', '/hello'], ['DOCUMENT_URI', '/hello'], ['DOCUMENT_ROOT', '/usr/share/nginx/html'],
    ['SERVER_PROTOCOL', 'HTTP/1.1'], ['REQUEST_SCHEME', 'http'], ['GATEWAY_INTERFACE', 'CGI/1.1'], ['SERVER_SOFTWARE', 'nginx/1.22.1'],
    ['REMOTE_ADDR', '127.0.0.1'], ['REMOTE_PORT', '51234'], ['SERVER_ADDR', '127.0.0.1'], ['SERVER_PORT', '80'],
    ['SERVER_NAME', 'localhost'], ['PATH_INFO', '/hello'], ['HTTP_HOST', 'localhost'], ['HTTP_USER_AGENT', 'wrk'], ['HTTP_ACCEPT', '*/*'],
  ];
  const req = Buffer.concat([encodeBeginRequest(1, 1, 1), encodeRecord(4, 1, encodeParams(params)), encodeRecord(4, 1), encodeRecord(5, 1)]);
  one = () => sock.push(req);
  check = () => {
    if (sock.written < 3 * N * 100) throw new Error(`only ${sock.written} bytes written`);
  };
} else {
  const gw = new Gateway({ app: await appFor(name), log, protocol: 'fastcgi' });
  const sink = { start: (_s, _h, c) => void (bodyBytes += c?.length ?? 0), write: (c) => void (bodyBytes += c.length), end() {}, abort: (e) => console.error('abort', e) };
  one = () => {
    // What nginx's fastcgi_params send for GET /hello.
    const vars = {
      REQUEST_METHOD: 'GET', SCRIPT_NAME: '', PATH_INFO: '/hello', QUERY_STRING: '', REQUEST_URI: '/hello',
      SERVER_NAME: 'localhost', SERVER_PORT: '80', SERVER_PROTOCOL: 'HTTP/1.1', REMOTE_ADDR: '127.0.0.1',
      CONTENT_LENGTH: '', CONTENT_TYPE: '', HTTP_HOST: 'localhost', HTTP_USER_AGENT: 'wrk', HTTP_ACCEPT: '*/*',
    };
    void gw.handle(vars, gw.bodyQueue(0, () => {}), sink, new RequestAbort());
  };
  check = () => {
    if (bodyBytes !== 3 * N * 13) throw new Error(`expected ${3 * N * 13} body bytes, got ${bodyBytes}`);
  };
}

for (let round = 0; round < 3; round++) {
  const t = performance.now();
  const cpu = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    one();
    await new Promise(setImmediate);
  }
  const c = process.cpuUsage(cpu);
  console.log(`${name}: ${(((performance.now() - t) * 1000) / N).toFixed(1)} us/request, CPU ${((c.user + c.system) / N).toFixed(1)} us/request`);
}
check();
