// The process model from the operator's side: `bin/tsgi serve --workers N` on loopback, signals
// sent to the main process's pid, requests kept going while workers crash, reload, recycle and
// stop. Every wait is bounded; every process is stopped by pid (stopAll in afterAll).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { request } from '../helpers/http.js';
import { app, canConnect, freePort, run, serve, sleep, stopAll, within } from '../helpers/spawn.js';
import { distinct, loadLoop, records, servingLines, until } from '../helpers/workers.js';

afterAll(() => stopAll());

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsgi-workers-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const json = async (port: number, p = '/pid', headers?: Record<string, string>) => {
  const res = await request(port, { path: p, headers });
  expect(res.status, res.body.toString()).toBe(200);
  return JSON.parse(res.body.toString()) as Record<string, unknown>;
};

describe('--workers N', () => {
  it('answers from N worker processes, none of them the main one; wsgi.multiprocess is true', async () => {
    const s = await serve(app('prod-app.mjs'), { args: ['--workers', '2'] });
    await servingLines(s, 2);
    const bodies = [];
    for (let i = 0; i < 12; i++) bodies.push(await json(s.port));
    const pids = distinct(bodies, 'pid');
    expect(pids.size).toBe(2);
    expect(pids.has(s.pid)).toBe(false);
    expect(bodies.every((b) => b.multiprocess === true)).toBe(true);
    expect(await s.stop()).toBe(0);
    expect(records(s, 'tsgi main process: 2 workers')[0]?.pid).toBe(s.pid);
  });

  it('with one worker (the default) the process serves itself and wsgi.multiprocess is false', async () => {
    const s = await serve(app('prod-app.mjs'));
    const b = await json(s.port);
    expect([b.pid, b.multiprocess]).toEqual([s.pid, false]);
    expect(await s.stop()).toBe(0);
  });

  it('a worker that crashes is replaced, and the main process logs why', async () => {
    const s = await serve(app('prod-app.mjs'), { args: ['--workers', '2'] });
    await servingLines(s, 2);
    const crashed = await json(s.port, '/crash');
    await until(() => records(s, 'worker died; starting a new one').length === 1, 'the main process to log the death');
    const died = records(s, 'worker died; starting a new one')[0]!;
    expect(died.pid).toBe(s.pid);
    expect(died.workerPid).toBe(crashed.pid);
    expect(died.code).toBe(1);
    expect(String(died.reason)).toMatch(/exited with code 1: Error: boom: \/crash asked for it/);
    // The worker's own last words, as a log line.
    expect(s.logRecords().some((r) => r.pid === crashed.pid && r.level === 'fatal' && /uncaught exception/.test(String(r.msg)))).toBe(true);
    await servingLines(s, 3);
    // Killed from outside: the reason is the signal.
    const victim = (await json(s.port)).pid as number;
    process.kill(victim, 'SIGKILL');
    await until(() => records(s, 'worker died; starting a new one').length === 2, 'the second death to be logged');
    expect(records(s, 'worker died; starting a new one')[1]).toMatchObject({ workerPid: victim, signal: 'SIGKILL', reason: 'killed by SIGKILL' });
    await servingLines(s, 4);
    const pids = new Set<unknown>();
    for (let i = 0; i < 10; i++) pids.add((await json(s.port)).pid);
    expect(pids.size).toBe(2);
    expect(pids.has(crashed.pid)).toBe(false);
    expect(pids.has(victim)).toBe(false);
    expect(await s.stop()).toBe(0);
  });

  it('workers that die at start-up are retried after growing pauses while the others serve, until one starts', async () => {
    const flag = path.join(tmp, 'fail-start');
    const s = await serve(app('prod-app.mjs'), { args: ['--workers', '2'], env: { TSGI_TEST_FAIL_FLAG: flag } });
    await servingLines(s, 2);
    fs.writeFileSync(flag, '');
    await json(s.port, '/crash');
    // The replacement cannot load the app: 500 ms, 1 s, 2 s... between attempts.
    await until(() => records(s, 'worker died while starting').length >= 3, 'three failed starts', 15_000);
    const fails = records(s, 'worker died while starting');
    expect(fails.slice(0, 3).map((r) => r.restartInMs)).toEqual([500, 1000, 2000]);
    expect(String(fails[0]!.reason)).toMatch(/exited with code 2/);
    expect(s.stderrLines().some((l) => /start-up failure: .*fail-start exists/.test(l))).toBe(true);
    // Meanwhile the remaining worker answers every request.
    const survivor = new Set<unknown>();
    for (let i = 0; i < 6; i++) survivor.add((await json(s.port)).pid);
    expect(survivor.size).toBe(1);
    fs.rmSync(flag);
    await servingLines(s, 3, 15_000);
    const pids = new Set<unknown>();
    for (let i = 0; i < 10; i++) pids.add((await json(s.port)).pid);
    expect(pids.size).toBe(2);
    expect(await s.stop()).toBe(0);
  });

  it('at the first start, workers that cannot load the app end the main process with exit 2 and the reason', async () => {
    const flag = path.join(tmp, 'fail-first');
    fs.writeFileSync(flag, '');
    const port = await freePort();
    const p = run(['serve', app('prod-app.mjs'), '--bind', `127.0.0.1:${port}`, '--workers', '2'], { env: { TSGI_TEST_FAIL_FLAG: flag } });
    const exit = await p.waitExit(15_000);
    expect(exit.code).toBe(2);
    expect(p.stderrLines().some((l) => /start-up failure: .*fail-first exists/.test(l))).toBe(true);
    expect(records(p, 'worker could not start; stopping')).toHaveLength(1);
  });

  it('a missing app file is told by the main process at once (exit 2), not by a loop of workers', async () => {
    const port = await freePort();
    const p = run(['serve', 'test/fixtures/apps/missing.mjs', '--bind', `127.0.0.1:${port}`, '--workers', '2']);
    const exit = await p.waitExit(10_000);
    expect(exit.code).toBe(2);
    expect(p.stderrLines()).toEqual([expect.stringMatching(/^tsgi: app file not found: .*missing\.mjs$/)]);
  });
});

describe('SIGHUP: reload', () => {
  it('under a steady stream of requests no request fails, and the new workers run the changed app file', async () => {
    const file = path.join(tmp, 'reloaded-app.mjs');
    fs.copyFileSync(app('prod-app.mjs'), file);
    const s = await serve(file, { args: ['--workers', '2'] });
    await servingLines(s, 2);
    const fresh = loadLoop(s.port, { concurrency: 4 });
    const kept = loadLoop(s.port, { concurrency: 2, keepAlive: true });
    await sleep(1000);
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace("const VERSION = 'v1';", "const VERSION = 'v2';"));
    const before = fresh.result.ok + kept.result.ok;
    process.kill(s.pid, 'SIGHUP');
    // Both old workers are replaced (each once its successor listens) and have exited.
    await until(() => records(s, 'reload: the new worker').length === 2, 'both old workers to be retired');
    await until(() => records(s, 'stopping: no new connections').length === 2, 'both old workers to stop');
    await sleep(1000);
    const a = await fresh.stop();
    const b = await kept.stop();
    const all = [...a.bodies, ...b.bodies];
    const v2 = all.filter((x) => x.version === 'v2');
    console.log(
      `reload under load: ${a.ok} requests on fresh connections (4 clients), ${b.ok} on kept-alive ones (2 clients); ` +
        `${a.ok + b.ok - before} after SIGHUP; failures: ${a.failures.length + b.failures.length}; v2 answers: ${v2.length}`,
    );
    expect([...a.failures, ...b.failures]).toEqual([]);
    expect(a.ok + b.ok).toBeGreaterThan(100);
    expect(v2.length).toBeGreaterThan(20);
    // v2 comes from generation 2 only, and once it appears v1 is gone (per client order aside).
    expect(distinct(v2, 'generation')).toEqual(new Set(['2']));
    expect(distinct(all.filter((x) => x.version === 'v1'), 'generation')).toEqual(new Set(['1']));
    const last = await json(s.port);
    expect(last).toMatchObject({ version: 'v2', generation: '2' });
    expect(await s.stop()).toBe(0);
  });

  it('without a main process (one worker, no --max-requests) SIGHUP is ignored with a warning, not fatal', async () => {
    const s = await serve(app('prod-app.mjs'));
    process.kill(s.pid, 'SIGHUP');
    await s.waitForStderr(/SIGHUP ignored/, 5_000);
    expect((await json(s.port)).pid).toBe(s.pid);
    expect(await s.stop()).toBe(0);
  });

  it('a SIGHUP the moment the port accepts does not end the process (the handlers go in before the listener)', async () => {
    // The port polled every millisecond, the signal sent at the first accepted connection: with
    // the handlers installed after listen() resolved, 27 of 30 such starts died of the signal.
    for (let i = 0; i < 5; i++) {
      const port = await freePort();
      const proc = run(['serve', app('prod-app.mjs'), '--bind', `127.0.0.1:${port}`]);
      let gone = false;
      void proc.exited.then(() => (gone = true));
      const deadline = Date.now() + 10_000;
      while (!(await canConnect(port, '127.0.0.1', 200))) {
        if (gone || Date.now() > deadline) throw new Error(`tsgi did not come up on ${port}: ${proc.stderrLines().join('\n')}`);
        await sleep(1);
      }
      process.kill(proc.pid, 'SIGHUP');
      await sleep(100);
      expect(gone, `start ${i}: the process ended on SIGHUP`).toBe(false);
      expect((await json(port)).pid).toBe(proc.pid);
      expect(await proc.stop()).toBe(0);
    }
  });
});

describe('SIGTERM: graceful stop', () => {
  for (const workers of ['1', '2']) {
    it(`--workers ${workers}: requests in flight finish, new connections are refused, exit 0`, async () => {
      const s = await serve(app('prod-app.mjs'), { args: ['--workers', workers] });
      await servingLines(s, Number(workers));
      const marks = [0, 1, 2, 3].map((i) => path.join(tmp, `slow-${workers}-${i}`));
      const slow = marks.map((m) => request(s.port, { path: `/slow?s=1.5&started=${encodeURIComponent(m)}`, timeoutMs: 15_000 }));
      await until(() => marks.every((m) => fs.existsSync(m)), 'the four slow requests to reach the app');
      const t0 = Date.now();
      process.kill(s.pid, 'SIGTERM');
      await sleep(300);
      await expect(request(s.port, { path: '/pid', timeoutMs: 2_000 })).rejects.toThrow(/ECONNREFUSED|ECONNRESET|socket hang up/);
      const answers = await Promise.all(slow);
      for (const r of answers) expect([r.status, r.complete]).toEqual([200, true]);
      const exit = await s.waitExit(10_000);
      expect(exit.code).toBe(0);
      expect(Date.now() - t0).toBeGreaterThan(900);
    });
  }

  it('--graceful-timeout: what is still running when it expires is cut off, and the exit is still 0', async () => {
    const s = await serve(app('prod-app.mjs'), { args: ['--workers', '2', '--graceful-timeout', '1'] });
    await servingLines(s, 2);
    const mark = path.join(tmp, 'too-slow');
    const slow = request(s.port, { path: `/slow?s=20&started=${encodeURIComponent(mark)}`, timeoutMs: 15_000 }).catch((e: Error) => e);
    await until(() => fs.existsSync(mark), 'the slow request to reach the app');
    const t0 = Date.now();
    process.kill(s.pid, 'SIGTERM');
    const exit = await s.waitExit(10_000);
    const took = Date.now() - t0;
    expect(exit.code).toBe(0);
    expect(took).toBeGreaterThan(900);
    expect(took).toBeLessThan(5_000);
    const r = await within(slow, 5_000, 'the cut request to settle');
    expect(r instanceof Error || !r.complete).toBe(true);
    expect(records(s, 'graceful timeout reached')).toHaveLength(1);
  });
});

describe('--max-requests', () => {
  // A worker past its limit asks for a replacement and serves on until that one listens (a few
  // hundred ms), so that capacity never dips: the limit is a floor, not an exact count.
  it('replaces each worker after N (+ jitter) requests, a new one listening first: no request fails', async () => {
    const s = await serve(app('prod-app.mjs'), { args: ['--workers', '2', '--max-requests', '20', '--max-requests-jitter', '5'] });
    await servingLines(s, 2);
    const load = loadLoop(s.port, { concurrency: 2, pauseMs: 5 });
    await until(() => records(s, 'worker reached --max-requests').length >= 4 || load.result.failures.length > 0, 'four recycles', 25_000);
    await servingLines(s, 6);
    const r = await load.stop();
    expect(r.failures).toEqual([]);
    const served = new Map<unknown, number>();
    for (const b of r.bodies) served.set(b.pid, (served.get(b.pid) ?? 0) + 1);
    expect(served.size).toBeGreaterThanOrEqual(4);
    const asked = s.logRecords().filter((x) => x.msg === 'reached --max-requests; asking the main process for a replacement');
    expect(asked.length).toBeGreaterThanOrEqual(4);
    for (const a of asked) {
      expect(a.limit).toSatisfy((n: number) => n >= 20 && n <= 25);
      expect(served.get(a.pid)).toBeGreaterThanOrEqual(a.limit as number);
    }
    expect(records(s, 'max-requests: the new worker').length).toBeGreaterThanOrEqual(4);
    expect(records(s, 'worker died')).toEqual([]);
    expect(await s.stop()).toBe(0);
  });

  it('with --workers 1 runs a main process, so that the one worker is recycled too', async () => {
    const s = await serve(app('prod-app.mjs'), { args: ['--max-requests', '10'] });
    await servingLines(s, 1);
    const load = loadLoop(s.port, { concurrency: 2, pauseMs: 5 });
    await until(() => records(s, 'max-requests: the new worker').length >= 3 || load.result.failures.length > 0, 'three recycles', 25_000);
    const r = await load.stop();
    expect(r.failures).toEqual([]);
    const pids = distinct(r.bodies, 'pid');
    expect(pids.has(s.pid)).toBe(false);
    expect(pids.size).toBeGreaterThanOrEqual(3);
    expect(r.bodies.every((b) => b.multiprocess === false)).toBe(true);
    expect(records(s, 'tsgi main process: 1 worker')).toHaveLength(1);
    expect(await s.stop()).toBe(0);
  });
});

describe('listening', () => {
  it('--bind unix:PATH with --workers: the main process makes the socket, with --socket-mode', async () => {
    const sock = path.join(tmp, 'w.sock');
    const p = run(['serve', app('prod-app.mjs'), '--bind', `unix:${sock}`, '--workers', '2', '--socket-mode', '600']);
    try {
      await servingLines(p, 2);
      expect(fs.statSync(sock).mode & 0o777).toBe(0o600);
      const pids = new Set<unknown>();
      for (let i = 0; i < 8; i++) {
        const res = await request(0, { socketPath: sock, path: '/pid' });
        pids.add(JSON.parse(res.body.toString()).pid);
      }
      expect(pids.size).toBe(2);
    } finally {
      expect(await p.stop()).toBe(0);
    }
  });

});
