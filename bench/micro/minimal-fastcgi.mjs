// The floor for a Node FastCGI responder: parses only record headers, answers every request with
// a fixed "Hello, world!" and closes the connection unless FCGI_KEEP_CONN was set. Not a server
// to use: a yardstick for what Node's sockets cost per request, measured in place of tsgi behind
// the same nginx (`node bench/micro/minimal-fastcgi.mjs /path/to.sock`).
import net from 'node:net';

const BODY = 'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!';

function answer(id) {
  const c = Buffer.from(BODY, 'latin1');
  const pad = -c.length & 7;
  const out = Buffer.alloc(8 + c.length + pad + 16);
  out.set([1, 6, id >> 8, id & 255, c.length >> 8, c.length & 255, pad, 0], 0);
  c.copy(out, 8);
  const at = 8 + c.length + pad;
  out.set([1, 6, id >> 8, id & 255, 0, 0, 0, 0], at); // empty STDOUT
  out.set([1, 3, id >> 8, id & 255, 0, 8, 0, 0], at + 8); // END_REQUEST, body all zeros
  return out;
}

net
  .createServer((socket) => {
    let buf = Buffer.alloc(0);
    let keep = false;
    socket.on('data', (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      while (buf.length >= 8) {
        const length = buf.readUInt16BE(4) + buf[6];
        if (buf.length < 8 + length) break;
        const type = buf[1];
        const id = buf.readUInt16BE(2);
        if (type === 1) keep = (buf[10] & 1) === 1; // BEGIN_REQUEST flags
        if (type === 5 && buf.readUInt16BE(4) === 0) {
          socket.write(answer(id));
          if (!keep) socket.destroySoon();
        }
        buf = buf.subarray(8 + length);
      }
    });
    socket.on('error', () => {});
  })
  .listen(process.argv[2]);
process.on('SIGINT', () => process.exit(0));
