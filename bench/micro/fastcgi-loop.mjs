import { pino } from 'pino';
import { Writable, Duplex } from 'node:stream';
const D = new URL('../../dist/', import.meta.url).href;
const { Gateway } = await import(D + 'runner/gateway.js');
const { createFastcgiServer } = await import(D + 'protocols/fastcgi/server.js');
const { encodeBeginRequest, encodeParams, encodeRecord } = await import(D + 'protocols/fastcgi/codec.js');
class FakeSocket extends Duplex { written = 0; remoteAddress = '127.0.0.1'; _read() {} _write(c, e, cb) { this.written += c.length; cb(); } setTimeout() { return this; } setNoDelay() { return this; } cork() {} uncork() {} feed(b) { this.emit('data', b); } }
const log = pino({ level: 'warn' }, new Writable({ write: (_c, _e, cb) => cb() }));
const hello = (_env, sr) => { sr('200 OK', [['Content-Type', 'text/plain'], ['Content-Length', '13']]); return ['Hello, world!']; };
const params = [
  ['QUERY_STRING', ''], ['REQUEST_METHOD', 'GET'], ['CONTENT_TYPE', ''], ['CONTENT_LENGTH', ''],
  ['SCRIPT_NAME', ''], ['REQUEST_URI', '/hello'], ['DOCUMENT_URI', '/hello'], ['DOCUMENT_ROOT', '/usr/share/nginx/html'],
  ['SERVER_PROTOCOL', 'HTTP/1.1'], ['REQUEST_SCHEME', 'http'], ['GATEWAY_INTERFACE', 'CGI/1.1'], ['SERVER_SOFTWARE', 'nginx/1.22.1'],
  ['REMOTE_ADDR', '127.0.0.1'], ['REMOTE_PORT', '51234'], ['SERVER_ADDR', '127.0.0.1'], ['SERVER_PORT', '18080'],
  ['SERVER_NAME', ''], ['REDIRECT_STATUS', '200'], ['PATH_INFO', '/hello'], ['HTTP_HOST', '127.0.0.1:18080'],
];
const keep = process.argv[3] !== 'new';
const req = Buffer.concat([encodeBeginRequest(1, 1, keep ? 1 : 0), encodeRecord(4, 1, encodeParams(params)), encodeRecord(4, 1), encodeRecord(5, 1)]);
const gw = new Gateway({ app: hello, log, protocol: 'fastcgi' });
const ps = createFastcgiServer(gw);
const sock = new FakeSocket();
ps.server.emit('connection', sock);
const N = +(process.argv[2] ?? 300000);
for (let round = 0; round < 3; round++) {
  const t = performance.now();
  for (let i = 0; i < N; i++) {
    if (keep) sock.feed(req); else { const s = new FakeSocket(); ps.server.emit('connection', s); s.feed(req); }
    if (i % 100 === 0) await new Promise(setImmediate);
  }
  await new Promise(setImmediate);
  console.log(`${((performance.now() - t) * 1000 / N).toFixed(2)} us/request`);
}
if (process.env.HEAP) { global.gc?.(); console.log('heapUsed MiB', (process.memoryUsage().heapUsed / 1048576).toFixed(1)); }
