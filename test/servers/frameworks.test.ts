// Real framework apps, unchanged, through tsgi: a Hono app (Fetch handler), an Express, a Koa and
// a Fastify app (Node listeners), each in test/fixtures/frameworks/, with the same routes. Each
// goes through FastCGI behind nginx (at the root and mounted at /mnt), through CGI (bin/tsgi cgi
// with the request in its environment and on stdin) and through tsgi's HTTP server: routing, JSON
// bodies, a multipart upload through the framework's own parser (undici's formData, multer,
// @koa/multer, @fastify/multipart), a streamed response, cookies, a redirect, the error handler.

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCgiHead } from '../../src/runner/cgi-head.js';
import { freePorts, stopAllDaemons, within } from './helpers/daemon.js';
import { makeTempDir, removeTempDirs } from './helpers/fs-access.js';
import { startNginx, type WebServer } from './helpers/nginx.js';
import { describeWith, Requirements } from './helpers/require.js';
import { ROOT, startTsgi, type Tsgi } from './helpers/tsgi.js';

const FRAMEWORKS = ['hono', 'express', 'koa', 'fastify'] as const;
type Framework = (typeof FRAMEWORKS)[number];
const appOf = (fw: Framework): string => `test/fixtures/frameworks/${fw}.mjs`;

afterAll(async () => {
  await stopAllDaemons();
  removeTempDirs();
});

// ---------------------------------------------------------------------------------------------
// One client interface for the three ways in.

interface Req {
  method?: string;
  /** Path and query below the app's mount point. */
  path: string;
  headers?: Record<string, string>;
  body?: Buffer;
}

interface Res {
  status: number;
  /** Header lines in order, repeats kept. */
  headers: Array<[string, string]>;
  header(name: string): string[];
  body: Buffer;
  /** ms from the request to each piece of body (HTTP clients only). */
  arrivals: number[];
  json(): Record<string, unknown>;
}

type Client = (r: Req) => Promise<Res>;

function makeRes(status: number, headers: Array<[string, string]>, body: Buffer, arrivals: number[]): Res {
  return {
    status,
    headers,
    header: (name) => headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v),
    body,
    arrivals,
    json() {
      try {
        return JSON.parse(body.toString('utf8')) as Record<string, unknown>;
      } catch {
        throw new Error(`not JSON (status ${status}): ${body.subarray(0, 300).toString('latin1')}`);
      }
    },
  };
}

/** node:http to a port (nginx or tsgi's HTTP server), `prefix` put before every path. */
function httpClient(port: () => number, prefix = ''): Client {
  return (r) =>
    within(
      new Promise<Res>((resolve, reject) => {
        const started = performance.now();
        const req = http.request(
          { host: '127.0.0.1', port: port(), method: r.method ?? 'GET', path: prefix + r.path, headers: r.headers, agent: false },
          (res) => {
            const chunks: Buffer[] = [];
            const arrivals: number[] = [];
            res.on('data', (c: Buffer) => {
              chunks.push(c);
              arrivals.push(performance.now() - started);
            });
            res.on('end', () => {
              const raw = res.rawHeaders;
              const headers: Array<[string, string]> = [];
              for (let i = 0; i < raw.length; i += 2) headers.push([raw[i]!, raw[i + 1]!]);
              resolve(makeRes(res.statusCode ?? 0, headers, Buffer.concat(chunks), arrivals));
            });
            res.on('error', reject);
          },
        );
        req.on('error', reject);
        req.end(r.body);
      }),
      30_000,
      `${r.method ?? 'GET'} ${prefix}${r.path}`,
    );
}

/** bin/tsgi cgi APP as a web server runs it for `/cgi-bin/app.cgi` + the path. */
function cgiClient(fw: Framework): Client {
  return (r) => {
    const q = r.path.indexOf('?');
    const pathInfo = decodeURIComponent(q >= 0 ? r.path.slice(0, q) : r.path);
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      GATEWAY_INTERFACE: 'CGI/1.1',
      SERVER_SOFTWARE: 'test-harness/1',
      SERVER_NAME: 'example.test',
      SERVER_PORT: '8080',
      SERVER_PROTOCOL: 'HTTP/1.1',
      REMOTE_ADDR: '127.0.0.1',
      REMOTE_PORT: '40000',
      REQUEST_METHOD: r.method ?? 'GET',
      SCRIPT_NAME: '/cgi-bin/app.cgi',
      // Decoded; spawn writes it as UTF-8, the bytes a web server would put there.
      PATH_INFO: pathInfo,
      QUERY_STRING: q >= 0 ? r.path.slice(q + 1) : '',
      REQUEST_URI: `/cgi-bin/app.cgi${r.path}`,
      HTTP_HOST: 'example.test:8080',
    };
    for (const [name, value] of Object.entries(r.headers ?? {})) {
      const key = name.toLowerCase() === 'content-type' ? 'CONTENT_TYPE' : `HTTP_${name.toUpperCase().replaceAll('-', '_')}`;
      env[key] = value;
    }
    if (r.body) env.CONTENT_LENGTH = String(r.body.length);
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/tsgi'), 'cgi', path.join(ROOT, appOf(fw))], {
      cwd: ROOT,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.stdin.on('error', () => {});
    child.stdin.end(r.body);
    const done = new Promise<Res>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code) => {
        const buf = Buffer.concat(out);
        const head = parseCgiHead(buf);
        if (!head) return reject(new Error(`no CGI head (exit ${code}); stderr: ${err}`));
        resolve(makeRes(head.status, head.headers, buf.subarray(head.bodyOffset), []));
      });
    });
    return within(done, 30_000, `cgi ${fw} ${r.path}`).catch((e: unknown) => {
      child.kill('SIGKILL');
      throw e;
    });
  };
}

// ---------------------------------------------------------------------------------------------
// What every framework does, whichever way in.

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A multipart/form-data body as a browser would send it (undici's FormData encoder). */
async function multipart(fields: Record<string, string>, files: Array<{ field: string; name: string; type: string; data: Buffer }>) {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  for (const f of files) form.append(f.field, new Blob([f.data], { type: f.type }), f.name);
  const res = new Response(form);
  return { body: Buffer.from(await res.arrayBuffer()), contentType: res.headers.get('content-type')! };
}

interface SuiteOptions {
  /** The front end passes each piece of a streamed response on as it comes. */
  streams: boolean;
  /** The client's address as the app sees it. */
  ip: string;
  /** The Host header the client sends (or the front end fills in). */
  host: () => string;
}

function frameworkSuite(fw: Framework, client: () => Client, o: SuiteOptions): void {
  it(`${fw}: a route answers text`, async () => {
    const r = await client()({ path: '/hello' });
    expect(r.status).toBe(200);
    expect(r.header('content-type')[0]).toMatch(/^text\/plain/);
    expect(r.body.toString()).toBe(`Hello from ${fw}!`);
  });

  it(`${fw}: route parameters, UTF-8 in the path`, async () => {
    const r = await client()({ path: '/users/caf%C3%A9-42' });
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ framework: fw, id: 'café-42' });
  });

  it(`${fw}: a JSON request body is parsed, a JSON response sent`, async () => {
    const r = await client()({
      method: 'POST',
      path: '/json',
      headers: { 'Content-Type': 'application/json' },
      body: Buffer.from(JSON.stringify({ a: 2, b: 40, note: 'héllo' })),
    });
    expect(r.status).toBe(200);
    expect(r.header('content-type')[0]).toMatch(/^application\/json/);
    expect(r.json()).toEqual({ framework: fw, received: { a: 2, b: 40, note: 'héllo' }, sum: 42 });
  });

  it(`${fw}: a multipart upload through the framework's parser (a field, a text file, 600 KiB of binary)`, async () => {
    const big = randomBytes(600 * 1024);
    const small = Buffer.from('hello, file\n');
    const m = await multipart({ title: 'two files' }, [
      { field: 'notes', name: 'notes.txt', type: 'text/plain', data: small },
      { field: 'blob', name: 'data.bin', type: 'application/octet-stream', data: big },
    ]);
    const r = await client()({ method: 'POST', path: '/upload', headers: { 'Content-Type': m.contentType }, body: m.body });
    expect(r.status, r.body.toString()).toBe(200);
    const got = r.json() as { fields: Record<string, string>; files: Array<Record<string, unknown>> };
    expect(got.fields).toEqual({ title: 'two files' });
    expect(got.files).toEqual([
      { field: 'notes', filename: 'notes.txt', type: 'text/plain', size: small.length, sha256: sha256(small) },
      { field: 'blob', filename: 'data.bin', type: 'application/octet-stream', size: big.length, sha256: sha256(big) },
    ]);
  });

  it(`${fw}: a streamed response${o.streams ? ', its pieces arriving as they are written' : ''}`, async () => {
    const r = await client()({ path: '/stream?n=6' });
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe([1, 2, 3, 4, 5, 6].map((i) => `tick ${i}\n`).join(''));
    expect(r.header('transfer-encoding').filter((v) => v !== 'chunked')).toEqual([]);
    if (o.streams) {
      // Six ticks 50 ms apart: the first piece is there long before the last.
      expect(r.arrivals.length).toBeGreaterThan(1);
      expect(r.arrivals[r.arrivals.length - 1]! - r.arrivals[0]!).toBeGreaterThan(150);
    }
  });

  it(`${fw}: two cookies set, both Set-Cookie headers kept; cookies read back`, async () => {
    const r = await client()({ path: '/cookies/set' });
    expect(r.status).toBe(200);
    const set = r.header('set-cookie');
    expect(set).toHaveLength(2);
    expect(set[0]).toMatch(/^a=1; path=\//i);
    expect(set[0]).toMatch(/httponly/i);
    expect(set[1]).toMatch(/^b=2; path=\//i);
    const back = await client()({ path: '/cookies/echo', headers: { Cookie: 'a=1; b=2' } });
    expect(back.json()).toEqual({ framework: fw, cookies: { a: '1', b: '2' } });
  });

  it(`${fw}: a redirect`, async () => {
    const r = await client()({ path: '/redirect' });
    expect(r.status).toBe(302);
    expect(r.header('location')).toEqual(['/hello']);
  });

  it(`${fw}: the app's error handler answers a thrown error`, async () => {
    const r = await client()({ path: '/error' });
    expect(r.status).toBe(500);
    expect(r.json()).toEqual({ framework: fw, error: 'boom' });
  });

  it(`${fw}: an unknown path is the framework's 404`, async () => {
    const r = await client()({ path: '/no/such/route' });
    expect(r.status).toBe(404);
  });

  it(`${fw}: HEAD gets the head of GET, no body`, async () => {
    const r = await client()({ method: 'HEAD', path: '/hello' });
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(0);
  });

  it(`${fw}: the request as the framework sees it: method, url, host, client address, scheme, query`, async () => {
    const r = await client()({ path: '/info?x=1&y=caf%C3%A9', headers: { 'X-Extra': 'yes' } });
    const info = r.json();
    expect(info).toMatchObject({ framework: fw, method: 'GET', ip: o.ip, protocol: 'http', query: { x: '1', y: 'café' } });
    // Express's originalUrl is the full path (mount point included); the others see the path below it.
    expect(info.url).toMatch(/\/info\?x=1&y=caf%C3%A9$/);
    expect(info.host).toBe(o.host());
  });
}

// ---------------------------------------------------------------------------------------------
// tsgi's HTTP server, and CGI: no web server needed.

describe('frameworks through tsgi serve --protocol http', () => {
  const servers = {} as Record<Framework, Tsgi>;
  beforeAll(async () => {
    await Promise.all(FRAMEWORKS.map(async (fw) => (servers[fw] = await startTsgi({ app: appOf(fw), protocol: 'http' }))));
  });
  afterAll(async () => {
    for (const fw of FRAMEWORKS) await servers[fw]?.daemon.stop();
  });
  for (const fw of FRAMEWORKS) {
    const port = (): number => (servers[fw].endpoint as { port: number }).port;
    describe(fw, () => frameworkSuite(fw, () => httpClient(port), { streams: true, ip: '127.0.0.1', host: () => `127.0.0.1:${port()}` }));
  }
});

describe('frameworks through bin/tsgi cgi', () => {
  for (const fw of FRAMEWORKS) {
    describe(fw, () => frameworkSuite(fw, () => cgiClient(fw), { streams: false, ip: '127.0.0.1', host: () => 'example.test:8080' }));
  }
});

// ---------------------------------------------------------------------------------------------
// nginx -> tsgi FastCGI, each framework at the root and at /mnt (SCRIPT_NAME /mnt).

const nginxReq = new Requirements().binary('nginx', 'apt-get install nginx-light');

const NGINX_PARAMS = `fastcgi_param REQUEST_METHOD    $request_method;
fastcgi_param QUERY_STRING      $query_string;
fastcgi_param CONTENT_TYPE      $content_type;
fastcgi_param CONTENT_LENGTH    $content_length;
fastcgi_param REQUEST_URI       $request_uri;
fastcgi_param SERVER_PROTOCOL   $server_protocol;
fastcgi_param REQUEST_SCHEME    $scheme;
fastcgi_param HTTPS             $https if_not_empty;
fastcgi_param SERVER_NAME       $host;
fastcgi_param SERVER_PORT       $server_port;
fastcgi_param SERVER_ADDR       $server_addr;
fastcgi_param REMOTE_ADDR       $remote_addr;
fastcgi_param REMOTE_PORT       $remote_port;
fastcgi_param GATEWAY_INTERFACE CGI/1.1;
fastcgi_param SERVER_SOFTWARE   nginx/$nginx_version;
`;

describeWith('nginx → tsgi FastCGI → framework apps', nginxReq, () => {
  const ctx = {} as { dir: string; nginx: WebServer; tsgi: Record<Framework, Tsgi>; ports: Record<Framework, number> };

  beforeAll(async () => {
    ctx.dir = makeTempDir('nginx-frameworks');
    ctx.tsgi = {} as Record<Framework, Tsgi>;
    await Promise.all(
      FRAMEWORKS.map(async (fw) => {
        ctx.tsgi[fw] = await startTsgi({ app: appOf(fw), protocol: 'fastcgi', socket: path.join(ctx.dir, `${fw}.sock`) });
      }),
    );
    const ports = await freePorts(FRAMEWORKS.length);
    ctx.ports = Object.fromEntries(FRAMEWORKS.map((fw, i) => [fw, ports[i]!])) as Record<Framework, number>;
    const params = path.join(ctx.dir, 'tsgi_fastcgi_params');
    fs.writeFileSync(params, NGINX_PARAMS);
    const servers = FRAMEWORKS.map(
      (fw) => `
  upstream tsgi_${fw} {
    server unix:${path.join(ctx.dir, `${fw}.sock`)};
    keepalive 8;
  }
  server {
    listen 127.0.0.1:${ctx.ports[fw]};
    location / {
      include ${params};
      fastcgi_param SCRIPT_NAME "";
      fastcgi_param PATH_INFO $uri;
      fastcgi_keep_conn on;
      fastcgi_pass tsgi_${fw};
    }
    location /mnt/ {
      fastcgi_split_path_info ^(/mnt)(/.*)$;
      include ${params};
      fastcgi_param SCRIPT_NAME $fastcgi_script_name;
      fastcgi_param PATH_INFO $fastcgi_path_info;
      fastcgi_keep_conn on;
      fastcgi_pass tsgi_${fw};
    }
  }`,
    );
    ctx.nginx = await startNginx({ dir: ctx.dir, http: servers.join('\n'), ports: Object.values(ctx.ports) });
  });

  afterAll(async () => {
    await ctx.nginx?.daemon.stop();
    for (const fw of FRAMEWORKS) await ctx.tsgi?.[fw]?.daemon.stop();
  });

  for (const fw of FRAMEWORKS) {
    const port = (): number => ctx.ports[fw];
    describe(`${fw} at /`, () => frameworkSuite(fw, () => httpClient(port), { streams: true, ip: '127.0.0.1', host: () => `127.0.0.1:${port()}` }));
    describe(`${fw} at /mnt`, () =>
      frameworkSuite(fw, () => httpClient(port, '/mnt'), { streams: true, ip: '127.0.0.1', host: () => `127.0.0.1:${port()}` }));
  }
});
