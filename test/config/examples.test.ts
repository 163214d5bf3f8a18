// The examples of docs/configuration.md and docs/middleware.md run as documented: every
// examples/config/*.toml loads and its app answers; examples/middleware/*.ts answer as their
// head comments say; and every TOML or TypeScript block in those two docs is quoted from a
// file under examples/ (or is a file of test/fixtures/config), so no doc example goes untested.

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { buildApp, loadConfig } from '../../src/config/index.js';
import { runApp } from '../../src/runner/run.js';
import type { App } from '../../src/types.js';
import { makeRequest } from '../helpers/recording-sink.js';

const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

async function get(app: App, vars: Record<string, string>) {
  const req = makeRequest({ REMOTE_ADDR: '127.0.0.1', HTTP_HOST: 'localhost', ...vars });
  const result = await runApp(req.options(app));
  const head = req.sink.calls.find((c) => c.kind === 'start') as { status: string } | undefined;
  return { status: Number(head?.status.slice(0, 3)), header: (n: string) => req.sink.header(n)[0], body: Buffer.from(req.sink.collect()), text: req.sink.text(), result };
}

describe('examples/config', () => {
  it('tsgi.toml: server settings, static files first, then the app, compressed, with a request id', async () => {
    const c = loadConfig('examples/config/tsgi.toml');
    expect(c.serve).toMatchObject({ protocol: 'http', bind: '127.0.0.1:8000', workers: '1', maxBodySize: '10m', maxHeaderSize: '64k', idleTimeout: '300', headerTimeout: '60' });
    const app = await buildApp(c);
    const index = await get(app, { PATH_INFO: '/' });
    expect(index.text).toContain('Served from public/');
    expect(index.header('Cache-Control')).toBe('public, max-age=3600');
    const hello = await get(app, { PATH_INFO: '/hello' });
    expect(hello.text).toBe('app at "", path "/hello", user (none)\n');
    expect(hello.header('X-Request-Id')).toBeDefined();
    const boom = await get(app, { PATH_INFO: '/boom' });
    expect(boom.status).toBe(500);
  });

  it('multi.toml: the API behind auth at /api/v1, the admin host, the site at /', async () => {
    const app = await buildApp(loadConfig('examples/config/multi.toml'));
    expect((await get(app, { PATH_INFO: '/api/v1/x' })).status).toBe(401);
    const api = await get(app, { PATH_INFO: '/api/v1/x', HTTP_AUTHORIZATION: basic('ada', 'lovelace'), HTTP_ACCEPT_ENCODING: 'gzip' });
    expect(JSON.parse(api.text)).toEqual({ api: 'v1', user: 'ada', path: '/x' });
    expect(api.header('Server-Timing')).toMatch(/^app;dur=/);
    const admin = await get(app, { HTTP_HOST: 'admin.example.test', PATH_INFO: '/', HTTP_AUTHORIZATION: basic('grace', 'hopper') });
    expect(admin.text).toBe('admin for grace\n');
    expect((await get(app, { HTTP_HOST: 'admin.example.test', PATH_INFO: '/' })).status).toBe(401);
    expect((await get(app, { PATH_INFO: '/' })).text).toContain('Served from public/');
    expect((await get(app, { PATH_INFO: '/page' })).text).toBe('app at "", path "/page", user (none)\n');
    const fwd = await get(app, { PATH_INFO: '/api/v1/y', HTTP_AUTHORIZATION: basic('ada', 'lovelace'), HTTP_X_FORWARDED_PROTO: 'https' });
    expect(fwd.status).toBe(200);
  });

  it('fastcgi.toml: the settings of a service', async () => {
    const c = loadConfig('examples/config/fastcgi.toml');
    expect(c.serve).toEqual({
      protocol: 'fastcgi',
      bind: 'unix:/run/tsgi/app.sock',
      socketMode: '660',
      workers: 'auto',
      gracefulTimeout: '30',
      accessLog: true,
      logLevel: 'info',
      maxBodySize: '50m',
      maxRequestsPerConn: '100',
      maxConnections: '10000',
      fcgiStderr: true,
    });
    const app = await buildApp(c);
    expect((await get(app, { PATH_INFO: '/x' })).status).toBe(200);
  });
});

describe('examples/middleware', () => {
  it('site.ts: static index, the app compressed, the API as ada, errors caught', async () => {
    const { default: app } = (await import('../../examples/middleware/site.js')) as { default: App };
    const index = await get(app, { PATH_INFO: '/' });
    expect(index.text).toContain('Static index');
    expect(index.header('X-Request-Id')).toBeDefined();
    const hello = await get(app, { PATH_INFO: '/hello', HTTP_ACCEPT_ENCODING: 'gzip' });
    expect(hello.header('Content-Encoding')).toBe('gzip');
    expect(zlib.gunzipSync(hello.body).toString()).toContain('Hello from /hello');
    const api = await get(app, { PATH_INFO: '/api/me', HTTP_AUTHORIZATION: basic('ada', 'lovelace') });
    expect(JSON.parse(api.text)).toEqual({ user: 'ada', mountedAt: '/api', path: '/me' });
    expect((await get(app, { PATH_INFO: '/api/me' })).status).toBe(401);
    expect((await get(app, { PATH_INFO: '/boom' })).text).toBe('Internal Server Error\n');
    const behind = await get(app, { PATH_INFO: '/hello', HTTP_X_FORWARDED_FOR: '198.51.100.4', HTTP_X_FORWARDED_PROTO: 'https' });
    expect(behind.status).toBe(200);
  });

  it('own-middleware.ts: headers added, the app\'s own kept', async () => {
    const { default: app, securityHeaders } = (await import('../../examples/middleware/own-middleware.js')) as { default: App; securityHeaders: (a: App, h?: Array<[string, string]>) => App };
    const r = await get(app, { PATH_INFO: '/' });
    expect(r.header('X-Content-Type-Options')).toBe('nosniff');
    expect(r.header('Content-Security-Policy')).toBe("default-src 'self'");
    const own: App = (_e, sr) => (sr('200 OK', [['Content-Type', 'text/plain'], ['Referrer-Policy', 'no-referrer']]), ['x']);
    const r2 = await get(securityHeaders(own), {});
    expect(r2.header('Referrer-Policy')).toBe('no-referrer');
  });
});

describe('docs quote tested files', () => {
  const sources = (dir: string, exts: string[]): string[] =>
    fs.readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((d) => d.isFile() && exts.some((e) => d.name.endsWith(e)))
      .map((d) => fs.readFileSync(path.join(d.parentPath ?? (d as unknown as { path: string }).path, d.name), 'utf8'));
  const files = [...sources('examples', ['.toml', '.ts', '.mjs']), ...sources('test/fixtures/config', ['.toml', '.mjs'])];

  for (const doc of ['docs/configuration.md', 'docs/middleware.md']) {
    it(`every toml/ts block of ${doc} is in a file that a test runs`, () => {
      const text = fs.readFileSync(doc, 'utf8');
      const blocks = [...text.matchAll(/```(toml|ts|js)\n([\s\S]*?)```/g)].map((m) => m[2]!);
      expect(blocks.length).toBeGreaterThanOrEqual(3);
      for (const b of blocks) {
        const body = b.replace(/\n$/, '');
        expect(files.some((f) => f.includes(body)), `not quoted from examples/ or test/fixtures/config:\n${body}`).toBe(true);
      }
    });
  }
});
