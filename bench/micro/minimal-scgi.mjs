// The floor for a Node SCGI responder: finds the end of the netstring head and of the body it
// declares (CONTENT_LENGTH is the head's first header), answers every request with a fixed
// "Hello, world!" and closes. Not a server to use: a yardstick for what Node's sockets cost per
// request, measured in place of tsgi behind the same nginx (`node bench/micro/minimal-scgi.mjs
// /path/to.sock`). See minimal-fastcgi.mjs for FastCGI.
import net from 'node:net';

const ANSWER = Buffer.from('Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!', 'latin1');

/** The whole responder, one connection's worth: also what scgi-loop.mjs measures in process. */
export function minimalScgi(socket) {
  let buf = Buffer.alloc(0);
  socket.on('data', (d) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    const colon = buf.indexOf(0x3a);
    if (colon < 0) return;
    const headLength = Number(buf.latin1Slice(0, colon));
    if (buf.length < colon + 1 + headLength + 1) return;
    // "CONTENT_LENGTH\0<n>\0" first
    const start = colon + 1 + 15;
    const end = buf.indexOf(0, start);
    const bodyLength = Number(buf.latin1Slice(start, end));
    if (buf.length < colon + 2 + headLength + bodyLength) return;
    socket.write(ANSWER);
    socket.destroySoon();
  });
  socket.on('error', () => {});
}

if (import.meta.url === `file://${process.argv[1]}`) {
  net.createServer(minimalScgi).listen(process.argv[2]);
  process.on('SIGINT', () => process.exit(0));
}
