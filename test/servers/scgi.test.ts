// Real web servers in front of bin/tsgi over SCGI: nginx (scgi_pass over TCP and a Unix socket),
// Apache httpd (mod_proxy_scgi, over TCP and a Unix socket) and lighttpd (mod_scgi). Each server
// runs from a generated config in a temp dir on free loopback ports and is stopped by pid in
// afterAll; curl and node:http are the clients, and a byte tap shows what each server sends.
// The app is test/fixtures/apps/scgi-routes.mjs (fcgi-routes.mjs under its own name: it routes
// on PATH_INFO). docs/scgi.md shows the same configs.

import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apacheBinary, apacheCompiledIn, apacheModuleCandidates, startApache } from './helpers/apache.js';
import { curl, type CurlResult } from './helpers/curl.js';
import { freePorts, sleep, stopAllDaemons, waitUntil, within } from './helpers/daemon.js';
import { currentUser, isRoot, lookupUser, makeTempDir, removeTempDirs, type UserInfo } from './helpers/fs-access.js';
import { get, openResponse } from './helpers/http-stream.js';
import { startLighttpd } from './helpers/lighttpd.js';
import { nginxVersion, startNginx, type WebServer } from './helpers/nginx.js';
import { downloadSha256, KiB, MiB, writeRandomFile } from './helpers/payload.js';
import { describeWith, Requirements } from './helpers/require.js';
import { exchange, type ScgiSeen, type ScgiTapWire, scgiRequest, scgiTapWire, type Target } from './helpers/scgi-wire.js';
import { startTap, type Tap } from './helpers/tap.js';
import { startTsgi, type Tsgi } from './helpers/tsgi.js';

const ROUTES = 'test/fixtures/apps/scgi-routes.mjs';
const BIG = 100 * MiB;
const CHUNKED = 8 * MiB + 123;
const CONCURRENT = 100;

afterAll(async () => {
  // Safety net: each suite stops its own processes; anything left is stopped by pid here.
  await stopAllDaemons();
  removeTempDirs();
});

// ---------------------------------------------------------------------------------------------
// Request bodies, written once to disk (never held in memory) with their sha256.

interface Payload {
  file: string;
  size: number;
  sha256: string;
}

type PayloadName = 'empty' | 'kib' | 'big' | 'chunked';
let payloadCache: Record<PayloadName, Payload> | undefined;

function payloads(): Record<PayloadName, Payload> {
  if (payloadCache) return payloadCache;
  const dir = makeTempDir('scgi-payload');
  const make = (name: string, size: number): Payload => {
    const file = path.join(dir, name);
    return { file, size, sha256: writeRandomFile(file, size) };
  };
  payloadCache = { empty: make('empty', 0), kib: make('kib', KiB), big: make('big', BIG), chunked: make('chunked', CHUNKED) };
  return payloadCache;
}

// ---------------------------------------------------------------------------------------------
// The checks every front end goes through. A Variant is one way of reaching tsgi; its URLs are
// known once the servers run (functions), its traits when the suite is defined.

interface Variant {
  label: string;
  /** URL of `p` under the mount: `p` is what the app sees as PATH_INFO (plus a query). */
  url(p: string): string;
  /** SCRIPT_NAME the app sees: where it is mounted. */
  mount: string;
  port(): number;
  /** The tsgi process behind it (its per-process counters are read back). */
  tsgi(): Tsgi;
  /** Where responses are passed on as they come (nginx scgi_buffering off, ...). */
  streamingUrl?: (p: string) => string;
  /** Where an endless response reaches the client at all (default `url`). */
  hangUpUrl?: (p: string) => string;
  /** What the server does with a chunked upload (no Content-Length from the client). */
  chunked: Array<{ how: string; url: (p: string) => string; outcome: 'buffered' | 411 }>;
  /** The client sees the app's own reason phrase. */
  keepsReason: boolean;
  /** A HEAD response keeps the app's Content-Length. */
  headKeepsLength: boolean;
  /**
   * What the client gets when the app fails after the headers (tsgi resets a TCP connection; a
   * Unix socket can only be closed, which reads as the end): 'incomplete' when it can tell,
   * 'complete' when the server hands over the part it had as a whole response. At `url()` with
   * the app's Content-Length, without one, and at `streamingUrl()` without one.
   */
  broken: { length: Broken; noLength: Broken; streaming?: Broken };
}

type Broken = 'incomplete' | 'complete';

function json(r: CurlResult): Record<string, unknown> {
  expect(r.exitCode, `curl: ${r.stderr}`).toBe(0);
  try {
    return JSON.parse(r.body.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new Error(`not JSON (status ${r.status}): ${r.body.subarray(0, 300).toString('latin1')}`);
  }
}

async function foreverStats(v: Variant): Promise<{ started: number; closed: number; aborted: number }> {
  return json(await curl(v.url('/forever-stats'))) as { started: number; closed: number; aborted: number };
}

function suite(v: Variant): void {
  it('environ: method, raw query, UTF-8 path as latin-1 bytes, SCRIPT_NAME at the mount, PATH_INFO the rest', async () => {
    const env = json(await curl(v.url('/env/caf%C3%A9/x%20y?a=1&b=%20&c=%C3%A9&d=%2F')));
    expect(env).toMatchObject({
      REQUEST_METHOD: 'GET',
      QUERY_STRING: 'a=1&b=%20&c=%C3%A9&d=%2F',
      SCRIPT_NAME: v.mount,
      PATH_INFO: '/env/caf\u00c3\u00a9/x y',
      REQUEST_URI: `${v.mount}/env/caf%C3%A9/x%20y?a=1&b=%20&c=%C3%A9&d=%2F`,
      SERVER_PROTOCOL: 'HTTP/1.1',
      SERVER_PORT: String(v.port()),
      REMOTE_ADDR: '127.0.0.1',
      SCGI: '1',
      CONTENT_LENGTH: '0',
      'wsgi.url_scheme': 'http',
      'tsgi.protocol': 'scgi',
    });
  });

  it('environ: HTTP_* headers as sent, repeated ones joined, "Proxy:" never HTTP_PROXY', async () => {
    const env = json(
      await curl(v.url('/env/h'), {
        headers: ['X-Repeat: one', 'X-Repeat: two', 'X-Custom-Thing: ve', 'User-Agent: tsgi-tests/1', 'Proxy: http://evil.test:3128'],
      }),
    );
    expect(env).toMatchObject({ HTTP_X_CUSTOM_THING: 've', HTTP_USER_AGENT: 'tsgi-tests/1', HTTP_X_REPEAT: 'one, two' });
    expect(env).not.toHaveProperty('HTTP_PROXY');
  });

  it('environ: CONTENT_TYPE and CONTENT_LENGTH of a POST and a PUT', async () => {
    const post = json(
      await curl(v.url('/env/post'), { method: 'POST', data: 'a=1&b=2', headers: ['Content-Type: application/x-www-form-urlencoded; charset=utf-8'] }),
    );
    expect(post).toMatchObject({ REQUEST_METHOD: 'POST', CONTENT_TYPE: 'application/x-www-form-urlencoded; charset=utf-8', CONTENT_LENGTH: '7' });
    const put = json(await curl(v.url('/env/put'), { method: 'PUT', data: 'x'.repeat(300), headers: ['Content-Type: text/plain'] }));
    expect(put).toMatchObject({ REQUEST_METHOD: 'PUT', CONTENT_TYPE: 'text/plain', CONTENT_LENGTH: '300' });
  });

  for (const [name, label] of [
    ['empty', '0 B'],
    ['kib', '1 KiB'],
    ['big', '100 MiB'],
  ] as const) {
    it(`upload of ${label} arrives intact (streamed from a file, sha256)`, async () => {
      const p = payloads()[name];
      const r = await curl(v.url('/upload'), { method: 'POST', uploadFile: p.file, headers: ['Content-Type: application/octet-stream'], timeoutMs: 90_000 });
      const seen = json(r);
      expect(r.status).toBe(200);
      expect(seen).toMatchObject({ length: p.size, sha256: p.sha256, contentType: 'application/octet-stream', contentLength: String(p.size) });
    });
  }

  for (const c of v.chunked) {
    it(`chunked upload without Content-Length (${c.how}): ${c.outcome === 411 ? '411 Length Required' : 'buffered, arrives intact with CONTENT_LENGTH'}`, async () => {
      const p = payloads().chunked;
      const r = await curl(c.url('/upload'), { method: 'POST', uploadFile: p.file, chunked: true, timeoutMs: 60_000 });
      if (c.outcome === 411) {
        // SCGI puts CONTENT_LENGTH before the body: a server that will not buffer must refuse.
        expect(r.status).toBe(411);
        return;
      }
      expect(r.status).toBe(200);
      expect(json(r)).toMatchObject({ length: p.size, sha256: p.sha256, contentLength: String(p.size) });
    });
  }

  it('100 MiB download arrives intact (sha256 while streaming)', async () => {
    const r = await curl(v.url(`/download?n=${BIG}`), { keepBytes: 0, timeoutMs: 90_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.status).toBe(200);
    expect(r.bytes).toBe(BIG);
    expect(r.sha256).toBe(downloadSha256(BIG));
  });

  it.runIf(v.streamingUrl)('streaming: the first chunk reaches the client long before the last', async () => {
    const flag = path.join(makeTempDir('scgi-flag'), 'go');
    const res = await openResponse(v.streamingUrl!(`/stream?file=${encodeURIComponent(flag)}`));
    expect(res.status).toBe(200);
    await res.waitFor((b) => b.toString().includes('first\n'), 5_000, 'the first chunk while the app waits');
    // The app is parked until the file exists: everything so far was streamed, not buffered.
    expect(res.body().toString()).toBe('first\n');
    const firstAt = res.arrivals[0]!;
    await sleep(400);
    fs.writeFileSync(flag, '');
    await res.waitFor((b) => b.toString() === 'first\nrest\n', 5_000, 'the rest once the app resumed');
    expect((await within(res.ended, 5_000, 'end of the response')).complete).toBe(true);
    expect(res.arrivals[res.arrivals.length - 1]! - firstAt).toBeGreaterThanOrEqual(350);
  });

  it('several Set-Cookie headers stay separate', async () => {
    const r = await curl(v.url('/cookies'));
    expect(r.status).toBe(200);
    expect(r.header('set-cookie')).toEqual(['a=1; Path=/', 'b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT', 'c=3; HttpOnly']);
  });

  it(`statuses keep their code${v.keepsReason ? ' and reason' : ' (the server writes its own reason)'}: 418, 201, 299 Custom Reason`, async () => {
    for (const [code, reason] of [
      [418, "I'm a teapot"],
      [201, 'Created'],
      [299, 'Custom Reason'],
    ] as const) {
      const r = await curl(v.url(`/status?s=${encodeURIComponent(`${code} ${reason}`)}`));
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.status).toBe(code);
      if (v.keepsReason) expect(r.reason).toBe(reason);
      expect(r.body.toString()).toBe(`status ${code} ${reason}\n`);
    }
  });

  it(`HEAD: status and headers, no body${v.headKeepsLength ? ', Content-Length kept' : ' (the server drops Content-Length)'}`, async () => {
    const r = await curl(v.url('/head'), { head: true });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.status).toBe(200);
    expect(r.header('x-method')).toEqual(['HEAD']);
    expect(r.header('content-length')).toEqual(v.headKeepsLength ? ['12'] : []);
    // (curl -I writes the head where the body would go: nothing else may follow it.)
    expect(r.body.toString()).not.toContain('hello');
    const g = await curl(v.url('/head'));
    expect(g.body.toString()).toBe('hello world\n');
  });

  it('an app error before the headers becomes a 500 without details', async () => {
    const r = await curl(v.url('/error-before'));
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.status).toBe(500);
    expect(r.body.toString()).not.toContain('secret-detail');
  });

  const brokenTitle = (b: Broken) =>
    b === 'incomplete' ? 'the client sees it incomplete' : 'NOT visible: the client gets the part sent as a complete response';
  const brokenCases: Array<[string, Broken | undefined, () => string, 'length' | 'none' | 'streaming']> = [
    ['Content-Length 100', v.broken.length, () => v.url('/error-after?length=100'), 'length'],
    ['no Content-Length', v.broken.noLength, () => v.url('/error-after'), 'none'],
    ['no Content-Length, where responses stream', v.broken.streaming, () => v.streamingUrl!('/error-after'), 'streaming'],
  ];
  for (const [how, outcome, url, kind] of brokenCases) {
    if (!outcome) continue;
    it(`an app error after the headers (${how}): ${brokenTitle(outcome)}`, async () => {
      const r = await curl(url(), { timeoutMs: 20_000 });
      const seen = `curl exit ${r.exitCode} after ${Math.round(r.ms)} ms: ${r.stderr.trim()}; body ${JSON.stringify(r.body.toString())}; content-length ${JSON.stringify(r.header('content-length'))}`;
      expect(r.status).toBe(200);
      if (kind === 'length') expect(r.bytes).toBeLessThan(100);
      // What was sent before the error passes through where responses stream.
      if (kind === 'streaming') expect(r.body.toString(), seen).toBe('partial-body\n');
      if (outcome === 'incomplete') {
        // 18: "transfer closed with N bytes remaining" / "with outstanding read data remaining".
        expect(r.exitCode, seen).toBe(18);
      } else {
        expect(r.exitCode, seen).toBe(0);
        expect(r.body.toString(), seen).toBe('partial-body\n');
      }
      console.log(`[${v.label}] app error after the headers, ${how}: ${seen}`);
    });
  }

  it(`${CONCURRENT} concurrent requests are all answered, each with its own answer`, async () => {
    const rs = await Promise.all(Array.from({ length: CONCURRENT }, (_, i) => get(v.url(`/sleep/${i}?ms=200&id=${i}`), { ms: 60_000 })));
    for (const [i, r] of rs.entries()) {
      expect(r.status, r.body.toString()).toBe(200);
      expect(JSON.parse(r.body.toString())).toEqual({ id: String(i), pathInfo: `/sleep/${i}`, query: `ms=200&id=${i}` });
    }
  });

  it('a client that hangs up mid-response: tsgi.signal aborted, close() called, the next request served', async () => {
    const before = await foreverStats(v);
    const res = await openResponse((v.hangUpUrl ?? v.url)('/forever'));
    expect(res.status).toBe(200);
    await res.waitFor((b) => b.length >= 256 * KiB, 10_000, 'part of the endless body');
    res.destroy();
    await waitUntil(
      async () => {
        const s = await foreverStats(v);
        return s.closed > before.closed && s.aborted > before.aborted;
      },
      15_000,
      'the app to see the hang-up (tsgi.signal aborted, close() called)',
    );
    const after = await foreverStats(v);
    // Exactly one more of each: close() once, for the one response that was cut.
    expect(after.closed - before.closed).toBe(after.started - before.started);
    expect(json(await curl(v.url('/env/after-hangup'))).PATH_INFO).toBe('/env/after-hangup');
    expect(v.tsgi().daemon.hasExited()).toBe(false);
  });
}

/** Each connection the tap saw for these requests: one request each, CONTENT_LENGTH first, a whole response. */
function expectOneRequestPerConnection(wire: ScgiTapWire, tap: Tap, from: number, n: number): ScgiSeen[] {
  const seen = wire.seen.filter((s) => s.conn.id > from);
  expect(seen).toHaveLength(n);
  // Who closes first is a race once the response is whole (a server may close as soon as it has
  // Content-Length bytes): what matters is that the whole response came back before any close.
  for (const s of seen) {
    expect(s.error).toBeUndefined();
    expect(s.pairs![0]![0]).toBe('CONTENT_LENGTH');
    expect(wire.value(s, 'SCGI')).toBe('1');
    expect(s.bodyBytes).toBe(Number(wire.value(s, 'CONTENT_LENGTH')));
    expect(s.status).toBe(200);
  }
  expect(tap.connections.filter((c) => c.id > from)).toHaveLength(n);
  return seen;
}

function describeSeen(wire: ScgiTapWire, s: ScgiSeen): string {
  const names = s.pairs!.map(([n]) => n);
  return `conn ${s.conn.id}: ${s.headBytes} B netstring, ${names.length} pairs [${names.join(' ')}], body ${s.bodyBytes} B, status ${s.status}, ${s.responseBytes} B back, first FIN from ${s.conn.firstFin === 'down' ? 'tsgi' : 'the web server'}`;
}

/** What came back from tsgi's own socket for bytes no web server would send. */
async function expectRefused(target: Target, bytes: Buffer, status: number): Promise<void> {
  const x = await exchange(target, { send: bytes, timeoutMs: 5_000 });
  expect(x.head?.status, x.bytes.subarray(0, 200).toString('latin1')).toBe(status);
  expect(x.end).toBe('fin');
}

const GARBAGE: Array<[string, Buffer]> = [
  ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
  ['random bytes', Buffer.alloc(4096, 0xff)],
  ['a netstring without its ","', Buffer.from('24:CONTENT_LENGTH\x000\x00SCGI\x001\x00;', 'latin1')],
  ['a netstring without SCGI=1', Buffer.from('17:CONTENT_LENGTH\x000\x00,', 'latin1')],
];

// =============================================================================================
// nginx

const nginxReq = new Requirements().binary('nginx', 'apt-get install nginx-light').binary('curl', 'apt-get install curl');

/** The params every nginx location includes (nginx puts CONTENT_LENGTH first by itself). */
const NGINX_PARAMS = `scgi_param REQUEST_METHOD    $request_method;
scgi_param REQUEST_URI       $request_uri;
scgi_param QUERY_STRING      $query_string;
scgi_param CONTENT_TYPE      $content_type;
scgi_param SERVER_PROTOCOL   $server_protocol;
scgi_param REQUEST_SCHEME    $scheme;
scgi_param HTTPS             $https if_not_empty;
scgi_param SERVER_NAME       $host;
scgi_param SERVER_PORT       $server_port;
scgi_param SERVER_ADDR       $server_addr;
scgi_param REMOTE_ADDR       $remote_addr;
scgi_param REMOTE_PORT       $remote_port;
scgi_param SERVER_SOFTWARE   nginx/$nginx_version;
# Required by the SCGI spec; nginx does not add it (tsgi answers 400 without it).
scgi_param SCGI              1;
`;

/** One nginx server block: the app at / and mounted at /app, /unbuffered and /request-unbuffered. */
function nginxServer(port: number, pass: string, params: string): string {
  const mounted = (prefix: string, extra: string) => `
  location ~ ^${prefix}(?<path_info>/.*)$ {
    include ${params};
    # Mounted at ${prefix}: SCRIPT_NAME ${prefix}, PATH_INFO the rest of the decoded path.
    scgi_param SCRIPT_NAME ${prefix};
    scgi_param PATH_INFO $path_info;${extra}
    scgi_pass ${pass};
  }`;
  return `
server {
  listen 127.0.0.1:${port};
  location / {
    include ${params};
    # The app at the root: PATH_INFO is the whole decoded path.
    scgi_param SCRIPT_NAME "";
    scgi_param PATH_INFO $uri;
    scgi_pass ${pass};
  }${mounted('/app', '')}${mounted(
    '/unbuffered',
    `
    # Responses go out as they come.
    scgi_buffering off;`,
  )}${mounted(
    '/request-unbuffered',
    `
    # Do not: nginx then sends as CONTENT_LENGTH only the part of the body it had read when it
    # connected, and the app gets a short body (see the test "scgi_request_buffering off").
    scgi_request_buffering off;`,
  )}
}`;
}

describeWith('nginx → tsgi SCGI', nginxReq, () => {
  const [major, minor] = nginxVersion();
  const ctx = {} as {
    dir: string;
    tcp: Tsgi;
    unix: Tsgi;
    small: Tsgi;
    nginx: WebServer;
    ports: Record<'tcp' | 'unix' | 'tap' | 'small' | 'noScgi', number>;
    tap: Tap;
    wire: ScgiTapWire;
  };

  beforeAll(async () => {
    ctx.dir = makeTempDir('nginx-scgi');
    payloads();
    ctx.tcp = await startTsgi({ app: ROUTES, protocol: 'scgi' });
    ctx.unix = await startTsgi({ app: ROUTES, protocol: 'scgi', socket: path.join(ctx.dir, 'tsgi.sock') });
    // A tsgi with a small head limit: nginx's netstring for a request with big headers passes it.
    ctx.small = await startTsgi({ app: ROUTES, protocol: 'scgi', args: ['--max-header-size', '4k'] });
    ctx.wire = scgiTapWire();
    ctx.tap = await startTap(ctx.tcp.endpoint, ctx.wire.observe);
    const [tcp, unix, tap, small, noScgi] = await freePorts(5);
    ctx.ports = { tcp: tcp!, unix: unix!, tap: tap!, small: small!, noScgi: noScgi! };
    const params = path.join(ctx.dir, 'tsgi_scgi_params');
    fs.writeFileSync(params, NGINX_PARAMS);
    const noScgiParams = path.join(ctx.dir, 'params_without_scgi');
    fs.writeFileSync(noScgiParams, NGINX_PARAMS.replace(/^scgi_param SCGI .*$/m, ''));
    const tcpPort = (ctx.tcp.endpoint as { port: number }).port;
    const sock = (ctx.unix.endpoint as { path: string }).path;
    const http = `
${nginxServer(ctx.ports.tcp, `127.0.0.1:${tcpPort}`, params)}
${nginxServer(ctx.ports.unix, `unix:${sock}`, params)}
${nginxServer(ctx.ports.tap, `127.0.0.1:${ctx.tap.port}`, params)}
${nginxServer(ctx.ports.small, `127.0.0.1:${(ctx.small.endpoint as { port: number }).port}`, params)}
${nginxServer(ctx.ports.noScgi, `127.0.0.1:${tcpPort}`, noScgiParams)}
`;
    ctx.nginx = await startNginx({ dir: ctx.dir, http, ports: Object.values(ctx.ports) });
  });

  afterAll(async () => {
    await ctx.nginx?.daemon.stop();
    await ctx.tap?.close();
    for (const t of [ctx.tcp, ctx.unix, ctx.small]) await t?.daemon.stop();
  });

  for (const [label, key] of [
    ['scgi_pass over TCP', 'tcp'],
    ['scgi_pass over a Unix socket', 'unix'],
  ] as const) {
    describe(label, () => {
      const base = () => `http://127.0.0.1:${ctx.ports[key]}`;
      suite({
        label: `nginx ${label}`,
        url: (p) => `${base()}/app${p}`,
        mount: '/app',
        port: () => ctx.ports[key],
        tsgi: () => ctx[key],
        streamingUrl: (p) => `${base()}/unbuffered${p}`,
        chunked: [
          { how: 'nginx buffers it (default)', url: (p) => `${base()}/app${p}`, outcome: 'buffered' },
          { how: 'scgi_request_buffering off: nginx still buffers a chunked body', url: (p) => `${base()}/request-unbuffered${p}`, outcome: 'buffered' },
        ],
        keepsReason: true,
        headKeepsLength: true,
        // Over TCP tsgi resets the connection and nginx passes the break on. A Unix socket has no
        // reset: without a Content-Length to fall short of, nginx takes the close for the end.
        broken:
          key === 'tcp'
            ? { length: 'incomplete', noLength: 'incomplete', streaming: 'incomplete' }
            : { length: 'incomplete', noLength: 'complete', streaming: 'complete' },
      });

      it('the app at the root: SCRIPT_NAME "", PATH_INFO the whole decoded path', async () => {
        const env = json(await curl(`${base()}/env/caf%C3%A9?q=%C3%A9`));
        expect(env).toMatchObject({ SCRIPT_NAME: '', PATH_INFO: '/env/caf\u00c3\u00a9', QUERY_STRING: 'q=%C3%A9', REQUEST_URI: '/env/caf%C3%A9?q=%C3%A9' });
      });

      // nginx's bug, not tsgi's: ngx_http_scgi_create_request sums the request buffers it holds
      // when it connects, and with scgi_request_buffering off that is only what was read so far
      // (it passes the client's Content-Length on as HTTP_CONTENT_LENGTH all the same). tsgi
      // cannot make the body whole, but it says so in its log.
      it('scgi_request_buffering off: nginx sends a CONTENT_LENGTH short of the body; tsgi logs TSGI_SCGI_BODY_OVERRUN', async () => {
        const p = payloads().chunked;
        const t = ctx[key];
        const overruns = () => t.logRecords().filter((l) => l.code === 'TSGI_SCGI_BODY_OVERRUN').length;
        const before = overruns();
        const seen = json(await curl(`${base()}/request-unbuffered/upload`, { method: 'POST', uploadFile: p.file, timeoutMs: 60_000 }));
        expect(seen.length).toBeLessThan(p.size);
        expect(seen.contentLength).toBe(String(seen.length));
        await waitUntil(() => overruns() > before, 5_000, 'the overrun warning in tsgi\'s log');
        console.log(`[nginx ${major}.${minor} scgi_request_buffering off] a ${p.size} B upload: the app got CONTENT_LENGTH ${String(seen.contentLength)}`);
      });
    });
  }

  it('the Unix socket is created with mode 0660 (the default of --socket-mode)', () => {
    const st = fs.statSync((ctx.unix.endpoint as { path: string }).path);
    expect(st.isSocket()).toBe(true);
    expect((st.mode & 0o777).toString(8)).toBe('660');
  });

  it('what nginx sends: CONTENT_LENGTH first, one connection per request, tsgi closes it', async () => {
    ctx.wire.clear();
    const from = ctx.tap.connections.length;
    const base = `http://127.0.0.1:${ctx.ports.tap}`;
    json(await curl(`${base}/app/env/a`, { headers: ['X-Repeat: one', 'X-Repeat: two', 'Proxy: http://evil.test'] }));
    json(await curl(`${base}/app/upload`, { method: 'POST', data: 'x'.repeat(100_000) }));
    await waitUntil(() => ctx.tap.connections.slice(from).every((c) => c.closed), 5_000, 'connections to close');
    const [g, p] = expectOneRequestPerConnection(ctx.wire, ctx.tap, from, 2);
    expect(ctx.wire.value(p!, 'CONTENT_LENGTH')).toBe('100000');
    expect(ctx.wire.value(g!, 'CONTENT_LENGTH')).toBe('0');
    // nginx before 1.23 sends a repeated header as repeated pairs (tsgi joins them); it passes
    // "Proxy:" on as HTTP_PROXY (tsgi drops it).
    const repeats = g!.pairs!.filter(([n]) => n === 'HTTP_X_REPEAT').length;
    expect(repeats).toBe(major > 1 || minor >= 23 ? 1 : 2);
    expect(ctx.wire.value(g!, 'HTTP_PROXY')).toBe('http://evil.test');
    console.log(`[nginx ${major}.${minor}]\n  ${[g!, p!].map((s) => describeSeen(ctx.wire, s)).join('\n  ')}`);
  });

  it('a location without "scgi_param SCGI 1": tsgi answers 400, nginx passes it on', async () => {
    const r = await curl(`http://127.0.0.1:${ctx.ports.noScgi}/app/env/x`);
    expect(r.status).toBe(400);
    expect(r.body.toString()).toContain('SCGI');
  });

  it('garbage and malformed netstrings on tsgi\'s TCP port and Unix socket: 400, then nginx is still served', async () => {
    for (const t of [ctx.tcp, ctx.unix]) {
      for (const [, bytes] of GARBAGE) await expectRefused(t.endpoint, bytes, 400);
    }
    for (const key of ['tcp', 'unix'] as const) {
      const env = json(await curl(`http://127.0.0.1:${ctx.ports[key]}/app/env/after-garbage`));
      expect(env.PATH_INFO).toBe('/env/after-garbage');
    }
    expect(ctx.tcp.daemon.hasExited()).toBe(false);
    expect(ctx.unix.daemon.hasExited()).toBe(false);
  });

  it('a netstring over --max-header-size is answered 431: straight to tsgi, and through nginx', async () => {
    await expectRefused(ctx.small.endpoint, Buffer.from('5000:', 'latin1'), 431);
    await expectRefused(ctx.small.endpoint, scgiRequest({ HTTP_X_BIG: 'v'.repeat(5000) }), 431);
    const base = `http://127.0.0.1:${ctx.ports.small}`;
    const r = await curl(`${base}/app/env/big`, { headers: [`X-Big: ${'v'.repeat(5000)}`] });
    expect(r.status).toBe(431);
    expect(r.reason).toBe('Request Header Fields Too Large');
    // Under the limit, the same tsgi answers.
    expect(json(await curl(`${base}/app/env/small`)).PATH_INFO).toBe('/env/small');
  });
});

// =============================================================================================
// Apache httpd: mod_proxy_scgi to a running tsgi.

const APACHE_MODULES = ['proxy', 'proxy_scgi', 'setenvif', 'mpm_event', 'authz_core', 'unixd'];
const apacheBin = apacheBinary();
const apacheReq = new Requirements()
  .check(apacheBin ? undefined : 'apache2 (or httpd) not found on PATH (apt-get install apache2)')
  .binary('curl', 'apt-get install curl');
if (apacheBin) {
  const compiled = apacheCompiledIn(apacheBin);
  for (const m of APACHE_MODULES) {
    if (compiled.includes(`mod_${m}.c`)) continue;
    apacheReq.file(`mod_${m}`, apacheModuleCandidates(m), 'apt-get install apache2');
  }
}
if (isRoot()) apacheReq.check(lookupUser('www-data') ? undefined : 'user www-data does not exist (Apache drops to it when started as root)');

describeWith('Apache httpd → tsgi SCGI (mod_proxy_scgi)', apacheReq, () => {
  const ctx = {} as {
    dir: string;
    user: UserInfo;
    tcp: Tsgi;
    unix: Tsgi;
    tap: Tap;
    wire: ScgiTapWire;
    apache: WebServer;
    port: number;
    rootPort: number;
  };

  beforeAll(async () => {
    ctx.dir = makeTempDir('apache-scgi');
    payloads();
    ctx.user = isRoot() ? lookupUser('www-data')! : currentUser();
    ctx.tcp = await startTsgi({ app: ROUTES, protocol: 'scgi' });
    // Apache's workers (www-data) connect to this socket; tsgi runs as root here, so the socket
    // is opened to everyone with --socket-mode (a deployment runs tsgi in www-data's group, 0660).
    const sockDir = path.join(ctx.dir, 'sock');
    fs.mkdirSync(sockDir, { mode: 0o755 });
    ctx.unix = await startTsgi({ app: ROUTES, protocol: 'scgi', socket: path.join(sockDir, 'tsgi.sock'), args: ['--socket-mode', '666'] });
    ctx.wire = scgiTapWire();
    ctx.tap = await startTap(ctx.tcp.endpoint, ctx.wire.observe);
    [ctx.port, ctx.rootPort] = (await freePorts(2)) as [number, number];
    const tcp = (ctx.tcp.endpoint as { port: number }).port;
    const sock = (ctx.unix.endpoint as { path: string }).path;
    const body = `
# After a backend breaks off mid-body Apache leaves the client connection open, the chunked body
# unterminated, until KeepAliveTimeout (default 5 s): only then does the client see it incomplete.
KeepAliveTimeout 1

# tsgi on TCP, mounted at /app: the path below the ProxyPass target becomes PATH_INFO.
ProxyPass "/app/" "scgi://127.0.0.1:${tcp}/"
# tsgi on a Unix socket.
ProxyPass "/unix/" "unix:${sock}|scgi://localhost/"
# With proxy-scgi-pathinfo (set before mod_proxy maps the URL, hence SetEnvIf), Apache also
# sends a PATH_INFO, still percent-encoded; tsgi gives the app the same split either way.
SetEnvIf Request_URI "^/pathinfo/" proxy-scgi-pathinfo=1
ProxyPass "/pathinfo/" "scgi://127.0.0.1:${tcp}/"
# Through the test's tap, to see the netstrings.
ProxyPass "/tap/" "scgi://127.0.0.1:${ctx.tap.port}/"

# The app at the root of a second port.
<VirtualHost 127.0.0.1:${ctx.rootPort}>
  ProxyPass "/" "scgi://127.0.0.1:${tcp}/"
</VirtualHost>
`;
    ctx.apache = await startApache({
      bin: apacheBin!,
      dir: ctx.dir,
      ports: [ctx.port, ctx.rootPort],
      modules: ['proxy', 'proxy_scgi', 'setenvif'],
      user: ctx.user,
      body,
    });
  });

  afterAll(async () => {
    await ctx.apache?.daemon.stop();
    await ctx.tap?.close();
    for (const t of [ctx.tcp, ctx.unix]) await t?.daemon.stop();
  });

  const base = () => `http://127.0.0.1:${ctx.port}`;
  for (const [label, mount, key] of [
    ['mod_proxy_scgi over TCP', '/app', 'tcp'],
    ['mod_proxy_scgi over a Unix socket (--socket-mode 666)', '/unix', 'unix'],
  ] as const) {
    describe(label, () => {
      suite({
        label: `Apache ${label}`,
        url: (p) => `${base()}${mount}${p}`,
        mount,
        port: () => ctx.port,
        tsgi: () => ctx[key],
        // mod_proxy_scgi passes the response on as it reads it.
        streamingUrl: (p) => `${base()}${mount}${p}`,
        chunked: [{ how: 'mod_proxy_scgi refuses it (REQUEST_CHUNKED_ERROR)', url: (p) => `${base()}${mount}${p}`, outcome: 411 }],
        keepsReason: true,
        headKeepsLength: false,
        // Over a Unix socket (no reset), mod_proxy_scgi takes the close for the end of the body
        // even when it falls short of the Content-Length the app declared: it drops that header
        // and ends its chunked encoding as if all went well.
        broken:
          key === 'tcp'
            ? { length: 'incomplete', noLength: 'incomplete', streaming: 'incomplete' }
            : { length: 'complete', noLength: 'complete', streaming: 'complete' },
      });
    });
  }

  it('proxy-scgi-pathinfo (a PATH_INFO still percent-encoded from Apache): the app sees the same split', async () => {
    const env = json(await curl(`${base()}/pathinfo/env/caf%C3%A9/x%20y?q=1`));
    expect(env).toMatchObject({ SCRIPT_NAME: '/pathinfo', PATH_INFO: '/env/caf\u00c3\u00a9/x y', QUERY_STRING: 'q=1' });
  });

  it('the app at the root ("ProxyPass / scgi://..."): SCRIPT_NAME "", PATH_INFO the whole decoded path', async () => {
    const env = json(await curl(`http://127.0.0.1:${ctx.rootPort}/env/caf%C3%A9?q=1`));
    expect(env).toMatchObject({ SCRIPT_NAME: '', PATH_INFO: '/env/caf\u00c3\u00a9', SERVER_PORT: String(ctx.rootPort) });
    const up = json(await curl(`http://127.0.0.1:${ctx.rootPort}/upload`, { method: 'POST', data: 'abc' }));
    expect(up.length).toBe(3);
  });

  it('what mod_proxy_scgi sends: CONTENT_LENGTH first, the whole path as SCRIPT_NAME, the mount in SCRIPT_FILENAME', async () => {
    ctx.wire.clear();
    const from = ctx.tap.connections.length;
    json(await curl(`${base()}/tap/env/caf%C3%A9`, { headers: ['X-Repeat: one', 'X-Repeat: two', 'Proxy: http://evil.test'] }));
    json(await curl(`${base()}/tap/upload`, { method: 'POST', data: 'x'.repeat(100_000) }));
    await waitUntil(() => ctx.tap.connections.slice(from).every((c) => c.closed), 5_000, 'connections to close');
    const [g, p] = expectOneRequestPerConnection(ctx.wire, ctx.tap, from, 2);
    expect(g!.pairs!.slice(0, 2)).toEqual([
      ['CONTENT_LENGTH', '0'],
      ['SCGI', '1'],
    ]);
    // Apache joins repeated headers itself and drops "Proxy:" (httpoxy) before SCGI sees them.
    expect(ctx.wire.value(g!, 'HTTP_X_REPEAT')).toBe('one, two');
    expect(ctx.wire.value(g!, 'HTTP_PROXY')).toBeUndefined();
    // No PATH_INFO: SCRIPT_NAME is the whole path (decoded); the proxied URL names the mount.
    expect(ctx.wire.value(g!, 'PATH_INFO')).toBeUndefined();
    expect(ctx.wire.value(g!, 'SCRIPT_NAME')).toBe('/tap/env/caf\u00c3\u00a9');
    expect(ctx.wire.value(g!, 'SCRIPT_FILENAME')).toBe(`proxy:scgi://127.0.0.1:${ctx.tap.port}/env/caf%C3%A9`);
    console.log(`[apache mod_proxy_scgi]\n  ${[g!, p!].map((s) => describeSeen(ctx.wire, s)).join('\n  ')}`);
  });

  it('garbage on tsgi\'s socket: 400, and Apache is still served', async () => {
    for (const [, bytes] of GARBAGE) await expectRefused(ctx.tcp.endpoint, bytes, 400);
    expect(json(await curl(`${base()}/app/env/after-garbage`)).PATH_INFO).toBe('/env/after-garbage');
  });
});

// =============================================================================================
// lighttpd: mod_scgi.

const lighttpdReq = new Requirements().binary('lighttpd', 'apt-get install lighttpd').binary('curl', 'apt-get install curl');

describeWith('lighttpd → tsgi SCGI (mod_scgi)', lighttpdReq, () => {
  const ctx = {} as { dir: string; tcp: Tsgi; tap: Tap; wire: ScgiTapWire; lighttpd: WebServer; port: number };

  beforeAll(async () => {
    ctx.dir = makeTempDir('lighttpd-scgi');
    payloads();
    ctx.tcp = await startTsgi({ app: ROUTES, protocol: 'scgi' });
    ctx.wire = scgiTapWire();
    ctx.tap = await startTap(ctx.tcp.endpoint, ctx.wire.observe);
    [ctx.port] = (await freePorts(1)) as [number];
    const tcp = (ctx.tcp.endpoint as { port: number }).port;
    const body = `
# A prefix key ("/app") makes SCRIPT_NAME the prefix and PATH_INFO the rest; check-local
# "disable": there is no file to look for, everything under the prefix goes to tsgi.
scgi.server = (
  "/app" => ( "tsgi" => ( "host" => "127.0.0.1", "port" => ${tcp}, "check-local" => "disable" ) ),
  "/streaming" => ( "tsgi" => ( "host" => "127.0.0.1", "port" => ${tcp}, "check-local" => "disable" ) ),
  "/tap" => ( "tsgi" => ( "host" => "127.0.0.1", "port" => ${ctx.tap.port}, "check-local" => "disable" ) ),
)
$HTTP["url"] =~ "^/streaming/" {
  # Pass response and request bodies on as they come (default: buffer them whole). With a
  # buffered response, lighttpd hands a response the app broke off to the client as complete.
  server.stream-response-body = 2
  server.stream-request-body = 2
}
`;
    ctx.lighttpd = await startLighttpd({ dir: ctx.dir, port: ctx.port, modules: ['mod_scgi'], body });
  });

  afterAll(async () => {
    await ctx.lighttpd?.daemon.stop();
    await ctx.tap?.close();
    await ctx.tcp?.daemon.stop();
  });

  const base = () => `http://127.0.0.1:${ctx.port}`;
  describe('mod_scgi over TCP', () => {
    suite({
      label: 'lighttpd mod_scgi',
      url: (p) => `${base()}/app${p}`,
      mount: '/app',
      port: () => ctx.port,
      tsgi: () => ctx.tcp,
      streamingUrl: (p) => `${base()}/streaming${p}`,
      chunked: [
        { how: 'lighttpd buffers it (default)', url: (p) => `${base()}/app${p}`, outcome: 'buffered' },
        { how: 'server.stream-request-body = 2 refuses it', url: (p) => `${base()}/streaming${p}`, outcome: 411 },
      ],
      // lighttpd holds a buffered response until it is whole: an endless one never starts.
      hangUpUrl: (p) => `${base()}/streaming${p}`,
      keepsReason: false,
      headKeepsLength: true,
      // See the test below: lighttpd buffering the response sees the reset and still hands over
      // what it had, with a Content-Length of its own.
      broken: { length: 'incomplete', noLength: 'complete', streaming: 'incomplete' },
    });
  });

  // Not tsgi's doing: tsgi resets the connection, lighttpd sees it ("response already sent out,
  // but backend returned error ... terminating connection") and still sends the buffered part
  // with a Content-Length of its own. The same happens with FastCGI. The streaming location
  // (server.stream-response-body = 1 or 2) passes the break on: see the suite above.
  it('with a buffered response (the default), an app error after the headers reaches the client dressed as complete', async () => {
    const r = await curl(`${base()}/app/error-after`, { timeoutMs: 20_000 });
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('partial-body\n');
    expect(r.header('content-length')).toEqual(['13']);
    expect(r.exitCode).toBe(0);
    expect(fs.readFileSync(ctx.lighttpd.errorLog, 'utf8')).toContain('backend returned error');
  });

  it('what mod_scgi sends: CONTENT_LENGTH first, SCRIPT_NAME and PATH_INFO split, one connection per request', async () => {
    ctx.wire.clear();
    const from = ctx.tap.connections.length;
    json(await curl(`${base()}/tap/env/caf%C3%A9`, { headers: ['X-Repeat: one', 'X-Repeat: two', 'Proxy: http://evil.test'] }));
    json(await curl(`${base()}/tap/upload`, { method: 'POST', data: 'x'.repeat(100_000) }));
    await waitUntil(() => ctx.tap.connections.slice(from).every((c) => c.closed), 5_000, 'connections to close');
    const [g, p] = expectOneRequestPerConnection(ctx.wire, ctx.tap, from, 2);
    expect(ctx.wire.value(g!, 'SCRIPT_NAME')).toBe('/tap');
    expect(ctx.wire.value(g!, 'PATH_INFO')).toBe('/env/caf\u00c3\u00a9');
    expect(ctx.wire.value(g!, 'HTTP_X_REPEAT')).toBe('one, two');
    expect(ctx.wire.value(g!, 'HTTP_PROXY')).toBeUndefined();
    console.log(`[lighttpd mod_scgi]\n  ${[g!, p!].map((s) => describeSeen(ctx.wire, s)).join('\n  ')}`);
  });

  it('garbage on tsgi\'s socket: 400, and lighttpd is still served', async () => {
    for (const [, bytes] of GARBAGE) await expectRefused(ctx.tcp.endpoint, bytes, 400);
    expect(json(await curl(`${base()}/app/env/after-garbage`)).PATH_INFO).toBe('/env/after-garbage');
  });
});
