// The FastCGI server on the wire, from the web server's side: requests go in as records over a
// loopback (or Unix) socket, and the records that come back are checked per request id (spec
// sections 3-6; Go net/http/fcgi child_test.go). Apps are written inline, one behaviour each.

import { Buffer } from 'node:buffer';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { listen } from '../../../src/net/listen.js';
import type { ProtocolServer } from '../../../src/net/protocols.js';
import { decodeUnknownType, encodeAbortRequest, encodeBeginRequest, encodeParams, encodeRecord, RecordDecoder } from '../../../src/protocols/fastcgi/codec.js';
import {
  FCGI_KEEP_CONN,
  FCGI_MAX_CONNS,
  FCGI_MPXS_CONNS,
  ProtocolStatus,
  RecordType,
  Role,
} from '../../../src/protocols/fastcgi/constants.js';
import { createFastcgiServer, type FastcgiOptions } from '../../../src/protocols/fastcgi/server.js';
import { Gateway, type Limits } from '../../../src/runner/gateway.js';
import type { App, Body, Chunk, Environ, InputStream } from '../../../src/types.js';
import {
  type ClientOptions,
  type Collected,
  FcgiClient,
  type Target,
  encodeRequest,
  interleave,
  paddedRecord,
  requestRecords,
  sleep,
  within,
} from '../../helpers/fcgi-client.js';
import { LogLevel, type LogLine, memoryLogger } from '../../helpers/logger.js';

// ---- fixture: one server per test, everything torn down after it ----------------------------

const cleanups: Array<() => unknown> = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

beforeAll(() => {
  // The server falls back to the environment's list; these tests set it explicitly or not at all.
  delete process.env.FCGI_WEB_SERVER_ADDRS;
});

interface Served {
  gw: Gateway;
  ps: ProtocolServer;
  target: Target;
  lines(): LogLine[];
  connect(opts?: ClientOptions): Promise<FcgiClient>;
}

interface ServeOptions {
  limits?: Partial<Limits>;
  fcgi?: FastcgiOptions;
  host?: string;
  /** Listen on this Unix socket path through src/net/listen.ts instead of TCP. */
  unix?: { path: string; socketMode?: number };
}

async function serve(app: App, o: ServeOptions = {}): Promise<Served> {
  const { log, lines } = memoryLogger();
  const gw = new Gateway({ app, log, protocol: 'fastcgi', limits: o.limits });
  const ps = createFastcgiServer(gw, o.fcgi ?? {});
  const sockets = new Set<net.Socket>();
  ps.server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  let target: Target;
  if (o.unix) {
    await listen(ps.server, { kind: 'unix', path: o.unix.path }, { socketMode: o.unix.socketMode });
    target = { path: o.unix.path };
  } else {
    const host = o.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      ps.server.once('error', reject);
      ps.server.listen({ host, port: 0 }, resolve);
    });
    target = { host, port: (ps.server.address() as net.AddressInfo).port };
  }
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await within(new Promise<void>((r) => ps.server.close(() => r())), 5000, 'server close').catch(() => {});
  });
  return {
    gw,
    ps,
    target,
    lines,
    async connect(opts) {
      const c = await FcgiClient.connect(target, opts);
      cleanups.push(() => c.destroy());
      return c;
    },
  };
}

// ---- apps and small tools ------------------------------------------------------------------

/** Every string in the environ and the body it read, as JSON. */
const echoApp: App = async (environ, startResponse) => {
  const body = await environ['wsgi.input'].read();
  startResponse('200 OK', [['Content-Type', 'application/json']]);
  return [JSON.stringify({ vars: stringVars(environ), body: Buffer.from(body).toString('latin1') })];
};

function stringVars(environ: Environ): Record<string, string> {
  const vars: Record<string, string> = {};
  // tsgi.request_id differs from one request to the next (a counter): not part of what is compared.
  for (const [k, v] of Object.entries(environ)) if (typeof v === 'string' && k !== 'tsgi.request_id') vars[k] = v;
  return vars;
}

function echoed(c: Collected): { vars: Record<string, string>; body: string } {
  const r = c.response();
  expect(r.status).toBe(200);
  return JSON.parse(r.body.toString('utf8')) as { vars: Record<string, string>; body: string };
}

/** A promise the test opens. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

/** `body` with a close() that counts its calls. */
function withClose(body: Iterable<Chunk> | AsyncIterable<Chunk>, onClose: () => void): Body {
  return Object.assign(body, { close: onClose });
}

/** Polls `pred` every few ms; rejects after `ms`. For state outside the wire (close(), signals). */
async function until(pred: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timeout: ${what} (after ${ms} ms)`);
    await sleep(5);
  }
}

const GET = { REQUEST_METHOD: 'GET', SCRIPT_NAME: '', PATH_INFO: '/', SERVER_NAME: 'example.test', SERVER_PORT: '80', SERVER_PROTOCOL: 'HTTP/1.1' };
const get = (pathInfo: string, extra: Record<string, string> = {}) => ({ ...GET, PATH_INFO: pathInfo, ...extra });

/** The records for `id` end with exactly one empty STDOUT and then exactly one END_REQUEST. */
function expectCompleted(c: Collected): void {
  expect(c.ends).toEqual([{ appStatus: 0, protocolStatus: ProtocolStatus.RequestComplete }]);
  expect(c.events.slice(-2)).toEqual(['out:0', 'end']);
  expect(c.events.filter((e) => e === 'out:0')).toHaveLength(1);
}

const codes = (lines: LogLine[]): Array<string | undefined> => lines.map((l) => l.code);

// ---- responder ------------------------------------------------------------------------------

describe('responder', () => {
  it('passes params to the environ, the CONTENT_LENGTH body through STDIN, and answers in padded records', async () => {
    const srv = await serve(echoApp);
    const c = await srv.connect({ raw: true });
    const params = {
      REQUEST_METHOD: 'POST',
      SCRIPT_NAME: '/app',
      PATH_INFO: '/caf\u00c3\u00a9',
      QUERY_STRING: 'a=1&b=%20',
      CONTENT_TYPE: 'text/plain',
      CONTENT_LENGTH: '11',
      SERVER_NAME: 'example.test',
      SERVER_PORT: '8080',
      SERVER_PROTOCOL: 'HTTP/1.1',
      REMOTE_ADDR: '192.0.2.7',
      HTTP_X_LATIN: 'd\u00e9j\u00e0 \u00ff\u0080\u0001',
      HTTP_COOKIE: 'k='.padEnd(300, 'v'), // 4-byte value length
    };
    await c.request(1, { params, stdin: ['hello', ' world'] });
    await c.waitClosed();
    const r = c.req(1);
    expectCompleted(r);
    const { vars, body } = echoed(r);
    expect(vars).toMatchObject(params);
    expect(vars.FCGI_ROLE).toBe('RESPONDER');
    expect(vars['tsgi.protocol']).toBe('fastcgi');
    expect(vars['wsgi.url_scheme']).toBe('http');
    expect(body).toBe('hello world');
    const head = r.response();
    expect(head.header('Content-Type')).toEqual(['application/json']);
    expect(head.header('Content-Length')).toEqual([String(head.body.length)]);
    // Every record on the wire is padded to a multiple of 8 and belongs to request 1.
    const wire = c.wireHeaders();
    expect(wire.length).toBeGreaterThanOrEqual(3);
    for (const h of wire) {
      expect(h.version).toBe(1);
      expect(h.requestId).toBe(1);
      expect((h.contentLength + h.paddingLength) % 8).toBe(0);
    }
    expect(c.ids()).toEqual([1]);
  });

  it('reads a body without CONTENT_LENGTH up to the empty STDIN record', async () => {
    const srv = await serve(echoApp);
    const c = await srv.connect();
    await c.request(1, { params: get('/', { REQUEST_METHOD: 'PUT' }), stdin: ['one,', 'two,', 'three'], endStdin: false });
    await c.ping();
    await sleep(50);
    expect(c.req(1).events).toEqual([]); // still waiting for the end of the body
    await c.send(encodeRecord(RecordType.Stdin, 1));
    await c.waitClosed();
    expectCompleted(c.req(1));
    const { vars, body } = echoed(c.req(1));
    expect(body).toBe('one,two,three');
    expect(vars.CONTENT_LENGTH).toBeUndefined();
  });

  it('sends the head and body in STDOUT, then one empty STDOUT and one END_REQUEST', async () => {
    const srv = await serve((_env, startResponse) => {
      startResponse('201 Created', [['Content-Type', 'text/plain'], ['X-Thing', 'a b'], ['Set-Cookie', 'a=1'], ['Set-Cookie', 'b=2']]);
      return ['first ', '', 'second'];
    });
    const c = await srv.connect();
    await c.request(1, { params: get('/') });
    await c.waitClosed();
    const r = c.req(1);
    expectCompleted(r);
    const res = r.response();
    expect(res.status).toBe(201);
    expect(res.reason).toBe('Created');
    expect(res.headers.filter(([n]) => n !== 'Content-Length')).toEqual([
      ['Content-Type', 'text/plain'],
      ['X-Thing', 'a b'],
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2'],
    ]);
    expect(res.body.toString()).toBe('first second');
  });

  it('gives the same response when the request arrives byte by byte', async () => {
    const srv = await serve(echoApp);
    const spec = {
      params: get('/split', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '26', HTTP_X_LONG: 'x'.repeat(200) }),
      paramsRecordSize: 7, // pairs straddle PARAMS records
      stdin: ['abcdefghij', 'klmnopqrstuvwxyz'],
    };
    const whole = await srv.connect();
    await whole.request(1, spec);
    await whole.waitClosed();
    const split = await srv.connect();
    const bytes = encodeRequest(1, spec);
    // Each read of the connection is one push into its record decoder.
    const reads = vi.spyOn(RecordDecoder.prototype, 'push');
    await split.request(1, spec, 1);
    await split.waitClosed();
    expect(reads.mock.calls.length).toBeGreaterThan(bytes.length / 4); // really arrived in pieces
    reads.mockRestore();
    expectCompleted(split.req(1));
    expect(split.req(1).stdout.equals(whole.req(1).stdout)).toBe(true);
    expect(echoed(split.req(1)).body).toBe('abcdefghijklmnopqrstuvwxyz');
    // And in odd splits, with the records of the request cut anywhere.
    const odd = await srv.connect();
    await odd.request(1, spec, [3, 11, 1, 64, 9]);
    await odd.waitClosed();
    expect(odd.req(1).stdout.equals(whole.req(1).stdout)).toBe(true);
  });

  it('splits a 1 MiB response into STDOUT records of at most 65535 bytes, body intact', async () => {
    const big = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >>> 12)) & 0xff;
    const srv = await serve((_env, startResponse) => {
      startResponse('200 OK', [['Content-Type', 'application/octet-stream']]);
      return [big];
    });
    const c = await srv.connect({ raw: true });
    await c.request(1, { params: get('/big') });
    await c.waitClosed();
    const r = c.req(1);
    expectCompleted(r);
    expect(Math.max(...r.stdoutRecords)).toBeLessThanOrEqual(65535);
    expect(r.stdoutRecords.filter((n) => n > 0).length).toBeGreaterThanOrEqual(Math.ceil(big.length / 65535));
    const res = r.response();
    expect(res.header('Content-Length')).toEqual([String(big.length)]);
    expect(res.body.equals(big)).toBe(true);
    for (const h of c.wireHeaders()) expect((h.contentLength + h.paddingLength) % 8).toBe(0);
  });
});

// ---- connections ----------------------------------------------------------------------------

describe('FCGI_KEEP_CONN', () => {
  it('without it, the server closes the connection after END_REQUEST', async () => {
    const srv = await serve(echoApp);
    const c = await srv.connect();
    await c.request(1, { params: get('/') });
    await c.waitClosed();
    expectCompleted(c.req(1));
    expect(c.closeError).toBeUndefined();
  });

  it('without it, a request sent in one write is closed at once, not after the peer half-closes', async () => {
    // nginx's default: BEGIN, PARAMS and the empty STDIN of a GET come in one write. The app
    // must start only once all of it is decoded, so that the connection can be closed (close(2),
    // no shutdown and wait for the peer's FIN) the moment the response is out.
    let inputDone = false;
    const srv = await serve((environ, startResponse) => {
      inputDone = (environ['wsgi.input'] as unknown as { complete: boolean }).complete;
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return ['hi'];
    });
    const seen: string[] = [];
    srv.ps.server.once('connection', (s: net.Socket) => {
      s.once('end', () => seen.push('end'));
      s.once('close', () => seen.push('close'));
    });
    const c = await srv.connect();
    await c.send(encodeRequest(1, { params: get('/') }));
    await c.waitClosed();
    expectCompleted(c.req(1));
    expect(inputDone).toBe(true);
    // The server closed first: it did not wait for the FIN our side answers its own with.
    await until(() => seen.includes('close'), 'server socket closed');
    expect(seen).toEqual(['close']);
  });

  it('with it, two requests in sequence on one connection', async () => {
    const srv = await serve(echoApp);
    const c = await srv.connect();
    await c.request(1, { keepConn: true, params: get('/first') });
    await c.waitEnd(1);
    await sleep(50);
    expect(c.closed).toBe(false);
    await c.request(2, { keepConn: true, params: get('/second', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '3' }), stdin: 'abc' });
    await c.waitEnd(2);
    expectCompleted(c.req(1));
    expectCompleted(c.req(2));
    expect(echoed(c.req(1)).vars.PATH_INFO).toBe('/first');
    expect(echoed(c.req(2))).toMatchObject({ vars: { PATH_INFO: '/second' }, body: 'abc' });
    // The id may be used again once its request is over.
    await c.request(1, { params: get('/third') });
    await c.waitClosed();
    expect(c.req(1).ends).toHaveLength(2);
    expect(c.req(1).stdout.toString()).toContain('/third');
  });
});

describe('multiplexing', () => {
  it('answers interleaved requests on one connection, each with its own body', async () => {
    const srv = await serve(echoApp);
    const c = await srv.connect();
    const lists = [1, 2, 3].map((id) =>
      requestRecords(id, {
        keepConn: true,
        params: get(`/r${id}`, { REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(id * 1000) }),
        paramsRecordSize: 5 + id,
        stdin: Array.from({ length: 4 }, () => String(id).repeat(id * 250)),
      }),
    );
    await c.send(interleave(...lists), [5, 13, 1, 64, 200]);
    for (const id of [1, 2, 3]) {
      const r = await c.waitEnd(id);
      expectCompleted(r);
      const { vars, body } = echoed(r);
      expect(vars.PATH_INFO).toBe(`/r${id}`);
      expect(body).toBe(String(id).repeat(id * 1000));
    }
    expect(c.closed).toBe(false);
  });

  it('a request whose app reads its body slowly does not stall another one', async () => {
    const slow = gate();
    const srv = await serve(async (environ, startResponse) => {
      if (environ.PATH_INFO === '/slow') await slow.promise;
      const body = await environ['wsgi.input'].read();
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return [`${environ.PATH_INFO} read ${body.length}`];
    });
    const c = await srv.connect();
    const size = 1024 * 1024; // 4x the body high-water mark
    const one = requestRecords(1, { keepConn: true, params: get('/slow', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(size) }), stdin: Buffer.alloc(size, 0x61) });
    const two = requestRecords(2, { keepConn: true, params: get('/fast') });
    // BEGIN 1, PARAMS 1, BEGIN 2, then all of request 1's body, then the rest of request 2.
    const params1End = one.findIndex((r) => r[1] === RecordType.Stdin);
    await c.send(Buffer.concat([...one.slice(0, params1End), two[0]!, ...one.slice(params1End), ...two.slice(1)]));
    const r2 = await c.waitEnd(2);
    expectCompleted(r2);
    expect(r2.response().body.toString()).toBe('/fast read 0');
    expect(c.req(1).events).toEqual([]);
    slow.open();
    const r1 = await c.waitEnd(1);
    expectCompleted(r1);
    expect(r1.response().body.toString()).toBe(`/slow read ${size}`);
  });

  it('answers FCGI_OVERLOADED past limits.maxRequestsPerConnection', async () => {
    const hold = gate();
    let calls = 0;
    const srv = await serve(
      async (environ, startResponse) => {
        calls++;
        if (environ.PATH_INFO === '/hold') await hold.promise;
        startResponse('200 OK', []);
        return [String(environ.PATH_INFO)];
      },
      { limits: { maxRequestsPerConnection: 2 } },
    );
    const c = await srv.connect();
    for (const id of [1, 2, 3]) await c.request(id, { keepConn: true, params: get('/hold') });
    const r3 = await c.waitEnd(3);
    expect(r3.ends).toEqual([{ appStatus: 0, protocolStatus: ProtocolStatus.Overloaded }]);
    expect(r3.events).toEqual(['end']);
    await c.ping();
    expect(calls).toBe(2);
    hold.open();
    expectCompleted(await c.waitEnd(1));
    expectCompleted(await c.waitEnd(2));
    // Slots free again: a new request is served.
    await c.request(4, { keepConn: true, params: get('/after') });
    const r4 = await c.waitEnd(4);
    expectCompleted(r4);
    expect(r4.response().body.toString()).toBe('/after');
    expect(c.req(3).ends).toHaveLength(1);
  });

  it('stays bounded under 1000 BEGIN_REQUESTs that never send params', async () => {
    const srv = await serve(echoApp); // maxRequestsPerConnection: 100 (default)
    const c = await srv.connect();
    const begins = Buffer.concat(Array.from({ length: 1000 }, (_, i) => encodeBeginRequest(i + 1, Role.Responder, FCGI_KEEP_CONN)));
    await c.send(begins);
    await c.waitFor(() => c.ids().length >= 900, '900 END_REQUESTs');
    await c.ping();
    const answered = c.ids();
    expect(answered).toEqual(Array.from({ length: 900 }, (_, i) => i + 101));
    for (const id of answered) expect(c.req(id).ends).toEqual([{ appStatus: 0, protocolStatus: ProtocolStatus.Overloaded }]);
    expect(srv.gw.active).toBe(0);
    // Still usable: a request aborted frees its slot, and a new request is served.
    await c.send(encodeAbortRequest(7));
    await c.waitEnd(7);
    await c.request(2000, { keepConn: true, params: get('/ok') });
    const r = await c.waitEnd(2000);
    expectCompleted(r);
    expect(echoed(r).vars.PATH_INFO).toBe('/ok');
    expect(c.closed).toBe(false);
  });
});

describe('roles', () => {
  it('answers an unknown role with FCGI_UNKNOWN_ROLE and serves the next request', async () => {
    let calls = 0;
    const srv = await serve((env, sr) => {
      calls++;
      return echoApp(env, sr);
    });
    const c = await srv.connect();
    await c.request(1, { role: 9, keepConn: true, params: get('/x'), stdin: 'ignored' });
    const r = await c.waitEnd(1);
    expect(r.ends).toEqual([{ appStatus: 0, protocolStatus: ProtocolStatus.UnknownRole }]);
    expect(r.events).toEqual(['end']);
    await c.request(2, { params: get('/y') });
    await c.waitClosed();
    expectCompleted(c.req(2));
    expect(calls).toBe(1);
    expect(c.req(1).ends).toHaveLength(1);
  });

  it('Authorizer: FCGI_ROLE=AUTHORIZER in the environ and no body', async () => {
    const srv = await serve(async (environ, startResponse) => {
      const body = await environ['wsgi.input'].read();
      startResponse('200 OK', [['Variable-AUTH_USER', 'bob']]);
      return [`${environ.FCGI_ROLE} ${body.length}`];
    });
    const c = await srv.connect();
    await c.request(1, { role: Role.Authorizer, params: get('/private', { CONTENT_LENGTH: '5' }), stdin: 'hello' });
    await c.waitClosed();
    expectCompleted(c.req(1));
    const res = c.req(1).response();
    expect(res.status).toBe(200);
    expect(res.header('Variable-AUTH_USER')).toEqual(['bob']);
    expect(res.body.toString()).toBe('AUTHORIZER 0');
  });

  it('Filter: the DATA stream is environ["tsgi.fcgi_data"], FCGI_DATA_LENGTH bounded or read to its end', async () => {
    const srv = await serve(async (environ, startResponse) => {
      const input = await environ['wsgi.input'].read();
      const data = await (environ['tsgi.fcgi_data'] as InputStream).read();
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return [`${environ.FCGI_ROLE} stdin=${Buffer.from(input).toString()} data=${Buffer.from(data).toString()} len=${String(environ.FCGI_DATA_LENGTH)}`];
    });
    const c = await srv.connect();
    await c.request(1, {
      role: Role.Filter,
      keepConn: true,
      params: get('/f.html', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '2', FCGI_DATA_LENGTH: '12', FCGI_DATA_LAST_MOD: '0' }),
      stdin: 'in',
      data: ['hello ', 'filter'],
    });
    const r1 = await c.waitEnd(1);
    expectCompleted(r1);
    expect(r1.response().body.toString()).toBe('FILTER stdin=in data=hello filter len=12');
    await c.request(2, { role: Role.Filter, params: get('/g.html'), data: ['no ', 'length'] }, [5, 3]);
    await c.waitClosed();
    expectCompleted(c.req(2));
    expect(c.req(2).response().body.toString()).toBe('FILTER stdin= data=no length len=undefined');
  });
});

// ---- management records ---------------------------------------------------------------------

describe('management records', () => {
  it('GET_VALUES: only the known names asked for, with real values', async () => {
    const srv = await serve(echoApp, { limits: { maxConnections: 77 } });
    const c = await srv.connect();
    const ask = encodeParams([[FCGI_MAX_CONNS, ''], [FCGI_MPXS_CONNS, ''], ['FCGI_NO_SUCH_THING', '']]);
    await c.send(encodeRecord(RecordType.GetValues, 0, ask), 3);
    await c.waitFor(() => c.management.length > 0, 'GET_VALUES_RESULT');
    const rec = c.management[0]!;
    expect(rec.type).toBe(RecordType.GetValuesResult);
    expect({ ...FcgiClient.values(rec) }).toEqual({ [FCGI_MAX_CONNS]: '77', [FCGI_MPXS_CONNS]: '1' });
    expect(c.closed).toBe(false);
  });

  it('an unknown management type: UNKNOWN_TYPE carrying the type', async () => {
    const srv = await serve(echoApp);
    const c = await srv.connect();
    await c.send(encodeRecord(200, 0, Buffer.from('whatever')));
    await c.waitFor(() => c.management.length > 0, 'UNKNOWN_TYPE');
    const rec = c.management[0]!;
    expect(rec.type).toBe(RecordType.UnknownType);
    expect(decodeUnknownType(rec.content)).toBe(200);
    // The connection goes on.
    await c.request(1, { params: get('/') });
    await c.waitClosed();
    expectCompleted(c.req(1));
  });

  it('ignores records for inactive request ids without losing sync', async () => {
    const srv = await serve(echoApp);
    const c = await srv.connect();
    // Content that looks like records, odd padding with junk in it, types for an id never begun.
    const lookalike = Buffer.concat([encodeBeginRequest(1, Role.Responder, 0), encodeRecord(RecordType.Params, 1)]);
    await c.send(
      Buffer.concat([
        paddedRecord(RecordType.Stdin, 9, lookalike, Buffer.alloc(13, 0x01)),
        paddedRecord(RecordType.Params, 9, encodeParams([['A', 'b']]), Buffer.alloc(255, 0xff)),
        paddedRecord(RecordType.Data, 9, 'x', new Uint8Array(0)),
        encodeAbortRequest(9),
        encodeRecord(RecordType.Stdin, 9),
        paddedRecord(RecordType.Stdout, 10, 'not for you', Buffer.alloc(5)),
        encodeRequest(1, { params: get('/in-sync') }),
      ]),
      [7, 1, 33],
    );
    await c.waitClosed();
    expect(c.ids()).toEqual([1]);
    expectCompleted(c.req(1));
    expect(echoed(c.req(1)).vars.PATH_INFO).toBe('/in-sync');
  });
});

// ---- aborts and hang-ups --------------------------------------------------------------------

/** An app streaming `chunk N` lines until stopped; PATH_INFO /hold waits for `hold` instead. */
function streamingApp(state: { signals: AbortSignal[]; closes: number; produced: number }, hold?: Promise<void>): App {
  return (environ, startResponse) => {
    if (environ.PATH_INFO === '/hold') {
      return (async function* () {
        await hold;
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        yield 'held';
      })();
    }
    state.signals.push(environ['tsgi.signal']);
    startResponse('200 OK', [['Content-Type', 'text/plain']]);
    const gen = (async function* () {
      for (let i = 0; ; i++) {
        state.produced++;
        yield `chunk ${i}\n`;
        await sleep(5);
      }
    })();
    return withClose(gen, () => void state.closes++);
  };
}

describe('ABORT_REQUEST', () => {
  it('mid-response: one END_REQUEST for that id, signal aborted, close() called, others unaffected', async () => {
    const state = { signals: [] as AbortSignal[], closes: 0, produced: 0 };
    const hold = gate();
    const srv = await serve(streamingApp(state, hold.promise));
    const c = await srv.connect();
    await c.request(1, { keepConn: true, params: get('/stream') });
    await c.request(2, { keepConn: true, params: get('/hold') });
    await c.waitFor(() => c.req(1).stdoutBytes > 30, 'some STDOUT for request 1');
    await c.send(encodeAbortRequest(1));
    const r1 = await c.waitEnd(1);
    await until(() => state.closes === 1, 'close() after the abort');
    expect(state.signals[0]!.aborted).toBe(true);
    await c.ping();
    await sleep(30);
    expect(r1.ends).toHaveLength(1);
    expect(r1.events.at(-1)).toBe('end'); // nothing after END_REQUEST
    expect(state.closes).toBe(1);
    // A second ABORT for the finished id changes nothing.
    await c.send(encodeAbortRequest(1));
    await c.ping();
    expect(r1.ends).toHaveLength(1);
    hold.open();
    const r2 = await c.waitEnd(2);
    expectCompleted(r2);
    expect(r2.response().body.toString()).toBe('held');
    expect(c.closed).toBe(false);
  });

  // Regression (fixed): a lone request without FCGI_KEEP_CONN that the web server aborts gets no END_REQUEST:
  // FcgiConnection.abortRequest destroys the socket when it is alone (meant for app errors after
  // the headers), but spec 5.4 says the application answers FCGI_ABORT_REQUEST with
  // FCGI_END_REQUEST (Go child.go writes it, then closes). The web server sees a reset instead.
  it('a lone request without KEEP_CONN: END_REQUEST, then the connection closes', async () => {
    const state = { signals: [] as AbortSignal[], closes: 0, produced: 0 };
    const srv = await serve(streamingApp(state));
    const c = await srv.connect();
    await c.request(1, { params: get('/stream') });
    await c.waitFor(() => c.req(1).stdoutBytes > 0, 'some STDOUT');
    await c.send(encodeAbortRequest(1));
    await c.waitClosed();
    await until(() => state.closes === 1, 'close()');
    expect(c.req(1).ends).toHaveLength(1);
  });
});

describe('the web server hangs up', () => {
  it('mid-request: close() called, signal aborted, new connections served', async () => {
    const seen: { signal?: AbortSignal; closes: number; error?: unknown } = { closes: 0 };
    const srv = await serve((environ, startResponse) => {
      if (environ.PATH_INFO !== '/upload') return echoApp(environ, startResponse);
      seen.signal = environ['tsgi.signal'];
      const gen = (async function* () {
        try {
          const body = await environ['wsgi.input'].read();
          startResponse('200 OK', []);
          yield body;
        } catch (err) {
          seen.error = err;
          throw err;
        }
      })();
      return withClose(gen, () => void seen.closes++);
    });
    const c = await srv.connect();
    await c.request(1, { params: get('/upload', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '100' }), stdin: 'only ten b', endStdin: false });
    await until(() => seen.signal !== undefined, 'the app to start');
    await sleep(20);
    c.destroy();
    await until(() => seen.closes === 1 && seen.signal!.aborted, 'close() and the abort');
    expect((seen.error as { code?: string }).code).toBe('TSGI_CLIENT_GONE');
    await until(() => srv.gw.active === 0, 'the request to finish');
    expect(srv.lines().filter((l) => l.level >= LogLevel.error)).toEqual([]);
    const next = await srv.connect();
    await next.request(1, { params: get('/next') });
    await next.waitClosed();
    expectCompleted(next.req(1));
  });

  it('mid-response: close() called, signal aborted, iteration stops, new connections served', async () => {
    const state = { signals: [] as AbortSignal[], closes: 0, produced: 0 };
    const srv = await serve(streamingApp(state));
    const c = await srv.connect();
    await c.request(1, { params: get('/stream') });
    await c.waitFor(() => c.req(1).stdoutBytes > 50, 'some STDOUT');
    c.destroy();
    await until(() => state.closes === 1 && state.signals[0]!.aborted, 'close() and the abort');
    const produced = state.produced;
    await sleep(50);
    expect(state.produced).toBeLessThanOrEqual(produced + 1);
    expect(srv.lines().filter((l) => l.level >= LogLevel.error)).toEqual([]);
    const next = await srv.connect();
    await next.request(1, { params: get('/hold') }); // no gate given: /hold answers at once
    await next.waitClosed();
    expectCompleted(next.req(1));
  });

  // Regression (fixed): a web server that half-closes after sending its request (shutdown(SHUT_WR)) gets no
  // response: createStreamServer's net.createServer lacks allowHalfOpen: true, so node ends the
  // server's side as soon as the FIN arrives, although FcgiConnection's 'end' handler means to
  // "answer what is under way, then close our side". The response is written after the end.
  it('half-close after the request: the response still arrives', async () => {
    const srv = await serve(async (environ, startResponse) => {
      await sleep(30);
      return echoApp(environ, startResponse);
    });
    const c = await srv.connect();
    await c.request(1, { params: get('/half') });
    c.end();
    await c.waitClosed(2000);
    expectCompleted(c.req(1));
  });
});

// ---- errors and limits ----------------------------------------------------------------------

describe('wsgi.errors', () => {
  it('goes to the web server as STDERR records and to the log', async () => {
    const srv = await serve((environ, startResponse) => {
      environ['wsgi.errors'].write('first line\nsecond');
      startResponse('200 OK', []);
      return ['ok'];
    });
    const c = await srv.connect();
    await c.request(1, { params: get('/') });
    await c.waitClosed();
    const r = c.req(1);
    expectCompleted(r);
    expect(r.stderr).toBe('first line\nsecond');
    expect(r.events.indexOf('end')).toBeGreaterThan(r.events.findIndex((e) => e.startsWith('err:')));
    await until(() => srv.lines().some((l) => l.msg === 'second'), 'the log line of the flushed rest');
    const logged = srv.lines().filter((l) => l.stream === 'wsgi.errors').map((l) => l.msg);
    expect(logged).toEqual(['first line', 'second']);
  });
});

describe('limits', () => {
  it('params over limits.maxHeaderBytes: a 431 response, the connection goes on', async () => {
    let calls = 0;
    const srv = await serve(
      (env, sr) => {
        calls++;
        return echoApp(env, sr);
      },
      { limits: { maxHeaderBytes: 1024 } },
    );
    const c = await srv.connect();
    await c.request(1, { keepConn: true, params: get('/big', { HTTP_X_BIG: 'y'.repeat(4000) }), paramsRecordSize: 500 });
    const r = await c.waitEnd(1);
    expectCompleted(r);
    expect(r.response().status).toBe(431);
    expect(calls).toBe(0);
    expect(codes(srv.lines())).toContain('TSGI_FCGI_PARAMS_TOO_LARGE');
    await c.request(2, { params: get('/small') });
    await c.waitClosed();
    expectCompleted(c.req(2));
    expect(calls).toBe(1);
    expect(c.closeError).toBeUndefined();
  });

  it('CONTENT_LENGTH over limits.maxBodyBytes: 413, the body is read and dropped', async () => {
    let calls = 0;
    const srv = await serve(
      (env, sr) => {
        calls++;
        return echoApp(env, sr);
      },
      { limits: { maxBodyBytes: 100 } },
    );
    const c = await srv.connect();
    await c.request(1, { params: get('/up', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '5000' }), stdin: Buffer.alloc(5000, 0x7a) });
    await c.waitClosed();
    const r = c.req(1);
    expectCompleted(r);
    expect(r.response().status).toBe(413);
    expect(calls).toBe(0);
    expect(c.closeError).toBeUndefined();
    expect(codes(srv.lines())).toContain('TSGI_BODY_TOO_LARGE');
  });

  it('garbage bytes (bad version): connection closed, TSGI_FCGI_BAD_VERSION logged, next connection served', async () => {
    const srv = await serve(echoApp);
    const c = await srv.connect();
    await c.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await c.waitClosed();
    expect(c.ids()).toEqual([]);
    const line = srv.lines().find((l) => l.code === 'TSGI_FCGI_BAD_VERSION');
    expect(line?.level).toBe(LogLevel.warn);
    const next = await srv.connect();
    await next.request(1, { params: get('/') });
    await next.waitClosed();
    expectCompleted(next.req(1));
  });

  // Regression (fixed): limits.headerTimeoutMs ("a request head must arrive whole within this many ms", enforced
  // by SCGI and HTTP) is not enforced by FastCGI: a BEGIN_REQUEST whose PARAMS never end holds
  // its slot and keeps the connection busy (so the idle timeout never fires) forever.
  it('limits.headerTimeoutMs: params that never end do not hold the connection forever', async () => {
    const srv = await serve(echoApp, { limits: { headerTimeoutMs: 100 } });
    const c = await srv.connect();
    await c.send(Buffer.concat([encodeBeginRequest(1, Role.Responder, 0), encodeRecord(RecordType.Params, 1, encodeParams([['A', 'b']]))]));
    await c.waitFor(() => c.closed || c.req(1).ends.length > 0, 'the request refused or the connection closed', 1500);
  });
});

describe('app errors', () => {
  it('before headers: a 500 response without details, then END_REQUEST', async () => {
    const srv = await serve(() => {
      throw new Error('secret detail');
    });
    const c = await srv.connect();
    await c.request(1, { params: get('/') });
    await c.waitClosed();
    const r = c.req(1);
    expectCompleted(r);
    const res = r.response();
    expect(res.status).toBe(500);
    expect(res.body.toString()).not.toContain('secret');
    expect(srv.lines().some((l) => l.level === LogLevel.error)).toBe(true);
  });

  const failAfterHeaders: App = (environ, startResponse) =>
    (async function* () {
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      yield 'partial ';
      await sleep(10);
      if (environ.PATH_INFO === '/fail') throw new Error('boom');
      yield 'rest';
    })();

  it('after headers, alone: connection closed without END_REQUEST', async () => {
    const srv = await serve(failAfterHeaders);
    const c = await srv.connect();
    await c.request(1, { params: get('/fail') });
    await c.waitClosed();
    const r = c.req(1);
    expect(r.response().body.toString()).toBe('partial ');
    expect(r.ends).toEqual([]);
    expect(r.stdoutEnded).toBe(false);
  });

  it('after headers, multiplexed with KEEP_CONN: END_REQUEST with a non-zero appStatus, the others carry on', async () => {
    const hold = gate();
    const srv = await serve(async (environ, startResponse) => {
      if (environ.PATH_INFO === '/hold') await hold.promise;
      return failAfterHeaders(environ, startResponse);
    });
    const c = await srv.connect();
    await c.request(2, { keepConn: true, params: get('/hold') });
    await c.request(1, { keepConn: true, params: get('/fail') });
    const r1 = await c.waitEnd(1);
    expect(r1.ends).toHaveLength(1);
    expect(r1.end!.appStatus).not.toBe(0);
    expect(r1.response().body.toString()).toBe('partial ');
    hold.open();
    const r2 = await c.waitEnd(2);
    expectCompleted(r2);
    expect(r2.response().body.toString()).toBe('partial rest');
    expect(c.closed).toBe(false);
    await c.ping();
    expect(r1.ends).toHaveLength(1);
  });

  // Regression (fixed): with FCGI_KEEP_CONN a failed response that is alone on its connection ends with
  // END_REQUEST(appStatus 1, FCGI_REQUEST_COMPLETE), which nginx (fastcgi_keep_conn on; it never
  // multiplexes) takes as a complete response: a truncated body dressed as complete, against the
  // contract. abortRequest only closes when `!req.keepConn`; being alone is what should decide.
  it('after headers, alone with KEEP_CONN: connection closed without END_REQUEST', async () => {
    const srv = await serve(failAfterHeaders);
    const c = await srv.connect();
    await c.request(1, { keepConn: true, params: get('/fail') });
    await c.waitFor(() => c.closed || c.req(1).ends.length > 0, 'closed or END_REQUEST');
    expect(c.req(1).ends).toEqual([]);
    expect(c.closed).toBe(true);
  });
});

// ---- backpressure ---------------------------------------------------------------------------

describe('backpressure', () => {
  it('pauses the app while the web server does not read a 50 MiB response, completes when it does', async () => {
    const chunk = Buffer.alloc(64 * 1024, 0x2e);
    const total = 800; // 50 MiB
    let produced = 0;
    const srv = await serve((_env, startResponse) => {
      startResponse('200 OK', [['Content-Type', 'application/octet-stream'], ['Content-Length', String(chunk.length * total)]]);
      return (function* () {
        for (let i = 0; i < total; i++) {
          produced++;
          yield chunk;
        }
      })();
    });
    const c = await srv.connect({ keepStdout: false });
    c.pause();
    await c.request(1, { params: get('/download') });
    await until(() => produced > 0, 'the app to start');
    // Wait until the app stops producing (socket buffers full), however slow the machine.
    let last = -1;
    for (const deadline = Date.now() + 10_000; produced !== last && Date.now() < deadline; ) {
      last = produced;
      await sleep(200);
    }
    expect(produced).toBe(last); // paused, not crawling
    expect(produced).toBeLessThan(total / 4);
    c.resume();
    await c.waitEnd(1, 20_000);
    expect(produced).toBe(total);
    const r = c.req(1);
    expectCompleted(r);
    const headLength = r.stdoutBytes - chunk.length * total;
    expect(headLength).toBeGreaterThan(0);
    expect(headLength).toBeLessThan(200);
  });
});

// ---- who may connect, and where -------------------------------------------------------------

describe('FCGI_WEB_SERVER_ADDRS', () => {
  it('refuses a 127.0.0.1 connection when only 10.1.2.3 is listed', async () => {
    let calls = 0;
    const srv = await serve(
      (env, sr) => {
        calls++;
        return echoApp(env, sr);
      },
      { fcgi: { webServerAddrs: '10.1.2.3' } },
    );
    const c = await srv.connect();
    await c.request(1, { params: get('/') });
    await c.waitClosed();
    expect(c.ids()).toEqual([]);
    expect(calls).toBe(0);
    expect(srv.lines().some((l) => l.level === LogLevel.warn && /refused/.test(String(l.msg)))).toBe(true);
  });

  it('serves 127.0.0.1 when listed', async () => {
    const srv = await serve(echoApp, { fcgi: { webServerAddrs: '10.1.2.3, 127.0.0.1' } });
    const c = await srv.connect();
    await c.request(1, { params: get('/') });
    await c.waitClosed();
    expectCompleted(c.req(1));
  });

  it('serves an IPv6 loopback connection when ::1 is listed', async (ctx) => {
    const probe = net.createServer();
    const hasV6 = await new Promise<boolean>((resolve) => {
      probe.once('error', () => resolve(false));
      probe.listen({ host: '::1', port: 0 }, () => probe.close(() => resolve(true)));
    });
    if (!hasV6) ctx.skip('no ::1 on this machine');
    const srv = await serve(echoApp, { host: '::1', fcgi: { webServerAddrs: '10.1.2.3,::1' } });
    const c = await srv.connect();
    await c.request(1, { params: get('/v6') });
    await c.waitClosed();
    expectCompleted(c.req(1));
    expect(echoed(c.req(1)).vars.PATH_INFO).toBe('/v6');
  });
});

describe('Unix socket via listen()', () => {
  function tempSocket(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsgi-fcgi-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    return path.join(dir, 'app.sock');
  }

  it('creates the socket with mode 0660 by default and serves on it', async () => {
    const sock = tempSocket();
    // FCGI_WEB_SERVER_ADDRS applies to TCP peers only.
    const srv = await serve(echoApp, { unix: { path: sock }, fcgi: { webServerAddrs: '10.1.2.3' } });
    expect(fs.statSync(sock).isSocket()).toBe(true);
    expect(fs.statSync(sock).mode & 0o777).toBe(0o660);
    const c = await srv.connect();
    await c.request(1, { params: get('/unix') });
    await c.waitClosed();
    expectCompleted(c.req(1));
    expect(echoed(c.req(1)).vars.PATH_INFO).toBe('/unix');
  });

  it('honours socketMode', async () => {
    const sock = tempSocket();
    await serve(echoApp, { unix: { path: sock, socketMode: 0o600 } });
    expect(fs.statSync(sock).mode & 0o777).toBe(0o600);
    const wide = tempSocket();
    await serve(echoApp, { unix: { path: wide, socketMode: 0o666 } });
    expect(fs.statSync(wide).mode & 0o777).toBe(0o666);
  });
});
