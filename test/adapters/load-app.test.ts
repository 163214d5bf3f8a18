// How an export becomes a TSGI app (src/load-app.ts, src/adapters/index.ts): by its shape, or as
// --interface / TSGI_INTERFACE says; each result then answers a request. And the same through
// bin/tsgi: serve and cgi with --interface, the errors and the warning.

import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { adaptExport } from '../../src/adapters/index.js';
import { loadAdaptedApp } from '../../src/load-app.js';
import type { App } from '../../src/types.js';
import { request } from '../helpers/http.js';
import { makeRequest } from '../helpers/recording-sink.js';
import { app as fixtureApp, ROOT, serve, stopAll, TSGI } from '../helpers/spawn.js';

const fw = (name: string): string => path.join(ROOT, 'test/fixtures/frameworks', name);

afterAll(() => stopAll());
afterEach(() => {
  delete process.env.TSGI_INTERFACE;
});

async function answer(app: App, vars: Record<string, string> = {}): Promise<{ status: string; text: string }> {
  const r = makeRequest({ HTTP_HOST: 'example.test', ...vars });
  await r.run(app);
  return { status: r.sink.head.status, text: r.sink.text() };
}

describe('the export decides (no --interface)', () => {
  const cases: Array<[file: string, iface: string, reason: RegExp, path: string, expected: RegExp]> = [
    ['hono.mjs', 'fetch', /fetch\(\)/, '/hello', /^Hello from hono!$/],
    ['fetch-object.mjs', 'fetch', /fetch\(\)/, '/x', /"greeting":"hello","path":"\/x"/],
    ['fetch-function.mjs', 'fetch', /one parameter/, '/y', /^GET \/y\n$/],
    ['express.mjs', 'node', /Express/, '/hello', /^Hello from express!$/],
    ['koa.mjs', 'node', /Koa/, '/hello', /^Hello from koa!$/],
    ['fastify.mjs', 'node', /Fastify/, '/hello', /^Hello from fastify!$/],
    ['node-server.mjs', 'node', /node:http server/, '/z', /^server says \/z\n$/],
  ];
  for (const [file, iface, reason, p, expected] of cases) {
    it(`${file}: ${iface}`, async () => {
      const a = await loadAdaptedApp(fw(file));
      expect(a.interface).toBe(iface);
      expect(a.reason).toMatch(reason);
      const r = await answer(a.app, { PATH_INFO: p });
      expect(r.status).toBe('200 OK');
      expect(r.text).toMatch(expected);
    });
  }

  it('a two-parameter function is TSGI, also when spelled (req, res)', async () => {
    expect((await loadAdaptedApp(fixtureApp('hello.mjs'))).interface).toBe('tsgi');
    expect((await loadAdaptedApp(fw('node-listener.mjs'))).interface).toBe('tsgi');
  });

  it('a function of no parameters (a wrapper taking ...args) stays TSGI', async () => {
    expect((await adaptExport((...args: unknown[]) => args, undefined, 'x')).interface).toBe('tsgi');
  });
});

describe('--interface decides', () => {
  it('node: a plain (req, res) listener', async () => {
    const a = await loadAdaptedApp(fw('node-listener.mjs'), { interface: 'node' });
    expect(a.interface).toBe('node');
    expect((await answer(a.app, { PATH_INFO: '/p', REMOTE_ADDR: '192.0.2.1' })).text).toBe('GET /p from 192.0.2.1\n');
  });

  it('TSGI_INTERFACE (what --interface sets) is the default', async () => {
    process.env.TSGI_INTERFACE = 'node';
    expect((await loadAdaptedApp(fw('node-listener.mjs'))).interface).toBe('node');
  });

  it('fetch: a two-parameter function taken as (request, env)', async () => {
    const a = await adaptExport((req: Request, env: unknown) => new Response(`${req.method} ${typeof env}`), 'fetch', 'x');
    expect((await answer(a.app)).text).toBe('GET object');
  });

  it('tsgi: an object is refused, the code names why', async () => {
    await expect(loadAdaptedApp(fw('hono.mjs'), { interface: 'tsgi' })).rejects.toMatchObject({ code: 'TSGI_APP_NOT_FUNCTION' });
  });

  it('a shape the interface cannot serve, and an unknown interface, are usage errors', async () => {
    await expect(adaptExport({ nothing: true }, 'fetch', "export 'default' of a.mjs")).rejects.toMatchObject({
      code: 'TSGI_APP_BAD_INTERFACE',
      message: expect.stringMatching(/--interface fetch wants/),
    });
    await expect(adaptExport(42, 'node', "export 'default' of a.mjs")).rejects.toMatchObject({ code: 'TSGI_APP_BAD_INTERFACE' });
    await expect(adaptExport({ nothing: true }, undefined, "export 'default' of a.mjs")).rejects.toMatchObject({
      code: 'TSGI_APP_NOT_FUNCTION',
      message: expect.stringMatching(/not a function.*fetch\(\).*callback\(\).*routing\(\)/),
    });
    await expect(loadAdaptedApp(fw('hono.mjs'), { interface: 'wsgi' })).rejects.toMatchObject({ code: 'TSGI_BAD_OPTION' });
  });
});

describe('bin/tsgi --interface', () => {
  it('serve --interface node: a (req, res) listener over HTTP', async () => {
    const s = await serve(fw('node-listener.mjs'), { args: ['--interface', 'node'] });
    const r = await request(s.port, { path: '/via-cli' });
    expect(r.body.toString()).toBe('GET /via-cli from 127.0.0.1\n');
    await s.stop();
  });

  it('serve without it: a (req, res) function is served as TSGI, with a warning saying how to change that', async () => {
    const s = await serve(fw('node-listener.mjs'));
    const warning = await s.waitForStderr(/TSGI_APP_LOOKS_LIKE_NODE/);
    expect(warning).toMatch(/--interface node/);
    await s.stop();
  });

  it('serve: a Hono app with no flag', async () => {
    const s = await serve(fw('hono.mjs'));
    const r = await request(s.port, { path: '/users/7' });
    expect(JSON.parse(r.body.toString())).toEqual({ framework: 'hono', id: '7' });
    await s.stop();
  });

  it('an unknown --interface is refused by the option parser', () => {
    const r = spawnSync(process.execPath, [TSGI, 'serve', fw('hono.mjs'), '--interface', 'wsgi', '--bind', '127.0.0.1:0'], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--interface.*wsgi.*(tsgi, fetch, node|Allowed choices)/s);
  });

  it('--interface fetch on an export that has no fetch(): one line, exit 2', () => {
    const r = spawnSync(process.execPath, [TSGI, 'serve', fixtureApp('not-a-function.mjs'), '--interface', 'fetch', '--bind', '127.0.0.1:0'], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/not-a-function\.mjs.*--interface fetch wants/);
  });

  it('cgi --interface node: the answer on stdout', () => {
    const r = spawnSync(process.execPath, [TSGI, 'cgi', fw('node-listener.mjs'), '--interface', 'node'], {
      encoding: 'latin1',
      timeout: 10_000,
      env: { PATH: process.env.PATH, GATEWAY_INTERFACE: 'CGI/1.1', REQUEST_METHOD: 'GET', SCRIPT_NAME: '/cgi-bin/x', PATH_INFO: '/cgi', SERVER_NAME: 'h', SERVER_PORT: '80', SERVER_PROTOCOL: 'HTTP/1.1', REMOTE_ADDR: '10.9.8.7' },
      input: '',
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Status: 200 OK\r\n/);
    expect(r.stdout).toMatch(/\r\n\r\nGET \/cgi from 10\.9\.8\.7\n$/);
  });
});
