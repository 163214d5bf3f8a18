// In-process cost of one FastCGI request (no kernel, no nginx): the figure that says where the
// per-request CPU goes. Run: npx vitest bench --run bench/micro
import { bench, describe } from 'vitest';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { Gateway } from '../../src/runner/gateway.js';
import { createFastcgiServer } from '../../src/protocols/fastcgi/server.js';
import { encodeBeginRequest, encodeParams, encodeRecord, RecordDecoder } from '../../src/protocols/fastcgi/codec.js';
import { FCGI_KEEP_CONN, RecordType, Role } from '../../src/protocols/fastcgi/constants.js';
import { FakeSocket } from './fake-socket.js';

const log = pino({ level: 'warn' }, new Writable({ write: (_c, _e, cb) => cb() }));
const hello = (_env: unknown, sr: (s: string, h: Array<[string, string]>) => unknown) => {
  sr('200 OK', [['Content-Type', 'text/plain'], ['Content-Length', '13']]);
  return ['Hello, world!'];
};

// What nginx sends for GET /hello with the stock fastcgi_params.
const params: Array<[string, string]> = [
  ['QUERY_STRING', ''], ['REQUEST_METHOD', 'GET'], ['CONTENT_TYPE', ''], ['CONTENT_LENGTH', ''],
  ['SCRIPT_NAME', ''], ['REQUEST_URI', '/hello'], ['DOCUMENT_URI', '/hello'], ['DOCUMENT_ROOT', '/usr/share/nginx/html'],
  ['SERVER_PROTOCOL', 'HTTP/1.1'], ['REQUEST_SCHEME', 'http'], ['GATEWAY_INTERFACE', 'CGI/1.1'], ['SERVER_SOFTWARE', 'nginx/1.22.1'],
  ['REMOTE_ADDR', '127.0.0.1'], ['REMOTE_PORT', '51234'], ['SERVER_ADDR', '127.0.0.1'], ['SERVER_PORT', '18080'],
  ['SERVER_NAME', ''], ['REDIRECT_STATUS', '200'], ['PATH_INFO', '/hello'], ['HTTP_HOST', '127.0.0.1:18080'],
];
function request(id: number, keep: boolean): Buffer {
  return Buffer.concat([
    encodeBeginRequest(id, Role.Responder, keep ? FCGI_KEEP_CONN : 0),
    encodeRecord(RecordType.Params, id, encodeParams(params)),
    encodeRecord(RecordType.Params, id),
    encodeRecord(RecordType.Stdin, id),
  ]);
}

describe('fastcgi request, in process', () => {
  const gw = new Gateway({ app: hello as never, log, protocol: 'fastcgi' });
  const ps = createFastcgiServer(gw);
  const sock = new FakeSocket();
  ps.server.emit('connection', sock);
  const keepReq = request(1, true);
  bench('GET /hello on a kept connection', () => {
    sock.feed(keepReq);
  });
  bench('GET /hello on a new connection each time', () => {
    const s = new FakeSocket();
    ps.server.emit('connection', s);
    s.feed(request(1, false));
  });
  const dec = new RecordDecoder();
  bench('decode the request records only', () => {
    dec.push(keepReq, () => {});
  });
});
