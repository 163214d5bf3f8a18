// What an operator sees of a running server, from the outside: the access log (worker, request
// id), the status page (--status-path: JSON or text, one process or a main process gathering its
// workers, over HTTP and FastCGI), and --timeout (504, or a response cut short), all on loopback.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FcgiClient } from '../helpers/fcgi-client.js';
import { request } from '../helpers/http.js';
import { app, freePort, run, serve, sleep, stopAll } from '../helpers/spawn.js';
import { servingLines, until } from '../helpers/workers.js';

afterAll(() => stopAll());
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsgi-observe-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Status {
  server: string;
  pid: number;
  mode: string;
  protocol: string;
  generation: number;
  reloads: number;
  requests: number;
  inFlight: number;
  slowRequests: number;
  timeouts: number;
  workersTotal: number;
  slow: Array<{ path: string; seconds: number; pid: number; worker?: number }>;
  workers: Array<{ pid: number; worker?: number; state: string; requests: number; responded: boolean; generation?: number }>;
}

async function status(port: number, p = '/status'): Promise<Status> {
  const res = await request(port, { path: p });
  expect(res.status).toBe(200);
  expect(res.header('content-type')).toEqual(['application/json']);
  return JSON.parse(res.body.toString()) as Status;
}

describe('the access log', () => {
  it('names the worker and the request id: X-Request-Id when sane, else a generated one', async () => {
    const s = await serve(app('prod-app.mjs'), { args: ['--workers', '2', '--access-log'] });
    await servingLines(s, 2);
    const given = await request(s.port, { path: '/pid', headers: { 'X-Request-Id': 'req-42.abc' } });
    expect(JSON.parse(given.body.toString()).requestId).toBe('req-42.abc');
    const bad = await request(s.port, { path: '/pid', headers: { 'X-Request-Id': 'no spaces please' } });
    const made = JSON.parse(bad.body.toString()).requestId as string;
    expect(made).toMatch(/^[A-Za-z0-9_-]{8}-[0-9a-z]+$/);
    for (let i = 0; i < 6; i++) await request(s.port, { path: '/pid' });
    await until(() => s.logRecords().filter((r) => r.msg === 'request').length >= 8, 'eight access lines');
    const lines = s.logRecords().filter((r) => r.msg === 'request');
    expect(lines.find((r) => r.requestId === 'req-42.abc')).toMatchObject({ method: 'GET', path: '/pid', status: 200 });
    expect(lines.find((r) => r.requestId === made)).toBeDefined();
    expect(new Set(lines.map((r) => r.worker))).toEqual(new Set([1, 2]));
    for (const l of lines) expect(typeof l.ms).toBe('number');
    expect(new Set(lines.map((r) => r.requestId)).size).toBe(lines.length);
    expect(await s.stop()).toBe(0);
  });
});

describe('--status-path', () => {
  it('one process: JSON by default, text with ?text or Accept: text/plain; answered before the app', async () => {
    const s = await serve(app('prod-app.mjs'), { args: ['--status-path', '/-/status'] });
    for (let i = 0; i < 3; i++) await request(s.port, { path: '/pid' });
    const st = await status(s.port, '/-/status');
    expect(st).toMatchObject({ server: 'tsgi', pid: s.pid, mode: 'single', protocol: 'http', requests: 3, inFlight: 1, workersTotal: 1 });
    expect(st.workers[0]).toMatchObject({ pid: s.pid, state: 'serving', responded: true });
    const text = await request(s.port, { path: '/-/status?text' });
    expect(text.header('content-type')).toEqual(['text/plain; charset=utf-8']);
    expect(text.body.toString()).toMatch(/^server: +tsgi\n/);
    expect(text.body.toString()).toMatch(/\nrequests: +4\n/);
    const accept = await request(s.port, { path: '/-/status', headers: { Accept: 'text/plain' } });
    expect(accept.body.toString()).toMatch(/\nin flight: +1\n/);
    const both = await request(s.port, { path: '/-/status', headers: { Accept: 'text/plain, application/json' } });
    expect(both.header('content-type')).toEqual(['application/json']);
    // Any other path is the app's.
    expect(JSON.parse((await request(s.port, { path: '/-/statusx' })).body.toString()).pid).toBe(s.pid);
    expect(await s.stop()).toBe(0);
  });

  it('with workers: the main process gathers every worker, lists slow requests in flight, keeps totals across a reload', async () => {
    const s = await serve(app('prod-app.mjs'), { args: ['--workers', '2', '--status-path', '/status', '--slow-request', '0.3'] });
    await servingLines(s, 2);
    for (let i = 0; i < 10; i++) await request(s.port, { path: '/pid' });
    const mark = path.join(tmp, 'slow-status');
    const slow = request(s.port, { path: `/slow?s=1.5&started=${encodeURIComponent(mark)}`, timeoutMs: 10_000 });
    await until(() => fs.existsSync(mark), 'the slow request to begin');
    await sleep(500);
    const st = await status(s.port);
    expect(st).toMatchObject({ pid: s.pid, mode: 'workers', generation: 1, workersTotal: 2, requests: 10, slowRequests: 0 });
    expect(st.inFlight).toBe(2); // the slow one and this one
    expect(st.workers.map((w) => w.state)).toEqual(['serving', 'serving']);
    expect(st.workers.every((w) => w.responded && w.pid !== s.pid)).toBe(true);
    expect(st.slow).toHaveLength(1);
    expect(st.slow[0]).toMatchObject({ path: '/slow' });
    expect(st.slow[0]!.seconds).toBeGreaterThanOrEqual(0.3);
    expect((await slow).status).toBe(200);
    await until(async () => (await status(s.port)).slowRequests === 1, 'the slow request to be counted');
    process.kill(s.pid, 'SIGHUP');
    await until(() => s.logRecords().filter((r) => typeof r.msg === 'string' && r.msg.startsWith('reload: the new worker')).length === 2, 'the reload');
    await until(async () => (await status(s.port)).workers.every((w) => w.generation === 2), 'only generation 2 left', 15_000);
    const after = await status(s.port);
    expect(after).toMatchObject({ generation: 2, reloads: 1, slowRequests: 1 });
    // The requests of the retired workers still count.
    expect(after.requests).toBeGreaterThanOrEqual(13);
    expect(await s.stop()).toBe(0);
  });

  it('is answered over FastCGI too', async () => {
    const port = await freePort();
    const p = run(['serve', app('prod-app.mjs'), '--protocol', 'fastcgi', '--bind', `127.0.0.1:${port}`, '--status-path', '/status']);
    try {
      await servingLines(p, 1);
      const c = await FcgiClient.connect({ port });
      await c.request(1, { params: { REQUEST_METHOD: 'GET', SCRIPT_NAME: '', PATH_INFO: '/status', QUERY_STRING: '' } });
      const res = (await c.waitEnd(1)).response();
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body.toString())).toMatchObject({ server: 'tsgi', protocol: 'fastcgi', pid: p.pid });
      c.socket.destroy();
    } finally {
      expect(await p.stop()).toBe(0);
    }
  });

  it('refuses a path that does not start with /', async () => {
    const p = run(['serve', app('hello.mjs'), '--bind', '127.0.0.1:0', '--status-path', 'status']);
    expect((await p.waitExit()).code).toBe(2);
    expect(p.stderrLines().join('\n')).toMatch(/--status-path wants a path that starts with \//);
  });
});

describe('--timeout', () => {
  it('before the headers: 504 at the deadline, logged, and the app sees tsgi.signal fire', async () => {
    const s = await serve(app('prod-timeout.mjs'), { args: ['--timeout', '0.5', '--access-log', '--status-path', '/status'] });
    const t0 = Date.now();
    const res = await request(s.port, { path: '/wait?s=10', timeoutMs: 5_000 });
    const took = Date.now() - t0;
    expect(res.status).toBe(504);
    expect(res.body.toString()).toMatch(/^Gateway Timeout/);
    expect(took).toBeGreaterThanOrEqual(450);
    expect(took).toBeLessThan(3_000);
    const stats = JSON.parse((await request(s.port, { path: '/stats' })).body.toString());
    expect(stats).toEqual({ signalled: 1, finished: 0 });
    await until(() => s.logRecords().some((r) => r.code === 'TSGI_REQUEST_TIMEOUT'), 'the timeout log line');
    expect(s.logRecords().find((r) => r.code === 'TSGI_REQUEST_TIMEOUT')).toMatchObject({ level: 'warn', path: '/wait', timeoutS: 0.5 });
    await until(() => s.logRecords().some((r) => r.msg === 'request' && r.path === '/wait'), 'the access line');
    expect(s.logRecords().find((r) => r.msg === 'request' && r.path === '/wait')).toMatchObject({ status: 504, outcome: 'timeout' });
    expect((await status(s.port)).timeouts).toBe(1);
    expect(await s.stop()).toBe(0);
  });

  it('after the headers: the response is cut short, never dressed as complete', async () => {
    const s = await serve(app('prod-timeout.mjs'), { args: ['--timeout', '0.5'] });
    const res = await request(s.port, { path: '/stall?s=10', timeoutMs: 5_000 }).catch((e: Error) => e);
    if (!(res instanceof Error)) {
      expect(res.status).toBe(200);
      expect(res.complete).toBe(false);
      expect(res.body.toString()).toBe('first chunk\n');
    }
    const stats = JSON.parse((await request(s.port, { path: '/stats' })).body.toString());
    expect(stats).toEqual({ signalled: 1, finished: 0 });
    // Quick requests on the same server are not affected.
    expect((await request(s.port, { path: '/fast' })).body.toString()).toBe('fast\n');
    expect(await s.stop()).toBe(0);
  });

  it('over FastCGI: the 504 is a whole response, END_REQUEST included', async () => {
    const port = await freePort();
    const p = run(['serve', app('prod-timeout.mjs'), '--protocol', 'fastcgi', '--bind', `127.0.0.1:${port}`, '--timeout', '0.3']);
    try {
      await servingLines(p, 1);
      const c = await FcgiClient.connect({ port });
      await c.request(1, { params: { REQUEST_METHOD: 'GET', SCRIPT_NAME: '', PATH_INFO: '/wait', QUERY_STRING: 's=10' } });
      const got = await c.waitEnd(1, 3_000);
      expect(got.response().status).toBe(504);
      expect(got.end).toEqual({ appStatus: 0, protocolStatus: 0 });
      c.socket.destroy();
    } finally {
      expect(await p.stop()).toBe(0);
    }
  });
});
