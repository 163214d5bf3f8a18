// A pipeline composed from a config file (test/fixtures/config/site.toml: request id, proxy fix,
// error catcher, timing, compression, validator; static files at / falling through to an app;
// an API at /api behind Basic auth) served by `bin/tsgi serve --config` over FastCGI behind
// nginx, and checked with curl from the client's side.

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { curl } from './helpers/curl.js';
import { freePort, freePorts, startDaemon, stopAllDaemons, type Daemon } from './helpers/daemon.js';
import { makeTempDir, removeTempDirs } from './helpers/fs-access.js';
import { startNginx, type WebServer } from './helpers/nginx.js';
import { describeWith, Requirements } from './helpers/require.js';
import { ROOT } from './helpers/tsgi.js';

const CONFIG = path.join(ROOT, 'test/fixtures/config/site.toml');
const BIG = fs.readFileSync(path.join(ROOT, 'test/fixtures/config/public/big.txt'));

const PARAMS = `fastcgi_param REQUEST_METHOD    $request_method;
fastcgi_param QUERY_STRING      $query_string;
fastcgi_param CONTENT_TYPE      $content_type;
fastcgi_param CONTENT_LENGTH    $content_length;
fastcgi_param REQUEST_URI       $request_uri;
fastcgi_param SERVER_PROTOCOL   $server_protocol;
fastcgi_param SERVER_NAME       $host;
fastcgi_param SERVER_PORT       $server_port;
fastcgi_param REMOTE_ADDR       $remote_addr;
fastcgi_param REMOTE_PORT       $remote_port;
fastcgi_param GATEWAY_INTERFACE CGI/1.1;
`;

const req = new Requirements().binary('nginx', 'apt-get install nginx-light').binary('curl', 'apt-get install curl');

afterAll(async () => {
  await stopAllDaemons();
  removeTempDirs();
});

describeWith('nginx → tsgi FastCGI, pipeline from tsgi.toml', req, () => {
  const ctx = {} as { dir: string; tsgi: Daemon; nginx: WebServer; port: number };
  const url = (p: string) => `http://127.0.0.1:${ctx.port}${p}`;
  const logs = () => ctx.tsgi.output();

  beforeAll(async () => {
    ctx.dir = makeTempDir('pipeline');
    const backend = await freePort();
    // The file says protocol = "fastcgi"; the address comes from the command line.
    ctx.tsgi = await startDaemon({
      name: 'tsgi --config site.toml',
      command: process.execPath,
      args: [path.join(ROOT, 'bin/tsgi'), 'serve', '--config', CONFIG, '--bind', `127.0.0.1:${backend}`],
      cwd: ROOT,
      ready: [{ port: backend }],
    });
    [ctx.port] = await freePorts(1);
    const params = path.join(ctx.dir, 'params');
    fs.writeFileSync(params, PARAMS);
    ctx.nginx = await startNginx({
      dir: ctx.dir,
      ports: [ctx.port],
      http: `
  server {
    listen 127.0.0.1:${ctx.port};
    location / {
      include ${params};
      fastcgi_param SCRIPT_NAME "";
      fastcgi_param PATH_INFO $uri;
      # What a proxy in front of an app does: append the client's address (proxy-fix, x-for = 1).
      fastcgi_param HTTP_X_FORWARDED_FOR $proxy_add_x_forwarded_for;
      fastcgi_param HTTP_X_FORWARDED_PROTO $scheme;
      fastcgi_pass 127.0.0.1:${backend};
    }
  }`,
    });
  });

  afterAll(async () => {
    await ctx.nginx?.daemon.stop();
    await ctx.tsgi?.stop();
  });

  it('static index at /, with the request id, Server-Timing and Cache-Control of the pipeline', async () => {
    const r = await curl(url('/'));
    expect(r.status, logs()).toBe(200);
    expect(r.body.toString()).toContain('static home');
    expect(r.header('Content-Type')).toEqual(['text/html; charset=utf-8']);
    expect(r.header('Cache-Control')).toEqual(['public, max-age=60']);
    expect(r.header('X-Request-Id')[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.header('Server-Timing')[0]).toMatch(/^app;dur=[0-9.]+$/);
  });

  it('a large static file is compressed for a client that accepts gzip, and whole for one that does not', async () => {
    const gz = await curl(url('/big.txt'), { headers: ['Accept-Encoding: gzip'] });
    expect(gz.status).toBe(200);
    expect(gz.header('Content-Encoding')).toEqual(['gzip']);
    expect(gz.header('Vary')).toEqual(['Accept-Encoding']);
    expect(gz.bytes).toBeLessThan(BIG.length / 10);
    expect(zlib.gunzipSync(gz.body).equals(BIG)).toBe(true);
    const br = await curl(url('/big.txt'), { headers: ['Accept-Encoding: br;q=1, gzip;q=0.5'] });
    expect(br.header('Content-Encoding')).toEqual(['br']);
    expect(zlib.brotliDecompressSync(br.body).equals(BIG)).toBe(true);
    const plain = await curl(url('/big.txt'));
    expect(plain.header('Content-Encoding')).toEqual([]);
    expect(plain.body.equals(BIG)).toBe(true);
  });

  it('Range and conditional requests pass through the pipeline untouched', async () => {
    const r = await curl(url('/big.txt'), { headers: ['Range: bytes=10-19', 'Accept-Encoding: gzip'] });
    expect(r.status).toBe(206);
    expect(r.header('Content-Range')).toEqual([`bytes 10-19/${BIG.length}`]);
    expect(r.body.equals(BIG.subarray(10, 20))).toBe(true);
    const etag = (await curl(url('/big.txt'))).header('ETag')[0]!;
    const nm = await curl(url('/big.txt'), { headers: [`If-None-Match: ${etag}`] });
    expect(nm.status).toBe(304);
    expect(nm.bytes).toBe(0);
    const head = await curl(url('/big.txt'), { head: true });
    expect(head.status).toBe(200);
    expect(head.header('Content-Length')).toEqual([String(BIG.length)]);
  });

  it('what static files do not have goes to the app, which sees the client address nginx appended, not a spoofed one', async () => {
    const r = await curl(url('/hello?x=1'), { headers: ['X-Forwarded-For: 6.6.6.6', 'X-Request-Id: trace-abc'] });
    expect(r.status, logs()).toBe(200);
    const env = JSON.parse(r.body.toString()) as Record<string, string>;
    expect(env).toMatchObject({ PATH_INFO: '/hello', QUERY_STRING: 'x=1', REMOTE_ADDR: '127.0.0.1', 'tsgi.request_id': 'trace-abc', 'wsgi.url_scheme': 'http' });
    expect(env.HTTP_X_FORWARDED_FOR).toBe('6.6.6.6, 127.0.0.1');
    expect(r.header('X-Request-Id')).toEqual(['trace-abc']);
  });

  it('/api needs Basic auth: 401 with the realm, then REMOTE_USER and the mount in SCRIPT_NAME', async () => {
    const no = await curl(url('/api/things'));
    expect(no.status).toBe(401);
    expect(no.header('WWW-Authenticate')).toEqual(['Basic realm="tsgi API", charset="UTF-8"']);
    const bad = await curl(url('/api/things'), { args: ['-u', 'bob:wrong'] });
    expect(bad.status).toBe(401);
    for (const [user, pass] of [['bob', 'builder'], ['alice', 'wonderland'], ['frank', 'sha512-pass']]) {
      const ok = await curl(url('/api/things/1'), { args: ['-u', `${user}:${pass}`] });
      expect(ok.status, `${user}: ${logs()}`).toBe(200);
      expect(JSON.parse(ok.body.toString())).toEqual({ api: true, user, script: '/api', path: '/things/1' });
    }
  });

  it('an app error is a plain 500 (errors stage), logged with the stack', async () => {
    const r = await curl(url('/fail'));
    expect(r.status).toBe(500);
    expect(r.body.toString()).toBe('Internal Server Error\n');
    expect(r.header('X-Request-Id')).toHaveLength(1);
    await new Promise((res) => setTimeout(res, 200));
    expect(logs()).toContain('fixture app failed on purpose');
  });

  it.each([
    ['/../../etc/passwd'],
    ['/%2e%2e/%2e%2e/etc/passwd'],
    ['/..%2f..%2fetc%2fpasswd'],
    ['/static/..%2f..%2f..%2fetc/passwd'],
    ['/%2e%2e%2f%2e%2e%2fapi/app.mjs'],
    ['/.%2e/config/site.toml'],
    ['/big.txt%00.png'],
    ['/sub/%2e%2e/%2e%2e/app.mjs'],
  ])('traversal %s never serves a file from outside public/', async (p) => {
    const r = await curl(url(p), { args: ['--path-as-is'] });
    const body = r.body.toString();
    expect(body).not.toContain('root:');
    expect(body).not.toContain('export default');
    expect(body).not.toContain('[[pipeline]]');
    // nginx refuses some itself (400); what reaches tsgi is not a static file, so the app answers.
    if (r.status === 200) expect(() => JSON.parse(body)).not.toThrow();
    else expect([400, 404]).toContain(r.status);
  });
});
