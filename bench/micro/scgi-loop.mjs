// In-process cost of one SCGI connection and its request, JS only: a fresh in-memory socket per
// request handed to the server as a connection, nginx's scgi_params for GET /hello pushed into it,
// the answer counted. `npm run build` first; then
//   node bench/micro/scgi-loop.mjs tsgi|minimal [N]
// minimal: minimal-scgi.mjs's handler (finds the head's and the body's ends, writes a fixed
// answer, closes): the floor, what any Node SCGI responder pays for the socket object itself.
import net from 'node:net';
import { Duplex, Writable } from 'node:stream';
import { pino } from 'pino';
import { minimalScgi } from './minimal-scgi.mjs';

const D = new URL('../../dist/', import.meta.url).href;
const { Gateway } = await import(D + 'runner/gateway.js');
const { createScgiServer } = await import(D + 'protocols/scgi/server.js');

class MemorySocket extends Duplex {
  written = 0;
  remoteAddress = '127.0.0.1';
  _read() {}
  _write(c, _e, cb) {
    this.written += c.length;
    cb();
  }
  setTimeout() {
    return this;
  }
  setNoDelay() {
    return this;
  }
  resetAndDestroy() {
    this.destroy();
  }
  destroySoon() {
    this.end();
    this.destroy();
  }
}

const vars = [
  ['CONTENT_LENGTH', '0'], ['SCGI', '1'], ['QUERY_STRING', ''], ['REQUEST_METHOD', 'GET'], ['CONTENT_TYPE', ''],
  ['REQUEST_URI', '/hello'], ['DOCUMENT_URI', '/hello'], ['DOCUMENT_ROOT', '/usr/share/nginx/html'],
  ['SERVER_PROTOCOL', 'HTTP/1.1'], ['REQUEST_SCHEME', 'http'], ['REMOTE_ADDR', '127.0.0.1'], ['REMOTE_PORT', '51234'],
  ['SERVER_PORT', '18080'], ['SERVER_NAME', ''], ['HTTP_HOST', '127.0.0.1:18080'], ['HTTP_USER_AGENT', 'wrk'],
];
const head = Buffer.from(vars.map(([k, v]) => `${k}\0${v}\0`).join(''), 'latin1');
const req = Buffer.concat([Buffer.from(`${head.length}:`), head, Buffer.from(',')]);

const mode = process.argv[2] ?? 'tsgi';
const N = Number(process.argv[3] ?? 200000);
const log = pino({ level: 'warn' }, new Writable({ write: (_c, _e, cb) => cb() }));
const hello = (_env, sr) => {
  sr('200 OK', [['Content-Type', 'text/plain'], ['Content-Length', '13']]);
  return ['Hello, world!'];
};
const server = mode === 'minimal' ? net.createServer(minimalScgi) : createScgiServer(new Gateway({ app: hello, log, protocol: 'scgi' })).server;
let written = 0;
for (let round = 0; round < 3; round++) {
  const t = performance.now();
  const cpu = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    const s = new MemorySocket();
    server.emit('connection', s);
    s.emit('data', req);
    s.once('close', () => (written += s.written));
    if (i % 32 === 31) await new Promise(setImmediate);
  }
  await new Promise(setImmediate);
  const c = process.cpuUsage(cpu);
  console.log(`${mode}: ${(((performance.now() - t) * 1000) / N).toFixed(2)} us/request, CPU ${((c.user + c.system) / N).toFixed(2)} us/request`);
}
await new Promise((r) => setTimeout(r, 50));
if (written < 3 * N * 77) throw new Error(`only ${written} bytes written for ${3 * N} requests`);
