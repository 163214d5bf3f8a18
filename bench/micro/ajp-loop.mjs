// In-process cost of tsgi's AJP13 path: a stand-in for httpd's mod_proxy_ajp on one kept
// connection (a Duplex, no kernel), feeding FORWARD_REQUEST packets laid out as httpd 2.4 sends
// them for wrk's requests, and answering each GET_BODY_CHUNK with the next body packet.
//
//   npm run build && node bench/micro/ajp-loop.mjs [hello|big|upload] [N] [PACKET_SIZE]
//   node --cpu-prof --cpu-prof-dir=DIR bench/micro/ajp-loop.mjs hello 300000
//
// Apps: bench/apps/SCENARIO.mjs, the ones the end-to-end harness serves. Prints, per round of N
// requests (ROUNDS=3 rounds), µs per request (wall clock, and CPU time: the one to trust on a
// shared machine), and per request: the socket writes (each a write(2)/writev(2) on a
// real socket), the bytes written and the GET_BODY_CHUNK round trips. Node's own Writable
// (cork/uncork, writev) is kept: only _write/_writev are replaced.
import { pino } from 'pino';
import { Writable, Duplex } from 'node:stream';

const D = new URL('../../dist/', import.meta.url).href;
const A = new URL('../apps/', import.meta.url).href;
const { Gateway } = await import(D + 'runner/gateway.js');
const { createAjpServer } = await import(D + 'protocols/ajp/server.js');
const { encodeForwardRequest, encodeBodyPacket } = await import(D + 'protocols/ajp/codec.js');

const scenario = process.argv[2] ?? 'hello';
const N = +(process.argv[3] ?? (scenario === 'hello' ? 200000 : 2000));
const packetSize = +(process.argv[4] ?? 8192);
const app = (await import(`${A}${scenario}.mjs`)).default;
const BODY = 1048576;

// What httpd 2.4.71 mod_proxy_ajp sends for wrk's GET (Host only) and the upload's POST.
const headers = [['host', '127.0.0.1:18101']];
if (scenario === 'upload') headers.push(['content-type', 'application/octet-stream'], ['content-length', String(BODY)]);
const forward = Buffer.from(encodeForwardRequest({
  method: scenario === 'upload' ? 'POST' : 'GET',
  requestUri: `/${scenario}`,
  serverName: '127.0.0.1',
  serverPort: 18101,
  headers,
  requestAttributes: [['AJP_REMOTE_PORT', '51234'], ['AJP_LOCAL_ADDR', '127.0.0.1']],
}));
// httpd sends body packets of up to packetSize - 6 data bytes, the first one unasked.
const bodyPackets = [];
if (scenario === 'upload') {
  const data = Buffer.alloc(BODY, 0x78);
  for (let at = 0; at < BODY; at += packetSize - 6) bodyPackets.push(Buffer.from(encodeBodyPacket(data.subarray(at, at + packetSize - 6))));
}

/** httpd's side of one connection: counts what tsgi writes, answers GET_BODY_CHUNK, sees END_RESPONSE. */
class FakeHttpd extends Duplex {
  remoteAddress = '127.0.0.1';
  writes = 0;
  written = 0;
  asks = 0;
  nextBody = 0;
  onEnd = null;
  // A scanner of the container packets written, across pieces: header bytes and the prefix code
  // are read one by one, the rest of each packet skipped.
  head = Buffer.alloc(5);
  headFill = 0;
  skip = 0;
  _read() {}
  _write(c, _e, cb) { this.seen(c); this.writes++; cb(); }
  _writev(chunks, cb) { for (const c of chunks) this.seen(c.chunk); this.writes++; cb(); }
  seen(c) {
    this.written += c.length;
    let at = 0;
    while (at < c.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, c.length - at);
        this.skip -= n;
        at += n;
        continue;
      }
      this.head[this.headFill++] = c[at++];
      if (this.headFill < 5) continue;
      this.headFill = 0;
      this.skip = ((this.head[2] << 8) | this.head[3]) - 1;
      const type = this.head[4];
      // GET_BODY_CHUNK: answered with the next body packet; END_RESPONSE: the request is over.
      if (type === 6) { this.asks++; queueMicrotask(() => this.emit('data', bodyPackets[this.nextBody++])); }
      else if (type === 5) queueMicrotask(this.onEnd);
    }
  }
  setTimeout() { return this; }
  setNoDelay() { return this; }
  setKeepAlive() { return this; }
}

const log = pino({ level: 'warn' }, new Writable({ write: (_c, _e, cb) => cb() }));
const gw = new Gateway({ app, log, protocol: 'ajp' });
const ps = createAjpServer(gw, { packetSize });
const sock = new FakeHttpd();
ps.server.emit('connection', sock);

// httpd writes FORWARD_REQUEST and the first body packet back to back: one read here.
const first = bodyPackets.length ? Buffer.concat([forward, bodyPackets[0]]) : forward;
function one() {
  return new Promise((resolve) => {
    sock.onEnd = resolve;
    sock.nextBody = bodyPackets.length ? 1 : 0;
    sock.emit('data', first);
  });
}

const ROUNDS = +(process.env.ROUNDS ?? 3);
for (let round = 0; round < ROUNDS; round++) {
  const w0 = sock.writes, b0 = sock.written, a0 = sock.asks;
  const t = performance.now();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    await one();
    if (i % 100 === 0) await new Promise(setImmediate); // let timers and immediates (FLUSH) run
  }
  await new Promise(setImmediate);
  const us = ((performance.now() - t) * 1000) / N;
  const cpu = process.cpuUsage(cpu0);
  console.log(`${scenario} packet ${packetSize}: ${us.toFixed(2)} us/request (CPU ${((cpu.user + cpu.system) / N).toFixed(2)}), ${((sock.writes - w0) / N).toFixed(2)} writes, ${((sock.written - b0) / N).toFixed(0)} bytes, ${((sock.asks - a0) / N).toFixed(1)} GET_BODY_CHUNK per request`);
}
