// Apache httpd in front of bin/tsgi over AJP13: mod_proxy_ajp (plain, secret=, ping=, 64 KiB
// packets with ProxyIOBufferSize, flushpackets=on, TLS, Basic auth, balancer:// with route= and
// sticky sessions by JSESSIONID or a ROUTEID cookie from mod_headers) and mod_jk
// (workers.properties, JkMount). One Apache from a generated config in a temp dir, one virtual
// host per variant on free loopback ports, every process stopped by pid in afterAll; curl and
// node:http are the clients, and taps show the packets. docs/ajp.md shows the same configs.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ajpWire, type AjpWire, describeEvents, type WireEvent } from './helpers/ajp-wire.js';
import { apacheBinary, apacheCompiledIn, apacheModuleCandidates, startApache } from './helpers/apache.js';
import { curl, type CurlResult } from './helpers/curl.js';
import { freePorts, sleep, stopAllDaemons, waitUntil, within } from './helpers/daemon.js';
import { currentUser, isRoot, lookupUser, makeTempDir, removeTempDirs, type UserInfo } from './helpers/fs-access.js';
import { get, openResponse } from './helpers/http-stream.js';
import type { WebServer } from './helpers/nginx.js';
import { downloadSha256, KiB, MiB, writeRandomFile } from './helpers/payload.js';
import { describeWith, Requirements } from './helpers/require.js';
import { startTap, type Tap } from './helpers/tap.js';
import { startTsgi, type Tsgi } from './helpers/tsgi.js';

const APP = 'test/fixtures/apps/ajp-routes.mjs';
const BIG = 100 * MiB;
const CHUNKED = 8 * MiB + 123;
const CONCURRENT = 50;
const SECRET = 'tsgi-test-secret-7c1e';

afterAll(async () => {
  // Safety net: the suite stops its own processes; anything left is stopped by pid here.
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

let payloadCache: Record<'empty' | 'kib' | 'big' | 'chunked', Payload> | undefined;

function payloads(): Record<'empty' | 'kib' | 'big' | 'chunked', Payload> {
  if (payloadCache) return payloadCache;
  const dir = makeTempDir('ajp-payload');
  const make = (name: string, size: number): Payload => {
    const file = path.join(dir, name);
    return { file, size, sha256: writeRandomFile(file, size) };
  };
  payloadCache = { empty: make('empty', 0), kib: make('kib', KiB), big: make('big', BIG), chunked: make('chunked', CHUNKED) };
  return payloadCache;
}

function json(r: CurlResult): Record<string, unknown> {
  expect(r.exitCode, `curl: ${r.stderr}`).toBe(0);
  try {
    return JSON.parse(r.body.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new Error(`not JSON (status ${r.status}): ${r.body.subarray(0, 300).toString('latin1')}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The checks every way of reaching tsgi goes through. URLs are known once the servers run.

interface Variant {
  label: string;
  url(p: string): string;
  port(): number;
  /** What environ['tsgi.ajp_attributes'] holds on a plain request. */
  attributes: Record<string, string>;
  /** The client sees the app's Content-Length on HEAD (mod_proxy_ajp drops it: see the test). */
  headKeepsLength: boolean;
  /** Run the 100 MiB transfers here. */
  big: boolean;
  /**
   * How the client sees an app error after the headers: the response cut short (curl exit 18),
   * or, with mod_jk, the partial body followed by httpd's 502 page in a response that ends
   * normally (mod_jk returns 502 to httpd after the response started; nothing tsgi can change).
   */
  errorAfterHeaders: 'cut-short' | 'error-page-appended';
}

async function foreverStats(v: Variant): Promise<{ started: number; closed: number; aborted: number }> {
  return json(await curl(v.url('/forever-stats'))) as { started: number; closed: number; aborted: number };
}

function ajpSuite(v: Variant): void {
  it('environ: method, raw query, UTF-8 path as latin-1 bytes, addresses and ports, AJP attributes', async () => {
    const env = json(await curl(v.url('/env/caf%C3%A9/x%20y?a=1&b=%20&c=%C3%A9&d=%2F')));
    expect(env).toMatchObject({
      REQUEST_METHOD: 'GET',
      QUERY_STRING: 'a=1&b=%20&c=%C3%A9&d=%2F',
      REQUEST_URI: '/env/caf%C3%A9/x%20y?a=1&b=%20&c=%C3%A9&d=%2F',
      SCRIPT_NAME: '',
      PATH_INFO: '/env/caf\u00c3\u00a9/x y',
      SERVER_PROTOCOL: 'HTTP/1.1',
      SERVER_NAME: '127.0.0.1',
      SERVER_PORT: String(v.port()),
      SERVER_ADDR: '127.0.0.1',
      REMOTE_ADDR: '127.0.0.1',
      'wsgi.url_scheme': 'http',
      'tsgi.protocol': 'ajp',
      'tsgi.ajp_attributes': v.attributes,
    });
    expect(env.REMOTE_PORT).toMatch(/^[0-9]+$/);
    expect(['', '0', undefined]).toContain(env.CONTENT_LENGTH);
    for (const k of ['HTTPS', 'REMOTE_USER', 'AJP_ROUTE']) expect(env, k).not.toHaveProperty(k);
  });

  it('environ: HTTP_* headers, repeated ones joined with ", "', async () => {
    const env = json(
      await curl(v.url('/env/h'), {
        headers: ['X-Repeat: one', 'X-Repeat: two', 'X-Custom-Thing: ve', 'User-Agent: tsgi-tests/1', 'Accept-Language: fr', 'Cookie: a=1; b=2'],
      }),
    );
    expect(env).toMatchObject({
      HTTP_X_CUSTOM_THING: 've',
      HTTP_USER_AGENT: 'tsgi-tests/1',
      HTTP_ACCEPT_LANGUAGE: 'fr',
      HTTP_X_REPEAT: 'one, two',
      HTTP_COOKIE: 'a=1; b=2',
      HTTP_HOST: `127.0.0.1:${v.port()}`,
    });
  });

  it('environ: CONTENT_TYPE and CONTENT_LENGTH of a POST and a PUT', async () => {
    const post = json(
      await curl(v.url('/env/post'), { method: 'POST', data: 'a=1&b=2', headers: ['Content-Type: application/x-www-form-urlencoded; charset=utf-8'] }),
    );
    expect(post).toMatchObject({ REQUEST_METHOD: 'POST', CONTENT_TYPE: 'application/x-www-form-urlencoded; charset=utf-8', CONTENT_LENGTH: '7' });
    const put = json(await curl(v.url('/env/put'), { method: 'PUT', data: 'x'.repeat(300), headers: ['Content-Type: text/plain'] }));
    expect(put).toMatchObject({ REQUEST_METHOD: 'PUT', CONTENT_TYPE: 'text/plain', CONTENT_LENGTH: '300' });
  });

  const sizes: Array<['empty' | 'kib' | 'big', string]> = [
    ['empty', '0 B'],
    ['kib', '1 KiB'],
  ];
  if (v.big) sizes.push(['big', '100 MiB']);
  for (const [name, label] of sizes) {
    it(`upload of ${label} arrives intact (streamed from a file, sha256)`, async () => {
      const p = payloads()[name];
      const r = await curl(v.url('/upload'), { method: 'POST', uploadFile: p.file, headers: ['Content-Type: application/octet-stream'], timeoutMs: 90_000 });
      const seen = json(r);
      expect(r.status).toBe(200);
      expect(seen).toMatchObject({ length: p.size, sha256: p.sha256, contentType: 'application/octet-stream', contentLength: String(p.size) });
    });
  }

  it('chunked upload without Content-Length arrives intact; CONTENT_LENGTH absent', async () => {
    const p = payloads().chunked;
    const r = await curl(v.url('/upload'), { method: 'POST', uploadFile: p.file, chunked: true, timeoutMs: 60_000 });
    const seen = json(r);
    expect(r.status).toBe(200);
    expect(seen).toMatchObject({ length: p.size, sha256: p.sha256, contentLength: null });
  });

  it.runIf(v.big)('100 MiB download arrives intact (sha256 while streaming)', async () => {
    const r = await curl(v.url(`/download?n=${BIG}`), { keepBytes: 0, timeoutMs: 90_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.status).toBe(200);
    expect(r.bytes).toBe(BIG);
    expect(r.sha256).toBe(downloadSha256(BIG));
  });

  it('streaming: the first chunk reaches the client long before the last', async () => {
    const flag = path.join(makeTempDir('ajp-flag'), 'go');
    const res = await openResponse(v.url(`/stream?file=${encodeURIComponent(flag)}`));
    expect(res.status).toBe(200);
    await res.waitFor((b) => b.toString().includes('first\n'), 5_000, 'the first chunk while the app waits');
    // The app is parked until the file exists: everything so far was streamed, not buffered.
    expect(res.body().toString()).toBe('first\n');
    const firstAt = res.arrivals[0]!;
    await sleep(500);
    fs.writeFileSync(flag, '');
    await res.waitFor((b) => b.toString() === 'first\nrest\n', 5_000, 'the rest once the app resumed');
    expect((await within(res.ended, 5_000, 'end of the response')).complete).toBe(true);
    expect(res.arrivals[res.arrivals.length - 1]! - firstAt).toBeGreaterThanOrEqual(450);
  });

  it('several Set-Cookie headers stay separate', async () => {
    const r = await curl(v.url('/cookies'));
    expect(r.status).toBe(200);
    expect(r.header('set-cookie')).toEqual(['a=1; Path=/', 'b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT', 'c=3; HttpOnly']);
  });

  it("statuses keep their code and reason: 418 I'm a teapot, 201 Created, 299 Custom Reason", async () => {
    for (const [code, reason] of [
      [418, "I'm a teapot"],
      [201, 'Created'],
      [299, 'Custom Reason'],
    ] as const) {
      const r = await curl(v.url(`/status?s=${encodeURIComponent(`${code} ${reason}`)}`));
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.status).toBe(code);
      expect(r.reason).toBe(reason);
      expect(r.body.toString()).toBe(`status ${code} ${reason}\n`);
    }
  });

  it(`HEAD: status and headers, no body${v.headKeepsLength ? ', Content-Length kept' : ' (Content-Length dropped by httpd)'}`, async () => {
    const r = await curl(v.url('/head'), { head: true });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.status).toBe(200);
    expect(r.header('x-method')).toEqual(['HEAD']);
    expect(r.header('content-length')).toEqual(v.headKeepsLength ? ['12'] : []);
    // curl -I writes the head itself to standard output; no body may follow it.
    expect(r.body.toString('latin1')).not.toContain('hello world');
    const g = await curl(v.url('/head'));
    expect(g.body.toString()).toBe('hello world\n');
  });

  it('an app error before the headers becomes a 500 without details', async () => {
    const r = await curl(v.url('/error-before'));
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.status).toBe(500);
    expect(r.body.toString()).not.toContain('secret-detail');
  });

  for (const [how, q] of [
    ['no Content-Length', ''],
    ['Content-Length 100', '?length=100'],
  ] as const) {
    const outcome = v.errorAfterHeaders === 'cut-short' ? 'leaves the response incomplete' : "gets httpd's 502 page appended (mod_jk's doing)";
    it(`an app error after the headers ${outcome} (${how})`, async () => {
      const r = await curl(v.url(`/error-after${q}`), { timeoutMs: 20_000 });
      const body = r.body.toString();
      expect(r.status).toBe(200);
      expect(body.startsWith('partial-body\n')).toBe(true);
      // Sent once: the web server did not run the request again (mod_jk: recovery_options).
      expect(body.split('partial-body').length - 1).toBe(1);
      if (v.errorAfterHeaders === 'cut-short') {
        // 18: "transfer closed with outstanding read data remaining" (no last chunk).
        expect(r.exitCode, `curl exit ${r.exitCode}: ${r.stderr}; body ${JSON.stringify(body)}`).toBe(18);
      } else {
        // httpd's error page follows the partial body; under the app's Content-Length (forwarded
        // by mod_jk) the client reads 100 bytes of that mix and takes it for complete.
        expect(body).toContain('<!DOCTYPE HTML');
        if (q) expect([r.header('content-length'), r.bytes]).toEqual([['100'], 100]);
        else expect(body).toContain('502 Bad Gateway');
        console.log(`[${v.label}] error after headers (${how}): curl exit ${r.exitCode}, Content-Length ${JSON.stringify(r.header('content-length'))}, Transfer-Encoding ${JSON.stringify(r.header('transfer-encoding'))}, ${r.bytes} body bytes`);
      }
    });
  }

  it(`${CONCURRENT} concurrent requests are all answered, each with its own answer`, async () => {
    const rs = await Promise.all(Array.from({ length: CONCURRENT }, (_, i) => get(v.url(`/sleep/${i}?ms=200&id=${i}`), { ms: 60_000 })));
    for (const [i, r] of rs.entries()) {
      expect(r.status, r.body.toString()).toBe(200);
      expect(JSON.parse(r.body.toString())).toEqual({ id: String(i), pathInfo: `/sleep/${i}`, query: `ms=200&id=${i}` });
    }
  });

  it('a client that hangs up mid-response: the app is stopped, the next request is served', async () => {
    const before = await foreverStats(v);
    const res = await openResponse(v.url('/forever'));
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
    const next = json(await curl(v.url('/env/after-hangup')));
    expect(next.PATH_INFO).toBe('/env/after-hangup');
  });
}

/** Connects, sends bytes that are no AJP, and resolves once tsgi closed the connection. */
async function sendGarbage(port: number): Promise<'closed'> {
  const s = net.connect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  const closed = new Promise<'closed'>((r) => s.once('close', () => r('closed')));
  s.once('connect', () => {
    s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    s.write(Buffer.alloc(4096, 0xff));
  });
  return within(closed, 5_000, 'tsgi to close a connection that sent garbage');
}

/** "forward", "body:8186" (request body data), "get-body:8186" (size asked), "headers", "body", "flush", "end". */
function label(e: WireEvent): string {
  if (e.dir === 'up' && e.type === 'body') return `body:${e.data}`;
  if (e.dir === 'down' && e.type === 'get-body') return `get-body:${e.asked}`;
  return e.type;
}

/** The events of one request: from its FORWARD_REQUEST (and a CPing right before) to END_RESPONSE. */
function requestEvents(wire: AjpWire, uri: string): WireEvent[] {
  const i = wire.events.findIndex((e) => e.type === 'forward' && e.request.requestUri === uri);
  expect(i, `a FORWARD_REQUEST for ${uri}`).toBeGreaterThanOrEqual(0);
  const conn = wire.events[i]!.conn;
  const out: WireEvent[] = [];
  for (const e of wire.events.slice(i)) {
    if (e.conn !== conn) continue;
    out.push(e);
    if (e.type === 'end') break;
  }
  return out;
}

// =============================================================================================

const apacheBin = apacheBinary();
const MODULES = [
  'proxy',
  'proxy_ajp',
  'proxy_balancer',
  'lbmethod_byrequests',
  'slotmem_shm',
  'headers',
  'setenvif',
  'env',
  'ssl',
  'socache_shmcb',
  'auth_basic',
  'authn_core',
  'authn_file',
  'authz_user',
  'jk',
];
const req = new Requirements()
  .check(apacheBin ? undefined : 'apache2 (or httpd) not found on PATH (apt-get install apache2)')
  .binary('curl', 'apt-get install curl')
  .binary('openssl', 'apt-get install openssl');
if (apacheBin) {
  const compiled = apacheCompiledIn(apacheBin);
  for (const m of [...MODULES, 'mpm_event', 'authz_core', 'unixd']) {
    if (compiled.includes(`mod_${m}.c`)) continue;
    req.file(`mod_${m}`, apacheModuleCandidates(m), m === 'jk' ? 'apt-get install libapache2-mod-jk' : 'apt-get install apache2');
  }
}
if (isRoot()) req.check(lookupUser('www-data') ? undefined : 'user www-data does not exist (Apache drops to it when started as root)');

type PortName =
  | 'plain'
  | 'tap'
  | 'ping'
  | 'tls'
  | 'big'
  | 'bigTap'
  | 'secret'
  | 'wrongSecret'
  | 'noSecret'
  | 'jk'
  | 'jkTap'
  | 'balancer'
  | 'routeid';
const PORT_NAMES: PortName[] = ['plain', 'tap', 'ping', 'tls', 'big', 'bigTap', 'secret', 'wrongSecret', 'noSecret', 'jk', 'jkTap', 'balancer', 'routeid'];

describeWith('Apache httpd → tsgi AJP13', req, () => {
  const ctx = {} as {
    dir: string;
    user: UserInfo;
    plain: Tsgi;
    secret: Tsgi;
    big: Tsgi;
    a: Tsgi;
    b: Tsgi;
    taps: Record<'tap' | 'ping' | 'bigTap' | 'wrongSecret' | 'noSecret' | 'jkTap', Tap>;
    wires: Record<'tap' | 'ping' | 'bigTap' | 'wrongSecret' | 'noSecret' | 'jkTap', AjpWire>;
    ports: Record<PortName, number>;
    apache: WebServer;
  };
  const url = (name: PortName, p: string) => `${name === 'tls' ? 'https' : 'http'}://127.0.0.1:${ctx.ports[name]}${p}`;

  beforeAll(async () => {
    const started = performance.now();
    ctx.dir = makeTempDir('ajp-apache');
    payloads();
    ctx.user = isRoot() ? lookupUser('www-data')! : currentUser();
    // Every tsgi listens on 127.0.0.1 only (AJP trusts its peer: never expose the port).
    ctx.plain = await startTsgi({ app: APP, protocol: 'ajp' });
    // The secret in the environment, not on the command line (ps shows arguments); request
    // attributes named TENANT (httpd: SetEnv AJP_TENANT) are let through.
    ctx.secret = await startTsgi({ app: APP, protocol: 'ajp', env: { TSGI_AJP_SECRET: SECRET }, args: ['--ajp-allowed-attributes', 'TENANT'] });
    ctx.big = await startTsgi({ app: APP, protocol: 'ajp', args: ['--ajp-packet-size', '65536'] });
    ctx.a = await startTsgi({ app: APP, protocol: 'ajp', env: { TSGI_ROUTE: 'tsgi1' } });
    ctx.b = await startTsgi({ app: APP, protocol: 'ajp', env: { TSGI_ROUTE: 'tsgi2' } });
    const wires = {} as typeof ctx.wires;
    const taps = {} as typeof ctx.taps;
    const tapTargets = { tap: ctx.plain, ping: ctx.plain, bigTap: ctx.big, wrongSecret: ctx.secret, noSecret: ctx.secret, jkTap: ctx.secret };
    for (const [name, target] of Object.entries(tapTargets) as Array<[keyof typeof tapTargets, Tsgi]>) {
      wires[name] = ajpWire();
      taps[name] = await startTap(target.endpoint, wires[name].observe);
    }
    ctx.wires = wires;
    ctx.taps = taps;
    const ports = await freePorts(PORT_NAMES.length);
    ctx.ports = Object.fromEntries(PORT_NAMES.map((n, i) => [n, ports[i]!])) as Record<PortName, number>;

    const port = (t: Tsgi | Tap) => ('port' in t ? t.port : (t.endpoint as { port: number }).port);
    const d = ctx.dir;
    // TLS: a throwaway self-signed certificate.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${d}/tls.key`, '-out', `${d}/tls.crt`, '-days', '2', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore', timeout: 30_000 });
    // Basic auth: alice/wonderland in htpasswd's {SHA} format.
    fs.writeFileSync(`${d}/htpasswd`, `alice:{SHA}${createHash('sha1').update('wonderland').digest('base64')}\n`, { mode: 0o644 });
    // mod_jk: its shared memory and log, created by the root parent and used by www-data workers.
    fs.mkdirSync(`${d}/jk`, { mode: 0o777 });
    fs.chmodSync(`${d}/jk`, 0o777);
    fs.writeFileSync(
      `${d}/workers.properties`,
      `# mod_jk workers (generated by the tsgi tests; docs/ajp.md)
worker.list=tsgi,tsgi_tap
worker.tsgi.type=ajp13
worker.tsgi.host=127.0.0.1
worker.tsgi.port=${port(ctx.secret)}
# The same secret tsgi has in TSGI_AJP_SECRET (--ajp-secret).
worker.tsgi.secret=${SECRET}
# Packet size: the same as tsgi's --ajp-packet-size (8192 is both defaults).
worker.tsgi.max_packet_size=8192
# CPing/CPong after connecting and before each request, 2 s to answer.
worker.tsgi.ping_mode=CP
worker.tsgi.ping_timeout=2000
# Never send a request again once tsgi has it (1) or answered (2): the app would run twice.
# Close the connection to tsgi when the client goes away (4), so that the app is stopped.
worker.tsgi.recovery_options=7
# The same, through the test's tap.
worker.tsgi_tap.reference=worker.tsgi
worker.tsgi_tap.port=${ctx.taps.jkTap.port}
`,
    );
    const p = ctx.ports;
    const body = `
# ---- mod_proxy_ajp ------------------------------------------------------------------------
# The plain case: everything under / goes to tsgi; the app sees the whole path as PATH_INFO.
<VirtualHost 127.0.0.1:${p.plain}>
  ProxyPass "/" "ajp://127.0.0.1:${port(ctx.plain)}/"
  # httpd drops the backend's Content-Length (AJP frames the body itself) unless told to trust
  # it: here for ?trust_cl=1.
  SetEnvIfExpr "%{QUERY_STRING} =~ /trust_cl=1/" ap_trust_cgilike_cl=1
  # Basic auth in front of one path: REMOTE_USER and AUTH_TYPE reach the app.
  <Location "/env/private">
    AuthType Basic
    AuthName "tsgi"
    AuthUserFile ${d}/htpasswd
    Require valid-user
  </Location>
  # AJP_* variables go to the backend as request attributes (AJP_ stripped): this tsgi has no
  # --ajp-allowed-attributes, so it refuses the request.
  <Location "/env/with-attr">
    SetEnv AJP_TENANT blue
  </Location>
</VirtualHost>
# The same backend through a tap (to see the packets).
<VirtualHost 127.0.0.1:${p.tap}>
  ProxyPass "/" "ajp://127.0.0.1:${ctx.taps.tap.port}/"
</VirtualHost>
# ping=: a CPing before every request; no CPong within 2 s and the backend counts as down.
<VirtualHost 127.0.0.1:${p.ping}>
  ProxyPass "/" "ajp://127.0.0.1:${ctx.taps.ping.port}/" ping=2
</VirtualHost>
# TLS terminated by httpd: is_ssl and the SSL attributes reach tsgi.
<VirtualHost 127.0.0.1:${p.tls}>
  SSLEngine on
  SSLCertificateFile ${d}/tls.crt
  SSLCertificateKeyFile ${d}/tls.key
  ProxyPass "/" "ajp://127.0.0.1:${port(ctx.plain)}/"
</VirtualHost>
# 64 KiB packets: ProxyIOBufferSize here, --ajp-packet-size 65536 on tsgi; flushpackets=on
# passes each body packet on to the client at once.
<VirtualHost 127.0.0.1:${p.big}>
  ProxyIOBufferSize 65536
  ProxyPass "/" "ajp://127.0.0.1:${port(ctx.big)}/" flushpackets=on
</VirtualHost>
<VirtualHost 127.0.0.1:${p.bigTap}>
  ProxyIOBufferSize 65536
  ProxyPass "/" "ajp://127.0.0.1:${ctx.taps.bigTap.port}/"
</VirtualHost>
# The shared secret (tsgi --ajp-secret / TSGI_AJP_SECRET), and the request attribute tsgi lets
# through (--ajp-allowed-attributes TENANT).
<VirtualHost 127.0.0.1:${p.secret}>
  ProxyPass "/" "ajp://127.0.0.1:${port(ctx.secret)}/" secret=${SECRET}
  <Location "/env/with-attr">
    SetEnv AJP_TENANT blue
  </Location>
</VirtualHost>
<VirtualHost 127.0.0.1:${p.wrongSecret}>
  ProxyPass "/" "ajp://127.0.0.1:${ctx.taps.wrongSecret.port}/" secret=not-the-secret
</VirtualHost>
<VirtualHost 127.0.0.1:${p.noSecret}>
  ProxyPass "/" "ajp://127.0.0.1:${ctx.taps.noSecret.port}/"
</VirtualHost>

# ---- balancer: two tsgi instances, sticky by the route in JSESSIONID (<id>.<route>) -------
<Proxy "balancer://tsgi">
  BalancerMember "ajp://127.0.0.1:${port(ctx.a)}" route=tsgi1
  BalancerMember "ajp://127.0.0.1:${port(ctx.b)}" route=tsgi2
  ProxySet stickysession=JSESSIONID|jsessionid lbmethod=byrequests
</Proxy>
<VirtualHost 127.0.0.1:${p.balancer}>
  ProxyPass "/" "balancer://tsgi/"
</VirtualHost>
# ... or sticky by a ROUTEID cookie httpd sets itself (mod_headers): the app needs no route.
<Proxy "balancer://tsgi-routeid">
  BalancerMember "ajp://127.0.0.1:${port(ctx.a)}" route=tsgi1
  BalancerMember "ajp://127.0.0.1:${port(ctx.b)}" route=tsgi2
  ProxySet stickysession=ROUTEID lbmethod=byrequests
</Proxy>
<VirtualHost 127.0.0.1:${p.routeid}>
  Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED
  ProxyPass "/" "balancer://tsgi-routeid/"
</VirtualHost>

# ---- mod_jk ---------------------------------------------------------------------------------
JkWorkersFile ${d}/workers.properties
JkShmFile ${d}/jk/jk-runtime-status
JkLogFile ${d}/jk/mod_jk.log
JkLogLevel info
<VirtualHost 127.0.0.1:${p.jk}>
  JkMount /* tsgi
</VirtualHost>
<VirtualHost 127.0.0.1:${p.jkTap}>
  JkMount /* tsgi_tap
</VirtualHost>
`;
    ctx.apache = await startApache({ bin: apacheBin!, dir: d, ports: PORT_NAMES.map((n) => p[n]), modules: MODULES, user: ctx.user, body });
    console.log(`[ajp] 5 tsgi, 6 taps and Apache ready in ${Math.round(performance.now() - started)} ms`);
  });

  afterAll(async () => {
    await ctx.apache?.daemon.stop();
    for (const t of Object.values(ctx.taps ?? {})) await t.close();
    for (const t of [ctx.plain, ctx.secret, ctx.big, ctx.a, ctx.b]) await t?.daemon.stop();
  });

  // ---- the full suite over three ways in ---------------------------------------------------

  describe('mod_proxy_ajp, 8 KiB packets (tsgi flushes when the app pauses; no flushpackets)', () => {
    ajpSuite({ label: 'plain', url: (p) => url('plain', p), port: () => ctx.ports.plain, attributes: {}, headKeepsLength: false, big: true, errorAfterHeaders: 'cut-short' });

    it('HEAD with SetEnv ap_trust_cgilike_cl: Content-Length kept', async () => {
      const r = await curl(url('plain', '/head?trust_cl=1'), { head: true });
      expect(r.status).toBe(200);
      expect(r.header('content-length')).toEqual(['12']);
    });

    it('Basic auth in httpd: REMOTE_USER and AUTH_TYPE reach the app', async () => {
      const denied = await curl(url('plain', '/env/private'));
      expect(denied.status).toBe(401);
      const env = json(await curl(url('plain', '/env/private'), { args: ['-u', 'alice:wonderland'] }));
      expect(env).toMatchObject({ REMOTE_USER: 'alice', AUTH_TYPE: 'Basic', PATH_INFO: '/env/private', HTTP_AUTHORIZATION: expect.stringMatching(/^Basic /) });
    });

    it('SetEnv AJP_TENANT becomes a request attribute: refused (403) by a tsgi without --ajp-allowed-attributes', async () => {
      const r = await curl(url('plain', '/env/with-attr'));
      expect(r.status).toBe(403);
      expect(r.body.toString()).not.toContain('PATH_INFO');
    });

    it('TLS terminated by httpd: HTTPS=on, wsgi.url_scheme https, SSL_CIPHER, SSL_PROTOCOL, key size, session', async () => {
      const env = json(await curl(url('tls', '/env/tls'), { args: ['-k'] }));
      expect(env).toMatchObject({ HTTPS: 'on', 'wsgi.url_scheme': 'https', SERVER_PORT: String(ctx.ports.tls), PATH_INFO: '/env/tls' });
      expect(env.SSL_PROTOCOL).toMatch(/^TLSv1\.[23]$/);
      expect(env.SSL_CIPHER).toMatch(/^[A-Z0-9_-]+$/);
      expect(env.SSL_CIPHER_USEKEYSIZE).toMatch(/^[0-9]+$/);
      expect(env['tsgi.ajp_attributes']).toEqual({});
      console.log(`[ajp tls] SSL_PROTOCOL ${env.SSL_PROTOCOL}, SSL_CIPHER ${env.SSL_CIPHER}, key size ${env.SSL_CIPHER_USEKEYSIZE}, SSL_SESSION_ID ${env.SSL_SESSION_ID === undefined ? 'absent' : 'present'}`);
    });
  });

  describe('mod_proxy_ajp, 64 KiB packets (ProxyIOBufferSize 65536, --ajp-packet-size 65536, flushpackets=on)', () => {
    ajpSuite({ label: 'big', url: (p) => url('big', p), port: () => ctx.ports.big, attributes: {}, headKeepsLength: false, big: true, errorAfterHeaders: 'cut-short' });
  });

  describe('mod_jk (JkMount, worker secret, ping_mode CP)', () => {
    ajpSuite({ label: 'jk', url: (p) => url('jk', p), port: () => ctx.ports.jk, attributes: { JK_LB_ACTIVATION: 'ACT' }, headKeepsLength: true, big: true, errorAfterHeaders: 'error-page-appended' });
  });

  // ---- secret and attributes -----------------------------------------------------------------

  describe('secret= and request attributes', () => {
    it('the right secret: served; the secret is nowhere in the environ', async () => {
      const r = await curl(url('secret', '/env/ok?q=1'));
      const env = json(r);
      expect(env).toMatchObject({ PATH_INFO: '/env/ok', QUERY_STRING: 'q=1', 'tsgi.ajp_attributes': {} });
      expect(r.body.toString()).not.toContain(SECRET);
      const up = json(await curl(url('secret', '/upload'), { method: 'POST', uploadFile: payloads().kib.file }));
      expect(up).toMatchObject({ length: KiB, sha256: payloads().kib.sha256 });
    });

    it('a wrong secret: 403, the app is not reached (and httpd really sent the wrong one)', async () => {
      ctx.wires.wrongSecret.clear();
      const r = await curl(url('wrongSecret', '/env/wrong'));
      expect(r.status).toBe(403);
      expect(r.body.toString()).not.toContain('PATH_INFO');
      expect(ctx.wires.wrongSecret.requests.map((q) => q.attributes.secret)).toEqual(['not-the-secret']);
      // A POST too: the body httpd sent unasked is read, the backend connection stays usable.
      const post = await curl(url('wrongSecret', '/upload'), { method: 'POST', uploadFile: payloads().kib.file });
      expect(post.status).toBe(403);
      // The body packet httpd sends unasked may reach tsgi before or (under load) after the 403
      // is complete; either way it is read as body, and the connection stays in step.
      const w = ctx.wires.wrongSecret;
      await waitUntil(() => w.events.filter((e) => e.dir === 'up' && e.type === 'body').length === 1, 5_000, 'the unasked body packet');
      const start = w.events.findIndex((e) => e.type === 'forward' && e.request.requestUri === '/upload');
      const conn = w.events[start]!.conn;
      const events = w.events.slice(start).filter((e) => e.conn === conn);
      expect(events.filter((e) => e.dir === 'down').map((e) => e.type)).toEqual(['headers', 'body', 'end']);
      expect(events.filter((e) => e.dir === 'up').map(label)).toEqual(['forward', 'body:1024']);
      expect(events.find((e) => e.type === 'end')).toMatchObject({ reuse: true });
      expect(w.errors).toEqual([]);
      const again = await curl(url('wrongSecret', '/upload'), { method: 'POST', uploadFile: payloads().kib.file });
      expect(again.status).toBe(403);
    });

    it('no secret sent: 403', async () => {
      ctx.wires.noSecret.clear();
      const r = await curl(url('noSecret', '/env/none'));
      expect(r.status).toBe(403);
      expect(ctx.wires.noSecret.requests[0]!.attributes.secret).toBeUndefined();
    });

    it('SetEnv AJP_TENANT with --ajp-allowed-attributes TENANT: environ["tsgi.ajp_attributes"].TENANT', async () => {
      const env = json(await curl(url('secret', '/env/with-attr')));
      expect(env['tsgi.ajp_attributes']).toEqual({ TENANT: 'blue' });
      expect(env).not.toHaveProperty('TENANT');
    });

    it('mod_jk sends the worker secret and JK_LB_ACTIVATION, and a CPing before each request (ping_mode CP)', async () => {
      ctx.wires.jkTap.clear();
      for (let i = 0; i < 3; i++) expect(json(await curl(url('jkTap', `/env/jk${i}`))).PATH_INFO).toBe(`/env/jk${i}`);
      const reqs = ctx.wires.jkTap.requests;
      expect(reqs).toHaveLength(3);
      for (const r of reqs) {
        expect(r.attributes.secret).toBe(SECRET);
        expect(r.requestAttributes.map(([n]) => n)).toEqual(expect.arrayContaining(['AJP_REMOTE_PORT', 'AJP_LOCAL_ADDR', 'JK_LB_ACTIVATION']));
      }
      for (let i = 0; i < 3; i++) {
        const events = requestEvents(ctx.wires.jkTap, `/env/jk${i}`);
        const idx = ctx.wires.jkTap.events.indexOf(events[0]!);
        const before = ctx.wires.jkTap.events.slice(0, idx).filter((e) => e.conn === events[0]!.conn).slice(-2);
        expect(before.map((e) => e.type)).toEqual(['cping', 'cpong']);
      }
      console.log(`[mod_jk] ${describeEvents(ctx.wires.jkTap.events).slice(0, 8).join('; ')}\n  headers ${JSON.stringify(reqs[0]!.headers)}\n  attributes ${JSON.stringify(reqs[0]!.requestAttributes)}`);
    });
  });

  // ---- what httpd sends ----------------------------------------------------------------------

  describe('on the wire', () => {
    it('mod_proxy_ajp, 8 KiB: the first body packet unasked (8186 bytes), the GET_BODY_CHUNKs for the rest at once, one packet each; responses in ≤ 8192-byte packets; connections reused', async () => {
      const w = ctx.wires.tap;
      w.clear();
      const connsBefore = ctx.taps.tap.connections.length;
      for (let i = 0; i < 4; i++) json(await curl(url('tap', `/env/w${i}?x=${i}`)));
      const up = json(await curl(url('tap', '/upload'), { method: 'POST', data: Buffer.alloc(20_000, 0x61) }));
      expect(up.length).toBe(20_000);
      const down = await curl(url('tap', `/download?n=${100 * KiB}`));
      expect(down.sha256).toBe(downloadSha256(100 * KiB));
      const chunked = json(await curl(url('tap', '/upload'), { method: 'POST', data: Buffer.alloc(20_000, 0x62), chunked: true }));
      expect(chunked.length).toBe(20_000);
      expect(w.errors).toEqual([]);

      const post = requestEvents(w, '/upload');
      // Both asks in one write, before httpd answers the first: one round trip, not two.
      expect(post.map(label)).toEqual([
        'forward',
        'body:8186',
        'get-body:8186',
        'get-body:3628',
        'body:8186',
        'body:3628',
        'headers',
        'body',
        'end',
      ]);
      const chunkedEvents = w.events.filter((e) => e.conn === w.events.findLast((f) => f.type === 'forward')!.conn);
      const lastForward = chunkedEvents.findLastIndex((e) => e.type === 'forward');
      expect(chunkedEvents.slice(lastForward).map(label)).toEqual([
        'forward',
        'get-body:8186',
        'body:8186',
        'get-body:8186',
        'body:8186',
        'get-body:8186',
        'body:3628',
        'get-body:8186',
        'body:0',
        'headers',
        'body',
        'end',
      ]);
      const dl = requestEvents(w, '/download');
      const sizes = dl.filter((e) => e.dir === 'down' && e.type === 'body').map((e) => e.size);
      expect(Math.max(...sizes)).toBe(8192);
      expect(dl.at(-1)).toMatchObject({ type: 'end', reuse: true });
      const first = w.requests[0]!;
      expect(first.attributes.queryString).toBe('x=0');
      expect(first.attributes.secret).toBeUndefined();
      expect(first.requestAttributes.map(([n]) => n)).toEqual(['AJP_REMOTE_PORT', 'AJP_LOCAL_ADDR']);
      // Apache keeps its backend connections: fewer connections than requests.
      expect(ctx.taps.tap.connections.length - connsBefore).toBeLessThan(7);
      console.log(`[mod_proxy_ajp 8 KiB] ${w.requests.length} requests on ${ctx.taps.tap.connections.length - connsBefore} connections\n  ${describeEvents(post).join('; ')}\n  first request: ${JSON.stringify({ ...first, headers: first.headers.map(([n]) => n) })}`);
    });

    it('ping=: a CPing (answered by a CPong) before every FORWARD_REQUEST', async () => {
      const w = ctx.wires.ping;
      w.clear();
      for (let i = 0; i < 5; i++) expect(json(await curl(url('ping', `/env/p${i}`))).PATH_INFO).toBe(`/env/p${i}`);
      expect(w.requests).toHaveLength(5);
      const byConn = new Map<number, string[]>();
      for (const e of w.events) byConn.set(e.conn, [...(byConn.get(e.conn) ?? []), e.type]);
      for (const types of byConn.values()) {
        types.forEach((t, i) => {
          if (t === 'forward') expect(types.slice(i - 2, i)).toEqual(['cping', 'cpong']);
        });
      }
      console.log(`[mod_proxy_ajp ping=2] ${[...byConn.values()].map((t) => t.join(' ')).join(' | ')}`);
    });

    it('ProxyIOBufferSize 65536: a 65530-byte first body packet, body chunks of 65528 bytes', async () => {
      const w = ctx.wires.bigTap;
      w.clear();
      const up = json(await curl(url('bigTap', '/upload'), { method: 'POST', data: Buffer.alloc(200_000, 0x63) }));
      expect(up.length).toBe(200_000);
      const down = await curl(url('bigTap', `/download?n=${300 * KiB}`));
      expect(down.sha256).toBe(downloadSha256(300 * KiB));
      expect(w.errors).toEqual([]);
      const post = requestEvents(w, '/upload');
      expect(post.filter((e) => e.dir === 'up' && e.type === 'body').map(label)).toEqual(['body:65530', 'body:65530', 'body:65530', `body:${200_000 - 3 * 65530}`]);
      const dl = requestEvents(w, '/download');
      const sizes = dl.filter((e) => e.dir === 'down' && e.type === 'body').map((e) => e.size);
      // 65528 bytes of data in a packet of 65536.
      expect(Math.max(...sizes)).toBe(65536);
      console.log(`[mod_proxy_ajp 64 KiB] upload ${describeEvents(post).join('; ')}`);
    });
  });

  // ---- balancer --------------------------------------------------------------------------------

  describe('balancer:// with route= and sticky sessions', () => {
    it('JSESSIONID=<id>.<route>: without the cookie requests spread over both; with it they stick, and AJP_ROUTE names the route', async () => {
      const fresh: CurlResult[] = [];
      for (let i = 0; i < 6; i++) fresh.push(await curl(url('balancer', '/session')));
      const instances = new Set<string>();
      const cookies = new Map<string, string>();
      for (const r of fresh) {
        const s = json(r) as { instance: string; ajpRoute: string | null; session: string };
        expect(s.ajpRoute).toBeNull();
        instances.add(s.instance);
        const setCookie = r.header('set-cookie')[0]!;
        expect(setCookie).toMatch(new RegExp(`^JSESSIONID=[^;]+\\.${s.instance};`));
        cookies.set(s.instance, setCookie.split(';')[0]!);
      }
      expect([...instances].sort()).toEqual(['tsgi1', 'tsgi2']);
      for (const [instance, cookie] of cookies) {
        for (let i = 0; i < 6; i++) {
          const s = json(await curl(url('balancer', '/session'), { headers: [`Cookie: ${cookie}`] })) as { instance: string; ajpRoute: string | null; session: string };
          expect(s).toMatchObject({ instance, ajpRoute: instance, session: cookie.slice('JSESSIONID='.length) });
        }
      }
    });

    it('ROUTEID cookie from mod_headers: httpd names the route itself; requests with it stick', async () => {
      const first = await curl(url('routeid', '/session'));
      const s0 = json(first) as { instance: string };
      const routeCookie = first.header('set-cookie').find((c) => c.startsWith('ROUTEID='))!;
      expect(routeCookie).toBe(`ROUTEID=.${s0.instance}; path=/`);
      for (let i = 0; i < 6; i++) {
        const r = await curl(url('routeid', '/session'), { headers: [`Cookie: ROUTEID=.${s0.instance}`] });
        const s = json(r) as { instance: string; ajpRoute: string | null };
        expect(s).toMatchObject({ instance: s0.instance, ajpRoute: s0.instance });
        expect(r.header('set-cookie').some((c) => c.startsWith('ROUTEID='))).toBe(false);
      }
    });
  });

  // ---- broken input --------------------------------------------------------------------------

  it("garbage bytes on tsgi's port: that connection is dropped with one log line, requests through Apache are still served", async () => {
    const before = ctx.plain.logRecords().filter((r) => r.code === 'TSGI_AJP_BAD_MAGIC').length;
    await sendGarbage((ctx.plain.endpoint as { port: number }).port);
    await waitUntil(() => ctx.plain.logRecords().filter((r) => r.code === 'TSGI_AJP_BAD_MAGIC').length === before + 1, 5_000, 'the log line');
    for (const name of ['plain', 'tap', 'ping'] as const) {
      const env = json(await curl(url(name, '/env/after-garbage')));
      expect(env.PATH_INFO).toBe('/env/after-garbage');
    }
    expect(ctx.plain.daemon.hasExited()).toBe(false);
  });

  it('every tsgi is still running, and Apache logged no AJP protocol error', () => {
    for (const t of [ctx.plain, ctx.secret, ctx.big, ctx.a, ctx.b]) expect(t.daemon.hasExited(), t.daemon.diagnostics()).toBe(false);
    const log = fs.readFileSync(ctx.apache.errorLog, 'utf8');
    // Expected: the dialog failures of the error-after-headers and hang-up tests. Not expected:
    // anything saying tsgi's packets were malformed.
    expect(log).not.toMatch(/ajp_msg_check_header|ajp_parse_data|got bad magic|wrong chunk length|Backend sent headers twice/);
    const codes = new Map<string, number>();
    for (const m of log.matchAll(/\[([a-z_]+):(error|warn)\].*?(AH[0-9]{5})/g)) codes.set(`${m[1]} ${m[3]}`, (codes.get(`${m[1]} ${m[3]}`) ?? 0) + 1);
    console.log(`[apache error log] ${[...codes].map(([k, n]) => `${k} x${n}`).join(', ') || 'nothing at warn or above'}`);
  });
});
