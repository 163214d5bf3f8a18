// The AJP13 server on the wire, from the web server's side: packets built with the codec's
// web-server encoders go in over a loopback socket, as httpd's mod_proxy_ajp sends them (the
// first body packet unasked, one more per GET_BODY_CHUNK), and what comes back is decoded and
// checked. Apps are written inline, one behaviour each; every wait is bounded.

import { Buffer } from 'node:buffer';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ProtocolServer } from '../../../src/net/protocols.js';
import {
  decodeContainerPacket,
  encodeBodyPacket,
  encodeCPing,
  encodeForwardRequest,
  type ForwardRequestInit,
  PacketDecoder,
} from '../../../src/protocols/ajp/codec.js';
import { createAjpServer, MAX_ASKS_AHEAD, secretMatches, type AjpOptions } from '../../../src/protocols/ajp/server.js';
import { Gateway, type Limits } from '../../../src/runner/gateway.js';
import type { App, Environ } from '../../../src/types.js';
import { LogLevel, type LogLine, memoryLogger } from '../../helpers/logger.js';
import { WireSocket } from '../../helpers/wire-socket.js';
import { AjpClient } from '../../servers/helpers/ajp-wire.js';
import { within } from '../../servers/helpers/daemon.js';

// ---- fixture: one server per test, torn down after it ---------------------------------------

const cleanups: Array<() => unknown> = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  vi.restoreAllMocks();
});

interface Served {
  gw: Gateway;
  ps: ProtocolServer;
  port: number;
  lines(): LogLine[];
  connect(o?: { maxPacketSize?: number }): Promise<AjpClient>;
}

async function serve(app: App, o: { limits?: Partial<Limits>; ajp?: AjpOptions } = {}): Promise<Served> {
  const { log, lines } = memoryLogger();
  const gw = new Gateway({ app, log, protocol: 'ajp', limits: o.limits });
  const ps = createAjpServer(gw, o.ajp ?? {});
  const sockets = new Set<net.Socket>();
  ps.server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    ps.server.once('error', reject);
    ps.server.listen({ host: '127.0.0.1', port: 0 }, resolve);
  });
  const port = (ps.server.address() as net.AddressInfo).port;
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await within(new Promise<void>((r) => ps.server.close(() => r())), 5_000, 'server close').catch(() => {});
  });
  return {
    gw,
    ps,
    port,
    lines,
    async connect(co) {
      const c = await AjpClient.connect({ port }, co);
      cleanups.push(() => c.destroy());
      return c;
    },
  };
}

// ---- apps and small tools -------------------------------------------------------------------

/** The environ's strings, tsgi.ajp_attributes, url scheme and protocol, and the body's length and sha256. */
const echoApp: App = async (environ, startResponse) => {
  const body = await environ['wsgi.input'].read();
  startResponse('200 OK', [['Content-Type', 'application/json']]);
  return [JSON.stringify({ ...environSnapshot(environ), bodyLength: body.length, bodySha256: sha256(body) })];
};

function environSnapshot(environ: Environ): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(environ)) if (typeof v === 'string') out[k] = v;
  for (const k of ['wsgi.url_scheme', 'tsgi.protocol', 'tsgi.ajp_attributes']) out[k] = (environ as Record<string, unknown>)[k];
  return out;
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

const json = (b: Buffer): Record<string, unknown> => JSON.parse(b.toString('utf8')) as Record<string, unknown>;

/** A promise the test resolves: `open()` lets the app go on. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

/** Counts `permit()` calls; the app awaits `next()` before each step. */
function stepper(): { next: () => Promise<void>; permit: () => void } {
  const waiting: Array<() => void> = [];
  let credit = 0;
  return {
    next: () => {
      if (credit > 0) {
        credit--;
        return Promise.resolve();
      }
      return new Promise<void>((r) => waiting.push(r));
    },
    permit: () => {
      const w = waiting.shift();
      if (w) w();
      else credit++;
    },
  };
}

/** What an app saw of the end of its request: close() calls and tsgi.signal. */
function lifecycle() {
  const seen = { closed: 0, aborted: false, readError: undefined as string | undefined, iterations: 0 };
  return seen;
}

function warnCodes(lines: LogLine[]): Array<string | undefined> {
  return lines.filter((l) => l.level === LogLevel.warn).map((l) => l.code);
}

const get = (requestUri = '/'): ForwardRequestInit => ({ method: 'GET', requestUri });

// =============================================================================================

describe('FORWARD_REQUEST → environ', () => {
  it('CGI variables: method, URI, query, addresses, names, ports and headers', async () => {
    const s = await serve(echoApp);
    const c = await s.connect();
    const ex = await c.exchange({
      method: 'GET',
      protocol: 'HTTP/1.1',
      requestUri: '/caf%C3%A9/x%20y',
      remoteAddr: '192.0.2.7',
      remoteHost: 'client.example',
      serverName: 'example.org',
      serverPort: 8080,
      headers: [
        ['Host', 'example.org:8080'],
        ['Accept', 'text/html'],
        ['User-Agent', 'tests/1'],
        ['X-Repeat', 'one'],
        ['X-Repeat', 'two'],
        ['Cookie', 'a=1'],
        ['Cookie', 'b=2'],
        ['X_Under', 'dropped'],
        ['Proxy', 'httpoxy'],
      ],
      attributes: { queryString: 'a=1&b=%20' },
      requestAttributes: [
        ['AJP_REMOTE_PORT', '52814'],
        ['AJP_LOCAL_ADDR', '198.51.100.1'],
      ],
    });
    expect(ex.status).toBe(200);
    const env = json(ex.body);
    expect(env).toMatchObject({
      REQUEST_METHOD: 'GET',
      SERVER_PROTOCOL: 'HTTP/1.1',
      REQUEST_URI: '/caf%C3%A9/x%20y?a=1&b=%20',
      SCRIPT_NAME: '',
      PATH_INFO: '/caf\u00c3\u00a9/x y',
      QUERY_STRING: 'a=1&b=%20',
      REMOTE_ADDR: '192.0.2.7',
      REMOTE_HOST: 'client.example',
      REMOTE_PORT: '52814',
      SERVER_ADDR: '198.51.100.1',
      SERVER_NAME: 'example.org',
      SERVER_PORT: '8080',
      GATEWAY_INTERFACE: 'CGI/1.1',
      HTTP_HOST: 'example.org:8080',
      HTTP_ACCEPT: 'text/html',
      HTTP_USER_AGENT: 'tests/1',
      HTTP_X_REPEAT: 'one, two',
      HTTP_COOKIE: 'a=1; b=2',
      'wsgi.url_scheme': 'http',
      'tsgi.protocol': 'ajp',
      'tsgi.ajp_attributes': {},
      bodyLength: 0,
    });
    for (const k of ['HTTPS', 'HTTP_PROXY', 'HTTP_X_UNDER', 'REMOTE_USER', 'AUTH_TYPE', 'AJP_ROUTE', 'CONTENT_LENGTH', 'SSL_CIPHER']) {
      expect(env, k).not.toHaveProperty(k);
    }
  });

  it('is_ssl and the SSL attributes: HTTPS=on, wsgi.url_scheme https, SSL_* variables', async () => {
    const s = await serve(echoApp);
    const c = await s.connect();
    const cert = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----';
    const ex = await c.exchange({
      requestUri: '/tls',
      serverPort: 443,
      isSsl: true,
      attributes: { sslCert: cert, sslCipher: 'TLS_AES_256_GCM_SHA384', sslSession: '0a1b2c3d', sslKeySize: 256 },
      requestAttributes: [['AJP_SSL_PROTOCOL', 'TLSv1.3']],
    });
    expect(json(ex.body)).toMatchObject({
      HTTPS: 'on',
      'wsgi.url_scheme': 'https',
      SERVER_PORT: '443',
      SSL_CLIENT_CERT: cert,
      SSL_CIPHER: 'TLS_AES_256_GCM_SHA384',
      SSL_SESSION_ID: '0a1b2c3d',
      SSL_CIPHER_USEKEYSIZE: '256',
      SSL_PROTOCOL: 'TLSv1.3',
      'tsgi.ajp_attributes': {},
    });
  });

  it('remote_user, auth_type and route: REMOTE_USER, AUTH_TYPE, AJP_ROUTE', async () => {
    const s = await serve(echoApp);
    const c = await s.connect();
    const ex = await c.exchange({ requestUri: '/who', attributes: { remoteUser: 'alice', authType: 'Basic', route: 'node2' } });
    expect(json(ex.body)).toMatchObject({ REMOTE_USER: 'alice', AUTH_TYPE: 'Basic', AJP_ROUTE: 'node2' });
  });

  it('methods: a coded one (PROPFIND) and one outside the table (0xFF + stored_method)', async () => {
    const s = await serve(echoApp);
    const c = await s.connect();
    expect(json((await c.exchange({ method: 'PROPFIND', requestUri: '/dav' })).body).REQUEST_METHOD).toBe('PROPFIND');
    expect(json((await c.exchange({ method: 'PATCH', requestUri: '/item' })).body).REQUEST_METHOD).toBe('PATCH');
  });

  // Regression: mod_jk sends JK_LB_ACTIVATION=ACT on every request (seen with mod_jk 1.2.48, plain
  // ajp13 worker); without an allow-list it was refused with a 403, so mod_jk never worked.
  it("mod_jk's JK_LB_ACTIVATION goes through without --ajp-allowed-attributes", async () => {
    const s = await serve(echoApp);
    const c = await s.connect();
    const ex = await c.exchange({ requestUri: '/jk', requestAttributes: [['AJP_REMOTE_PORT', '1'], ['JK_LB_ACTIVATION', 'ACT']] });
    expect(ex.status).toBe(200);
    expect(json(ex.body)['tsgi.ajp_attributes']).toEqual({ JK_LB_ACTIVATION: 'ACT' });
  });
});

// =============================================================================================

describe('request body', () => {
  it('Content-Length: the first packet comes unasked, the rest asked for (packet size - 6, the last for what is left)', async () => {
    const s = await serve(echoApp);
    const c = await s.connect();
    const body = randomBytes(20_000);
    const ex = await c.exchange(
      { method: 'POST', requestUri: '/up', headers: [['Content-Length', '20000'], ['Content-Type', 'application/octet-stream']] },
      { body },
    );
    expect(ex.status).toBe(200);
    expect(json(ex.body)).toMatchObject({ CONTENT_LENGTH: '20000', CONTENT_TYPE: 'application/octet-stream', bodyLength: 20_000, bodySha256: sha256(body) });
    // 8186 came unasked; then 8186 and the 3628 that are left, exactly what httpd sends.
    expect(ex.getBody).toEqual([8186, 3628]);
    expect(ex.asksAfterEnd).toBe(0);
    expect(ex.sequence.slice(0, 2)).toEqual(['get-body', 'get-body']);
  });

  it('a slow reader: nothing asked before it reads, then one GET_BODY_CHUNK per read, never two outstanding', async () => {
    const steps = stepper();
    const reads: number[] = [];
    const app: App = async (environ, startResponse) => {
      for (;;) {
        await steps.next();
        const b = await environ['wsgi.input'].read(8186);
        reads.push(b.length);
        if (b.length === 0) break;
      }
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return [String(reads.reduce((a, b) => a + b, 0))];
    };
    // High-water mark 1 byte: nothing is fetched ahead of the app.
    const s = await serve(app, { limits: { bodyHighWaterMark: 1 } });
    const c = await s.connect();
    const body = randomBytes(30_000);
    c.send(encodeForwardRequest({ method: 'POST', requestUri: '/slow', headers: [['Content-Length', '30000']] }), encodeBodyPacket(body.subarray(0, 8186)));
    expect(await c.quietFor(150)).toEqual([]);
    let at = 8186;
    const asked: number[] = [];
    for (let i = 0; i < 3; i++) {
      steps.permit();
      const p = await c.next(2_000, `GET_BODY_CHUNK after read ${i + 1}`);
      expect(p.type).toBe('get-body');
      asked.push((p as { size: number }).size);
      // One outstanding: nothing more until it is answered and the app reads again.
      expect(await c.quietFor(100)).toEqual([]);
      const n = Math.min(8186, 30_000 - at);
      c.send(encodeBodyPacket(body.subarray(at, at + n)));
      at += n;
      expect(await c.quietFor(100)).toEqual([]);
    }
    expect(asked).toEqual([8186, 8186, 5442]);
    steps.permit(); // reads the last 5442 bytes
    steps.permit(); // reads the end
    const head = await c.next(2_000, 'SEND_HEADERS');
    expect(head).toMatchObject({ type: 'headers', status: 200 });
    expect(await c.next()).toMatchObject({ type: 'body' });
    expect(await c.next()).toEqual({ type: 'end', reuse: true });
    expect(reads).toEqual([8186, 8186, 8186, 5442, 0]);
  });

  it('an app that never reads: asking stops at the high-water mark; the response leaves the connection in step', async () => {
    const g = gate();
    const app: App = async (_environ, startResponse) => {
      await g.wait;
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return ['unread\n'];
    };
    const s = await serve(app, { limits: { bodyHighWaterMark: 64 * 1024 } });
    const c = await s.connect();
    const size = 1024 * 1024;
    c.send(encodeForwardRequest({ method: 'PUT', requestUri: '/ignored', headers: [['Content-Length', String(size)]] }), encodeBodyPacket(new Uint8Array(8186)));
    let sent = 8186;
    let asks = 0;
    for (;;) {
      const more = await c.quietFor(100);
      if (more.length === 0) break;
      for (const p of more) {
        expect(p.type).toBe('get-body');
        asks++;
        const n = Math.min(8186, size - sent);
        c.send(encodeBodyPacket(new Uint8Array(n)));
        sent += n;
      }
    }
    // 64 KiB buffered at most: 8 packets of 8186 bytes reach it, so 7 were asked for.
    expect(asks).toBe(Math.ceil((64 * 1024) / 8186) - 1);
    g.open();
    const head = await c.next();
    expect(head).toMatchObject({ type: 'headers', status: 200 });
    expect(await c.next()).toMatchObject({ type: 'body' });
    expect(await c.next()).toEqual({ type: 'end', reuse: true });
    const again = await c.exchange(get('/next'));
    expect(again.body.toString()).toBe('unread\n');
  });

  it('chunked (Transfer-Encoding, no Content-Length): nothing unasked, asked from the start, an empty packet ends it', async () => {
    const s = await serve(echoApp);
    const c = await s.connect();
    const chunks = [randomBytes(5000), randomBytes(8186), randomBytes(100)];
    const ex = await c.exchange({ method: 'POST', requestUri: '/chunked', headers: [['Transfer-Encoding', 'chunked']] }, { chunks });
    const env = json(ex.body);
    expect(env).toMatchObject({ HTTP_TRANSFER_ENCODING: 'chunked', bodyLength: 13_286, bodySha256: sha256(Buffer.concat(chunks)) });
    expect(env).not.toHaveProperty('CONTENT_LENGTH');
    // Three data packets and the empty one, each asked for with the packet size - 6.
    expect(ex.getBody).toEqual([8186, 8186, 8186, 8186]);
    expect(ex.asksAfterEnd).toBe(0);
  });

  it('Transfer-Encoding wins over Content-Length (CVE-2022-26377): CONTENT_LENGTH dropped, the body read to its empty packet', async () => {
    const s = await serve(echoApp);
    const c = await s.connect();
    const chunks = [randomBytes(8000), randomBytes(8000), randomBytes(4000)];
    const ex = await c.exchange(
      { method: 'POST', requestUri: '/smuggle', headers: [['Content-Length', '10'], ['Transfer-Encoding', 'chunked']] },
      { chunks },
    );
    const env = json(ex.body);
    expect(env).not.toHaveProperty('CONTENT_LENGTH');
    expect(env).toMatchObject({ bodyLength: 20_000, bodySha256: sha256(Buffer.concat(chunks)) });
    expect(ex.getBody).toHaveLength(4);
  });

  it('a body over --max-body-size: 413 with one SEND_HEADERS and END_RESPONSE; the unasked packet is read; the connection goes on', async () => {
    let calls = 0;
    const s = await serve(
      (environ, startResponse) => {
        calls++;
        return echoApp(environ, startResponse);
      },
      { limits: { maxBodyBytes: 1000 } },
    );
    const c = await s.connect();
    const ex = await c.exchange({ method: 'POST', requestUri: '/big', headers: [['Content-Length', '5000']] }, { body: randomBytes(5000) });
    expect(ex.status).toBe(413);
    expect(ex.sequence).toEqual(['headers', 'body', 'end']);
    expect(ex.end).toEqual({ reuse: true });
    expect(ex.getBody).toEqual([]);
    expect(calls).toBe(0);
    expect(warnCodes(s.lines())).toContain('TSGI_BODY_TOO_LARGE');
    const next = await c.exchange(get('/after'));
    expect(next.status).toBe(200);
    expect(calls).toBe(1);
  });

  // Regression: a chunked body has no length to check up front and was never held to the limit.
  it('a chunked body growing past --max-body-size: 413, and no more GET_BODY_CHUNK', async () => {
    const s = await serve(echoApp, { limits: { maxBodyBytes: 10_000 } });
    const c = await s.connect();
    const chunks = Array.from({ length: 5 }, () => randomBytes(8186));
    const ex = await c.exchange({ method: 'POST', requestUri: '/chunked-big', headers: [['Transfer-Encoding', 'chunked']] }, { chunks });
    expect(ex.status).toBe(413);
    expect(ex.getBody).toHaveLength(2); // 16372 bytes > 10000: refused after the second packet
    expect(ex.end).toEqual({ reuse: true });
    expect((await c.exchange(get('/after'))).status).toBe(200);
  });

  it('a response finished before the unasked first body packet arrives: that packet is read as body, not as a request', async () => {
    const s = await serve((_environ, startResponse) => {
      startResponse('204 No Content', []);
      return [];
    });
    const c = await s.connect();
    // The FORWARD_REQUEST alone: the body packet is held back until the response is over.
    c.forward({ method: 'POST', requestUri: '/early', headers: [['Content-Length', '100']] });
    expect(await c.next()).toMatchObject({ type: 'headers', status: 204 });
    expect(await c.next()).toEqual({ type: 'end', reuse: true });
    // Body bytes that would read as a CPing if tsgi took them for a packet of their own.
    const body = Buffer.alloc(100, 0x0a);
    c.send(encodeBodyPacket(body), encodeCPing());
    expect(await c.next()).toEqual({ type: 'cpong' });
    expect(await c.quietFor(50)).toEqual([]);
    const next = await c.exchange(get('/next'));
    expect(next.status).toBe(204);
    expect(c.isOpen).toBe(true);
  });

  // Regression: the signal fired when the web server hung up after END_RESPONSE, while tsgi was
  // still waiting for the unasked first body packet: a complete response counted as aborted.
  it('a hang-up after END_RESPONSE (first body packet never sent) does not abort the finished request', async () => {
    const g = gate();
    const seen = lifecycle();
    const s = await serve((environ, startResponse) => {
      const signal = environ['tsgi.signal'];
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return {
        *[Symbol.iterator]() {
          yield 'done\n';
        },
        async close() {
          await g.wait;
          seen.aborted = signal.aborted;
          seen.closed++;
        },
      };
    });
    const c = await s.connect();
    c.forward({ method: 'POST', requestUri: '/early', headers: [['Content-Length', '100']] });
    expect(await c.next()).toMatchObject({ type: 'headers' });
    expect(await c.next()).toMatchObject({ type: 'body' });
    expect(await c.next()).toEqual({ type: 'end', reuse: true });
    c.destroy();
    await c.waitClosed();
    await new Promise((r) => setTimeout(r, 50));
    g.open();
    await within(
      (async () => {
        while (seen.closed === 0) await new Promise((r) => setTimeout(r, 10));
      })(),
      2_000,
      'close() to run',
    );
    expect(seen).toMatchObject({ closed: 1, aborted: false });
  });

  it('the app stops reading midway and answers: the packet it had asked for is read before the next request', async () => {
    const s = await serve(async (environ, startResponse) => {
      await environ['wsgi.input'].read(100);
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return ['partial read\n'];
    });
    const c = await s.connect();
    const ex = await c.exchange({ method: 'POST', requestUri: '/partial', headers: [['Content-Length', '50000']] }, { body: randomBytes(50_000) });
    expect(ex.body.toString()).toBe('partial read\n');
    // Whatever was asked for was answered by the exchange; the next request starts clean.
    for (let i = 0; i < 3; i++) {
      const next = await c.exchange({ method: 'POST', requestUri: '/partial', headers: [['Content-Length', '20000']] }, { body: randomBytes(20_000) });
      expect(next.body.toString()).toBe('partial read\n');
    }
    c.send(encodeCPing());
    expect(await c.next()).toEqual({ type: 'cpong' });
  });
});

// =============================================================================================

describe('response', () => {
  const bigBody = randomBytes(100_000);
  const bigApp: App = (_environ, startResponse) => {
    startResponse('201 Created Here', [
      ['Content-Type', 'application/octet-stream'],
      ['Set-Cookie', 'a=1; Path=/'],
      ['Set-Cookie', 'b=2; HttpOnly'],
      ['X-Custom', 'yes'],
    ]);
    return [bigBody];
  };

  it('SEND_HEADERS, SEND_BODY_CHUNKs of at most 8192 bytes, END_RESPONSE reuse=1, then a second request on the connection', async () => {
    const s = await serve(bigApp);
    const c = await s.connect({ maxPacketSize: 8192 });
    for (let i = 0; i < 2; i++) {
      const ex = await c.exchange(get(`/big/${i}`));
      expect(ex.status).toBe(201);
      expect(ex.message).toBe('Created Here');
      expect(ex.header('Set-Cookie')).toEqual(['a=1; Path=/', 'b=2; HttpOnly']);
      expect(ex.header('X-Custom')).toEqual(['yes']);
      // One chunk of 100000 bytes, so Content-Length is known.
      expect(ex.header('Content-Length')).toEqual(['100000']);
      expect(ex.body.equals(bigBody)).toBe(true);
      expect(ex.bodyPackets).toEqual([...Array(12).fill(8184), 100_000 - 12 * 8184]);
      expect(Math.max(...ex.bodyPacketSizes)).toBe(8192);
      expect(ex.end).toEqual({ reuse: true });
      expect(ex.sequence[0]).toBe('headers');
    }
  });

  it('--ajp-packet-size 65536: body chunks of 65528 bytes out, request body packets of 65530 bytes in', async () => {
    const s = await serve(
      async (environ, startResponse) => {
        const got = await environ['wsgi.input'].read();
        startResponse('200 OK', [['Content-Type', 'application/octet-stream'], ['X-Got', sha256(got)]]);
        return [bigBody, bigBody];
      },
      { ajp: { packetSize: 65536 } },
    );
    const c = await s.connect({ maxPacketSize: 65536 });
    const up = randomBytes(200_000);
    const ex = await c.exchange({ method: 'POST', requestUri: '/64k', headers: [['Content-Length', '200000']] }, { body: up, packetSize: 65536 });
    expect(ex.header('X-Got')).toEqual([sha256(up)]);
    expect(ex.getBody).toEqual([65530, 65530, 200_000 - 3 * 65530]);
    expect(ex.body.equals(Buffer.concat([bigBody, bigBody]))).toBe(true);
    expect(ex.bodyPackets).toEqual([65528, 100_000 - 65528, 65528, 100_000 - 65528]);
    expect(Math.max(...ex.bodyPacketSizes)).toBe(65536);
    expect(ex.end).toEqual({ reuse: true });
  });

  it('HEAD: SEND_HEADERS then END_RESPONSE, no body chunk', async () => {
    const s = await serve((environ, startResponse) => {
      startResponse('200 OK', [['Content-Type', 'text/plain'], ['Content-Length', '12'], ['X-Method', environ.REQUEST_METHOD]]);
      return ['hello world\n'];
    });
    const c = await s.connect();
    const ex = await c.exchange({ method: 'HEAD', requestUri: '/head' });
    expect(ex.sequence).toEqual(['headers', 'end']);
    expect(ex.header('Content-Length')).toEqual(['12']);
    expect(ex.header('X-Method')).toEqual(['HEAD']);
  });

  it('a FLUSH (empty SEND_BODY_CHUNK) goes out when the app pauses between chunks, none when chunks come at once', async () => {
    const s = await serve((environ, startResponse) => {
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      if (environ.PATH_INFO === '/at-once') return ['a', 'b', 'c'];
      return (async function* () {
        yield 'a';
        await new Promise((r) => setTimeout(r, 30));
        yield 'b';
        await new Promise((r) => setTimeout(r, 30));
        yield 'c';
      })();
    });
    const c = await s.connect();
    const paused = await c.exchange(get('/paused'));
    expect(paused.body.toString()).toBe('abc');
    expect(paused.sequence).toEqual(['headers', 'body', 'flush', 'body', 'flush', 'body', 'end']);
    const atOnce = await c.exchange(get('/at-once'));
    expect(atOnce.body.toString()).toBe('abc');
    expect(atOnce.sequence).toEqual(['headers', 'body', 'body', 'body', 'end']);
  });

  it('CPing → CPong between requests, several in one write', async () => {
    const s = await serve(echoApp);
    const c = await s.connect();
    c.send(encodeCPing());
    expect(await c.next()).toEqual({ type: 'cpong' });
    expect((await c.exchange(get('/one'))).status).toBe(200);
    c.send(encodeCPing(), encodeCPing(), encodeCPing());
    for (let i = 0; i < 3; i++) expect(await c.next()).toEqual({ type: 'cpong' });
    // A CPing right before the request, in the same write (httpd with ping=).
    c.send(encodeCPing());
    const ex = await c.exchange(get('/two'));
    expect(ex.sequence[0]).toBe('cpong');
    expect(ex.status).toBe(200);
  });

  it('SHUTDOWN is ignored by default (one warn line) and the connection goes on; --ajp-allow-shutdown sends SIGTERM', async () => {
    const kill = vi.spyOn(process, 'kill').mockImplementation(() => true);
    const s = await serve(echoApp);
    const c = await s.connect();
    c.send(Buffer.from([0x12, 0x34, 0x00, 0x01, 0x07]));
    expect(await c.quietFor(100)).toEqual([]);
    expect((await c.exchange(get('/still-here'))).status).toBe(200);
    expect(s.lines().filter((l) => l.level === LogLevel.warn).map((l) => l.msg)).toEqual(['ajp: SHUTDOWN packet ignored (not allowed)']);
    expect(kill).not.toHaveBeenCalled();

    const allowed = await serve(echoApp, { ajp: { allowShutdown: true } });
    const c2 = await allowed.connect();
    c2.send(Buffer.from([0x12, 0x34, 0x00, 0x01, 0x07]));
    await within(
      (async () => {
        while (kill.mock.calls.length === 0) await new Promise((r) => setTimeout(r, 10));
      })(),
      2_000,
      'process.kill after SHUTDOWN',
    );
    expect(kill).toHaveBeenCalledWith(process.pid, 'SIGTERM');
  });
});

// =============================================================================================

describe('security: secret and request attributes', () => {
  const secretOpts = { ajp: { secret: 's3cr3t' } };

  for (const [how, attributes] of [
    ['missing', {}],
    ['wrong', { secret: 'guess' }],
  ] as const) {
    it(`--ajp-secret, secret ${how}: 403 with one SEND_HEADERS and one END_RESPONSE; the app is not called; a CPing still gets its CPong`, async () => {
      let calls = 0;
      const s = await serve((environ, startResponse) => {
        calls++;
        return echoApp(environ, startResponse);
      }, secretOpts);
      const c = await s.connect();
      const ex = await c.exchange({ requestUri: '/admin', attributes });
      expect(ex.status).toBe(403);
      expect(ex.sequence.filter((t) => t === 'headers')).toHaveLength(1);
      expect(ex.sequence.filter((t) => t === 'end')).toHaveLength(1);
      expect(ex.end).toEqual({ reuse: true });
      expect(ex.body.toString()).not.toContain('s3cr3t');
      expect(calls).toBe(0);
      expect(warnCodes(s.lines())).toEqual(['TSGI_AJP_BAD_SECRET', 'TSGI_AJP_BAD_SECRET']);
      expect(await c.quietFor(50)).toEqual([]);
      c.send(encodeCPing());
      expect(await c.next()).toEqual({ type: 'cpong' });
    });
  }

  it('--ajp-secret, the right secret: 200, and the secret is nowhere in the environ', async () => {
    const s = await serve(echoApp, secretOpts);
    const c = await s.connect();
    const ex = await c.exchange({ requestUri: '/admin', attributes: { secret: 's3cr3t' } });
    expect(ex.status).toBe(200);
    expect(ex.body.toString()).not.toContain('s3cr3t');
  });

  it('a refused request with a body: the unasked packet is read, and the connection serves the next request', async () => {
    const s = await serve(echoApp, secretOpts);
    const c = await s.connect();
    const ex = await c.exchange({ method: 'POST', requestUri: '/x', headers: [['Content-Length', '30000']] }, { body: randomBytes(30_000) });
    expect(ex.status).toBe(403);
    expect(ex.getBody).toEqual([]);
    const ok = await c.exchange({ requestUri: '/y', attributes: { secret: 's3cr3t' } });
    expect(ok.status).toBe(200);
  });

  it('a req_attribute outside the allow-list: 403, the app is not called', async () => {
    let calls = 0;
    const s = await serve((environ, startResponse) => {
      calls++;
      return echoApp(environ, startResponse);
    });
    const c = await s.connect();
    const ex = await c.exchange({ requestUri: '/x', requestAttributes: [['AJP_REMOTE_PORT', '1'], ['javax.servlet.include.request_uri', '/WEB-INF/web.xml']] });
    expect(ex.status).toBe(403);
    expect(ex.sequence).toEqual(['headers', 'body', 'end']);
    expect(calls).toBe(0);
    expect(warnCodes(s.lines())).toContain('TSGI_AJP_BAD_ATTRIBUTE');
  });

  it("an allowed req_attribute (--ajp-allowed-attributes) lands in environ['tsgi.ajp_attributes'], never over a CGI key", async () => {
    // What serve.ts builds from --ajp-allowed-attributes 'FOO|REMOTE_ADDR|HTTPS|PATH_INFO'.
    const s = await serve(echoApp, { ajp: { allowedAttributes: /^(?:FOO|REMOTE_ADDR|HTTPS|PATH_INFO)$/ } });
    const c = await s.connect();
    const ex = await c.exchange({
      requestUri: '/attrs',
      remoteAddr: '192.0.2.9',
      requestAttributes: [
        ['FOO', 'bar'],
        ['REMOTE_ADDR', '6.6.6.6'],
        ['HTTPS', 'on'],
        ['PATH_INFO', '/admin'],
      ],
    });
    expect(ex.status).toBe(200);
    const env = json(ex.body);
    expect(env['tsgi.ajp_attributes']).toEqual({ FOO: 'bar', REMOTE_ADDR: '6.6.6.6', HTTPS: 'on', PATH_INFO: '/admin' });
    expect(env).toMatchObject({ REMOTE_ADDR: '192.0.2.9', PATH_INFO: '/attrs', 'wsgi.url_scheme': 'http' });
    expect(env).not.toHaveProperty('HTTPS');
    expect(env).not.toHaveProperty('FOO');
    // Still refused: a name the pattern does not match whole.
    const no = await c.exchange({ requestUri: '/attrs', requestAttributes: [['FOOD', 'x']] });
    expect(no.status).toBe(403);
  });
});

// =============================================================================================

describe('broken peers and app errors', () => {
  it('a packet over the packet size: the connection is closed, one warn line, the next connection is served', async () => {
    const s = await serve(echoApp);
    const c = await s.connect();
    // 8189 bytes of payload: 8193 in all, one over the default 8192.
    c.send(Buffer.from([0x12, 0x34, 0x1f, 0xfd]), Buffer.alloc(8189));
    await c.waitClosed();
    expect(s.lines().filter((l) => l.level >= LogLevel.warn).map((l) => l.code)).toEqual(['TSGI_AJP_PACKET_TOO_LARGE']);
    const c2 = await s.connect();
    expect((await c2.exchange(get('/next'))).status).toBe(200);
  });

  it('bad magic (an HTTP request at the AJP port): closed, one warn line, the next connection is served', async () => {
    const s = await serve(echoApp);
    const c = await s.connect();
    c.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await c.waitClosed();
    expect(s.lines().filter((l) => l.level >= LogLevel.warn).map((l) => l.code)).toEqual(['TSGI_AJP_BAD_MAGIC']);
    expect(c.received).toEqual([]);
    const c2 = await s.connect();
    expect((await c2.exchange(get('/next'))).status).toBe(200);
  });

  it('a body packet nobody asked for: the connection is closed (TSGI_AJP_UNEXPECTED_PACKET)', async () => {
    const g = gate();
    const s = await serve(async (_environ, startResponse) => {
      await g.wait;
      startResponse('200 OK', []);
      return [];
    });
    const c = await s.connect();
    c.forward(get('/x'));
    c.send(encodeBodyPacket(Buffer.from('surprise')));
    await c.waitClosed();
    g.open();
    expect(warnCodes(s.lines())).toContain('TSGI_AJP_UNEXPECTED_PACKET');
  });

  it('the web server hangs up while the app reads the body: the read rejects, tsgi.signal aborts, close() runs once', async () => {
    const seen = lifecycle();
    const done = gate();
    const s = await serve(async (environ, startResponse) => {
      const signal = environ['tsgi.signal'];
      try {
        await environ['wsgi.input'].read();
      } catch (err) {
        seen.readError = (err as { code?: string }).code;
      }
      seen.aborted = signal.aborted;
      startResponse('200 OK', []);
      return {
        *[Symbol.iterator]() {
          yield 'never seen';
        },
        close() {
          seen.closed++;
          done.open();
        },
      };
    });
    const c = await s.connect();
    c.send(encodeForwardRequest({ method: 'POST', requestUri: '/up', headers: [['Content-Length', '100000']] }), encodeBodyPacket(new Uint8Array(8186)));
    expect(await c.next()).toMatchObject({ type: 'get-body' });
    c.destroy();
    await within(done.wait, 2_000, 'close() after the hang-up');
    await new Promise((r) => setTimeout(r, 50));
    expect(seen).toMatchObject({ readError: 'TSGI_CLIENT_GONE', aborted: true, closed: 1 });
  });

  it('the web server hangs up mid-response: iteration stops, tsgi.signal aborts, close() runs once', async () => {
    const seen = lifecycle();
    const done = gate();
    const s = await serve((environ, startResponse) => {
      const signal = environ['tsgi.signal'];
      signal.addEventListener('abort', () => (seen.aborted = true));
      startResponse('200 OK', [['Content-Type', 'application/octet-stream']]);
      return {
        async *[Symbol.asyncIterator]() {
          for (;;) {
            seen.iterations++;
            yield new Uint8Array(16384);
            await new Promise((r) => setTimeout(r, 5));
          }
        },
        close() {
          seen.closed++;
          done.open();
        },
      };
    });
    const c = await s.connect();
    c.forward(get('/forever'));
    let bytes = 0;
    while (bytes < 100_000) {
      const p = await c.next();
      if (p.type === 'body') bytes += p.data.length;
    }
    c.destroy();
    await within(done.wait, 2_000, 'close() after the hang-up');
    // A generator parked in an await runs on to its next yield, where return() stops it.
    const at = seen.iterations;
    await new Promise((r) => setTimeout(r, 100));
    expect(seen.iterations).toBeLessThanOrEqual(at + 1);
    const later = seen.iterations;
    await new Promise((r) => setTimeout(r, 100));
    expect(seen.iterations).toBe(later);
    expect(seen).toMatchObject({ aborted: true, closed: 1 });
  });

  it('an app error before the headers: 500 without details, END_RESPONSE reuse=1, the connection serves the next request', async () => {
    const s = await serve((environ, startResponse) => {
      if (environ.PATH_INFO === '/boom') throw new Error('secret-detail-4f2a');
      startResponse('200 OK', []);
      return ['fine'];
    });
    const c = await s.connect();
    const ex = await c.exchange(get('/boom'));
    expect(ex.status).toBe(500);
    expect(ex.body.toString()).not.toContain('secret-detail');
    expect(ex.end).toEqual({ reuse: true });
    expect(s.lines().some((l) => l.level === LogLevel.error)).toBe(true);
    const next = await c.exchange(get('/fine'));
    expect(next.body.toString()).toBe('fine');
  });

  it('an app error after the headers: the connection is closed with no END_RESPONSE', async () => {
    const s = await serve((_environ, startResponse) => {
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return (async function* () {
        yield 'partial-body\n';
        await new Promise((r) => setTimeout(r, 20));
        throw new Error('failed after headers');
      })();
    });
    const c = await s.connect();
    c.forward(get('/error-after'));
    await c.waitClosed();
    const types = c.received.map((p) => (p.type === 'body' && p.data.length === 0 ? 'flush' : p.type));
    expect(types).toEqual(['headers', 'body', 'flush']);
    expect(c.received.some((p) => p.type === 'end')).toBe(false);
  });

  it('shutting down mid-request: END_RESPONSE says reuse=0, then tsgi closes the connection', async () => {
    const g = gate();
    const s = await serve(async (_environ, startResponse) => {
      await g.wait;
      startResponse('200 OK', []);
      return ['bye'];
    });
    const c = await s.connect();
    c.forward(get('/slow'));
    await new Promise((r) => setTimeout(r, 50));
    s.ps.drain();
    g.open();
    const types: string[] = [];
    for (;;) {
      const p = await c.next();
      types.push(p.type);
      if (p.type === 'end') {
        expect(p.reuse).toBe(false);
        break;
      }
    }
    expect(types).toEqual(['headers', 'body', 'end']);
    await c.waitClosed();
  });
});

// =============================================================================================

describe('request body: GET_BODY_CHUNKs asked ahead', () => {
  /** Sends FORWARD_REQUEST and httpd's unasked first packet; collects what comes within 150 ms. */
  async function start(c: AjpClient, length: number, first: Uint8Array): Promise<number[]> {
    c.send(encodeForwardRequest({ method: 'POST', requestUri: '/ahead', headers: [['Content-Length', String(length)]] }), encodeBodyPacket(first));
    const got = await c.quietFor(150);
    return got.map((p) => (p.type === 'get-body' ? p.size : -1));
  }

  it('Content-Length: the asks for the rest go out together, before httpd answers any', async () => {
    const s = await serve(echoApp);
    const c = await s.connect();
    const body = randomBytes(100_000);
    const asked = await start(c, body.length, body.subarray(0, 8186));
    // 91814 bytes left: 11 whole packets and 1768 bytes.
    expect(asked).toEqual([...Array(11).fill(8186), 1768]);
    for (let at = 8186; at < body.length; at += 8186) c.send(encodeBodyPacket(body.subarray(at, at + 8186)));
    const head = await c.next();
    expect(head).toMatchObject({ type: 'headers', status: 200 });
    const data = await c.next();
    expect(data.type === 'body' && json(Buffer.from(data.data))).toMatchObject({ bodyLength: 100_000, bodySha256: sha256(body) });
    expect(await c.next()).toEqual({ type: 'end', reuse: true });
    expect((await c.exchange(get('/after'))).status).toBe(200);
  });

  it('no more outstanding than the body queue has room for (bodyHighWaterMark), then more as the app reads', async () => {
    const s = await serve(echoApp, { limits: { bodyHighWaterMark: 32 * 1024 } });
    const c = await s.connect();
    const body = randomBytes(300_000);
    // 32768 - 8186 buffered leaves room for 3 packets.
    expect(await start(c, body.length, body.subarray(0, 8186))).toEqual([8186, 8186, 8186]);
    let sent = 8186;
    let outstanding = 3;
    let asks = 3;
    for (;;) {
      const p = outstanding > 0 ? null : await c.next(2_000, 'a GET_BODY_CHUNK or the response');
      if (p && p.type !== 'get-body') {
        expect(p).toMatchObject({ type: 'headers', status: 200 });
        break;
      }
      if (p) {
        asks++;
        outstanding++;
        expect(outstanding).toBeLessThanOrEqual(3);
        continue;
      }
      const n = Math.min(8186, body.length - sent);
      c.send(encodeBodyPacket(body.subarray(sent, sent + n)));
      sent += n;
      outstanding--;
    }
    expect(sent).toBe(body.length);
    expect(asks).toBe(Math.ceil((body.length - 8186) / 8186));
    const data = await c.next();
    expect(data.type === 'body' && json(Buffer.from(data.data))).toMatchObject({ bodyLength: 300_000, bodySha256: sha256(body) });
  });

  it('short packets (httpd sends what the client sent so far): never more asks outstanding than bytes left, none after the end', async () => {
    const s = await serve(echoApp);
    const c = await s.connect();
    const body = randomBytes(20_000);
    // 19000 bytes left: at most 3 packets; the last ask for what the first two cannot bring.
    expect(await start(c, body.length, body.subarray(0, 1000))).toEqual([8186, 8186, 2628]);
    let sent = 1000;
    let outstanding = 3;
    let asks = 3;
    for (;;) {
      if (outstanding > 0) {
        expect(outstanding).toBeLessThanOrEqual(body.length - sent);
        const n = Math.min(1000, body.length - sent);
        c.send(encodeBodyPacket(body.subarray(sent, sent + n)));
        sent += n;
        outstanding--;
        continue;
      }
      const p = await c.next(2_000, 'a GET_BODY_CHUNK or the response');
      if (p.type !== 'get-body') {
        expect(p).toMatchObject({ type: 'headers', status: 200 });
        break;
      }
      asks++;
      outstanding++;
    }
    expect(sent).toBe(body.length);
    expect(asks).toBe(19); // one per 1000-byte packet after the first
    const data = await c.next();
    expect(data.type === 'body' && json(Buffer.from(data.data))).toMatchObject({ bodyLength: 20_000, bodySha256: sha256(body) });
    expect(await c.next()).toEqual({ type: 'end', reuse: true });
  });

  it('refilled by halves: no ask until half of those outstanding came in, then that half in one go', async () => {
    const app: App = async (environ, startResponse) => {
      let n = 0;
      for await (const chunk of environ['wsgi.input']) n += chunk.length;
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return [String(n)];
    };
    const s = await serve(app);
    const c = await s.connect();
    const size = 1024 * 1024;
    const body = randomBytes(size);
    // 256 KiB of queue: 31 packets outstanding after the first.
    expect(await start(c, size, body.subarray(0, 8186))).toEqual(Array(31).fill(8186));
    let sent = 8186;
    const next = () => {
      const n = Math.min(8186, size - sent);
      c.send(encodeBodyPacket(body.subarray(sent, sent + n)));
      sent += n;
    };
    for (let i = 0; i < 15; i++) {
      next();
      expect(await c.quietFor(40)).toEqual([]); // 30 .. 16 outstanding: more than half
    }
    next(); // 15 outstanding
    // The other half at once: 16 asks (15 had two packets come in one read: less room then).
    const burst = await c.quietFor(300);
    expect(burst.length).toBeGreaterThanOrEqual(15);
    expect(burst.every((p) => p.type === 'get-body' && p.size === 8186)).toBe(true);
    let outstanding = 15 + burst.length;
    for (;;) {
      while (outstanding > 0) {
        next();
        outstanding--;
      }
      const p = await c.next(2_000, 'a GET_BODY_CHUNK or the response');
      if (p.type === 'get-body') outstanding++;
      else {
        expect(p).toMatchObject({ type: 'headers', status: 200 });
        break;
      }
    }
    expect(sent).toBe(size);
    const data = await c.next();
    expect(data.type === 'body' && Buffer.from(data.data).toString()).toBe(String(size));
    expect(await c.next()).toEqual({ type: 'end', reuse: true });
  });

  it('64 KiB packets: 1 MiB asked 3 packets ahead (the 256 KiB queue)', async () => {
    const s = await serve(echoApp, { ajp: { packetSize: 65536 } });
    const c = await s.connect({ maxPacketSize: 65536 });
    const body = randomBytes(1024 * 1024);
    expect(await start(c, body.length, body.subarray(0, 65530))).toEqual([65530, 65530, 65530]);
    expect(MAX_ASKS_AHEAD).toBeGreaterThanOrEqual(31); // 256 KiB in 8 KiB packets is not cut short
  });

  it('an app error with asks outstanding: 500, every asked packet read, END_RESPONSE reuse=1, then CPing and a request work', async () => {
    const s = await serve(async (environ, startResponse) => {
      if (environ.PATH_INFO === '/fail') {
        await environ['wsgi.input'].read(100);
        throw new Error('boom');
      }
      return echoApp(environ, startResponse);
    });
    const c = await s.connect();
    const ex = await c.exchange({ method: 'POST', requestUri: '/fail', headers: [['Content-Length', '100000']] }, { body: randomBytes(100_000) });
    expect(ex.status).toBe(500);
    expect(ex.getBody).toEqual([...Array(11).fill(8186), 1768]); // asked ahead before the app failed
    expect(ex.asksAfterEnd).toBe(0);
    expect(ex.end).toEqual({ reuse: true });
    c.send(encodeCPing());
    expect(await c.next()).toEqual({ type: 'cpong' });
    const body = randomBytes(20_000);
    const next = await c.exchange({ method: 'POST', requestUri: '/echo', headers: [['Content-Length', '20000']] }, { body });
    expect(json(next.body)).toMatchObject({ bodyLength: 20_000, bodySha256: sha256(body) });
    expect(next.end).toEqual({ reuse: true });
  });

  it('chunked: one GET_BODY_CHUNK outstanding at a time (the end of the body is not known)', async () => {
    const s = await serve(echoApp);
    const c = await s.connect();
    c.send(encodeForwardRequest({ method: 'POST', requestUri: '/chunked-one', headers: [['Transfer-Encoding', 'chunked']] }));
    for (let i = 0; i < 3; i++) {
      const got = await c.quietFor(100);
      expect(got).toEqual([{ type: 'get-body', size: 8186 }]);
      c.send(encodeBodyPacket(randomBytes(3000)));
    }
    expect(await c.quietFor(100)).toEqual([{ type: 'get-body', size: 8186 }]);
    c.send(encodeBodyPacket(new Uint8Array(0)));
    expect(await c.next()).toMatchObject({ type: 'headers', status: 200 });
  });
});

describe('response writes', () => {
  async function oneRequest(app: App, init: ForwardRequestInit, ajp: AjpOptions = {}, after?: Uint8Array): Promise<WireSocket> {
    const { log } = memoryLogger();
    const gw = new Gateway({ app, log, protocol: 'ajp' });
    const ps = createAjpServer(gw, ajp);
    const sock = new WireSocket();
    ps.server.emit('connection', sock);
    sock.emit('data', Buffer.concat([encodeForwardRequest(init), after ?? new Uint8Array(0)]));
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    return sock;
  }

  it('a small response is one write of one buffer: SEND_HEADERS, SEND_BODY_CHUNK, END_RESPONSE', async () => {
    const sock = await oneRequest((_e, sr) => {
      sr('200 OK', [['Content-Type', 'text/plain'], ['Content-Length', '13']]);
      return ['Hello, world!'];
    }, get('/hello'));
    expect(sock.writes).toHaveLength(1);
    expect(sock.writes[0]).toHaveLength(1);
    expect(sock.writes[0]![0]!.toString('hex')).toBe(
      '41420020' + '0400c8' + '00024f4b00' + '0002' + 'a001000a746578742f706c61696e00' + 'a003' + '0002' + '3133' + '00' +
        '41420011' + '03000d' + Buffer.from('Hello, world!').toString('hex') + '00' + '414200020501',
    );
  });

  it('1 MiB in 8 KiB packets is one writev of 259 pieces: 129 views of the body between 130 small ones', async () => {
    const big = new Uint8Array(1048576).fill(0x78);
    const sock = await oneRequest((_e, sr) => {
      sr('200 OK', [['Content-Type', 'application/octet-stream']]);
      return [big];
    }, get('/big'));
    expect(sock.writes).toHaveLength(1);
    const pieces = sock.writes[0]!;
    expect(pieces).toHaveLength(259);
    const views = pieces.filter((p) => p.buffer === big.buffer);
    expect(views).toHaveLength(129);
    expect(views.slice(0, -1).every((v) => v.length === 8184)).toBe(true);
    expect(Buffer.concat(pieces).subarray(-7).toString('hex')).toBe('00' + '414200020501');
  });

  it('the GET_BODY_CHUNKs asked ahead go in one write', async () => {
    const sock = await oneRequest(echoApp, { method: 'POST', requestUri: '/up', headers: [['Content-Length', '100000']] }, {}, encodeBodyPacket(new Uint8Array(8186)));
    expect(sock.writes).toHaveLength(1);
    const asks: number[] = [];
    new PacketDecoder({ magic: 'container' }).push(Buffer.concat(sock.writes[0]!), (p) => {
      const packet = decodeContainerPacket(p);
      if (packet.type === 'get-body') asks.push(packet.size);
    });
    expect(asks).toEqual([...Array(11).fill(8186), 1768]);
  });

  it('a streamed body: one write per chunk, each its SEND_BODY_CHUNK in one buffer, then END_RESPONSE', async () => {
    const sock = await oneRequest((_e, sr) => {
      sr('200 OK', [['Content-Type', 'text/plain']]);
      return (function* () {
        yield 'a';
        yield 'bc';
      })();
    }, get('/stream'));
    const types = sock.writes.map((w) => {
      const out: string[] = [];
      new PacketDecoder({ magic: 'container' }).push(Buffer.concat(w), (p) => out.push(decodeContainerPacket(p).type));
      return out.join('+');
    });
    // A generator is not read ahead: the first chunk goes with the headers, the end after the last.
    expect(types).toEqual(['headers+body', 'body', 'end']);
  });
});

describe('secretMatches', () => {
  it('equal strings match; any other string, longer, shorter, empty or missing, does not', () => {
    expect(secretMatches('s3cr3t', 's3cr3t')).toBe(true);
    expect(secretMatches('', '')).toBe(true);
    for (const given of ['s3cr3T', 's3cr3', 's3cr3tt', 's3cr3t\0', '', 'x'.repeat(1000)]) expect(secretMatches('s3cr3t', given)).toBe(false);
    expect(secretMatches('s3cr3t', undefined)).toBe(false);
    expect(secretMatches('', undefined)).toBe(false);
    expect(secretMatches('', 'a')).toBe(false);
    expect(secretMatches('\u00e9t\u00e9', '\u00e9t\u00e9')).toBe(true);
  });
});
