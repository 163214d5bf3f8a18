// What the shared core adds for production, from a protocol server's side (Gateway.handle with a
// recording sink): --timeout (504 before the headers, the abort path after them, tsgi.signal
// fired, close() once), request ids, the status path answered before the app, and the counters.

import { describe, expect, it } from 'vitest';
import { RequestAbort } from '../../src/runner/abort.js';
import { RequestError } from '../../src/errors.js';
import { Gateway, refusingApp } from '../../src/runner/gateway.js';
import { BodyQueue } from '../../src/runner/input.js';
import { runApp } from '../../src/runner/run.js';
import type { App, Environ } from '../../src/types.js';
import { deferred, makeRequest, memoryLogger, RecordingSink, utf8, within } from '../helpers/recording-sink.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function gateway(app: App, extra: Partial<ConstructorParameters<typeof Gateway>[0]> = {}) {
  const { log, logs } = memoryLogger();
  return { gw: new Gateway({ app, log, protocol: 'fastcgi', accessLog: true, ...extra }), logs };
}

const GET = (path = '/', more: Record<string, string> = {}) => ({ REQUEST_METHOD: 'GET', SCRIPT_NAME: '', PATH_INFO: path, ...more });
const noBody = () => new BodyQueue({ length: 0 });

describe('--timeout (limits.requestTimeoutMs)', () => {
  it('before the headers: answers 504 at the deadline, fires tsgi.signal, calls close() once', async () => {
    let signalFired = false;
    let closes = 0;
    const { gw, logs } = gateway(
      async (environ: Environ, sr) => {
        environ['tsgi.signal'].addEventListener('abort', () => (signalFired = true));
        await sleep(300);
        // Too late to answer (startResponse would throw now); the body still gets its close().
        void sr;
        return Object.assign([], { close: () => void closes++ });
      },
      { limits: { requestTimeoutMs: 50 } },
    );
    const sink = new RecordingSink();
    const t0 = performance.now();
    const done = gw.handle(GET('/slow'), noBody(), sink, new RequestAbort());
    await sleep(120);
    // The 504 is on the wire while the app still runs.
    expect(sink.calls.map((c) => c.kind)).toEqual(['start', 'end']);
    expect(sink.calls[0]).toMatchObject({ kind: 'start', status: '504 Gateway Timeout', last: true });
    expect(utf8(sink.collect())).toMatch(/^Gateway Timeout/);
    expect(signalFired).toBe(true);
    const r = await within(done, 2_000);
    expect(performance.now() - t0).toBeGreaterThan(250);
    expect(r).toMatchObject({ status: 504, outcome: 'timeout' });
    expect(closes).toBe(1);
    expect(sink.calls.map((c) => c.kind)).toEqual(['start', 'end']);
    expect(logs.filter((l) => l.code === 'TSGI_REQUEST_TIMEOUT')).toHaveLength(1);
    expect(logs.find((l) => l.msg === 'request')).toMatchObject({ status: 504, outcome: 'timeout', path: '/slow' });
    expect(gw.stats).toMatchObject({ requests: 1, timeouts: 1 });
  });

  it('after the headers: the response is aborted (the runner abort path), the async body stops', async () => {
    let after = false;
    const { gw } = gateway(
      (_e, sr) => {
        sr('200 OK', [['Content-Type', 'text/plain']]);
        return (async function* () {
          yield 'first';
          await sleep(5_000);
          after = true;
          yield 'second';
        })();
      },
      { limits: { requestTimeoutMs: 50 } },
    );
    const sink = new RecordingSink();
    const r = await within(gw.handle(GET(), noBody(), sink, new RequestAbort()), 2_000);
    expect(r.outcome).toBe('timeout');
    expect(sink.calls.map((c) => c.kind)).toEqual(['start', 'abort']);
    expect((sink.calls[1] as { error: Error & { code?: string } }).error.code).toBe('TSGI_REQUEST_TIMEOUT');
    expect(after).toBe(false);
  });

  it('a response complete in time is left alone; the timer does not fire later', async () => {
    const { gw, logs } = gateway((_e, sr) => {
      sr('200 OK', []);
      return ['quick'];
    }, { limits: { requestTimeoutMs: 30 } });
    const sink = new RecordingSink();
    const r = await gw.handle(GET(), noBody(), sink, new RequestAbort());
    await sleep(80);
    expect(r.outcome).toBe('ok');
    expect(sink.calls.map((c) => c.kind)).toEqual(['start', 'end']);
    expect(logs.some((l) => l.code === 'TSGI_REQUEST_TIMEOUT')).toBe(false);
  });

  it('close() is not limited: work after the response does not count', async () => {
    let closed = false;
    const { gw } = gateway((_e, sr) => {
      sr('200 OK', []);
      return Object.assign(['done'], { close: () => sleep(100).then(() => void (closed = true)) });
    }, { limits: { requestTimeoutMs: 30 } });
    const sink = new RecordingSink();
    const r = await gw.handle(GET(), noBody(), sink, new RequestAbort());
    expect([r.outcome, closed]).toEqual(['ok', true]);
  });

  it('HEAD: a 504 without a body', async () => {
    const { gw } = gateway(async () => {
      await sleep(200);
      return [];
    }, { limits: { requestTimeoutMs: 30 } });
    const sink = new RecordingSink();
    const r = await gw.handle({ ...GET(), REQUEST_METHOD: 'HEAD' }, noBody(), sink, new RequestAbort());
    expect(r.status).toBe(504);
    expect(sink.calls[0]).toMatchObject({ kind: 'start', status: '504 Gateway Timeout', chunk: null });
  });

  it('works with a plain AbortSignal as the flag (runApp alone): the runner follows it', async () => {
    const req = makeRequest();
    const r = await within(
      runApp(
        req.options(
          (_e, sr) => {
            sr('200 OK', []);
            return (async function* () {
              await sleep(5_000);
              yield 'never';
            })();
          },
          { timeoutMs: 40 },
        ),
      ),
      2_000,
    );
    expect(r).toMatchObject({ status: 504, outcome: 'timeout' });
  });
});

describe('request ids', () => {
  it('takes a sane X-Request-Id, else makes one (unique per request); environ["tsgi.request_id"] and the access log carry it', async () => {
    const seen: string[] = [];
    const { gw, logs } = gateway((environ, sr) => {
      seen.push(environ['tsgi.request_id'] as string);
      sr('200 OK', []);
      return [];
    }, { worker: 3 });
    await gw.handle(GET('/a', { HTTP_X_REQUEST_ID: 'abc-123.XYZ' }), noBody(), new RecordingSink(), new RequestAbort());
    await gw.handle(GET('/b', { HTTP_X_REQUEST_ID: 'has space' }), noBody(), new RecordingSink(), new RequestAbort());
    await gw.handle(GET('/c', { HTTP_X_REQUEST_ID: 'x'.repeat(129) }), noBody(), new RecordingSink(), new RequestAbort());
    await gw.handle(GET('/d'), noBody(), new RecordingSink(), new RequestAbort());
    expect(seen[0]).toBe('abc-123.XYZ');
    for (const id of seen.slice(1)) expect(id).toMatch(/^[A-Za-z0-9_-]{8}-[0-9a-z]+$/);
    expect(new Set(seen).size).toBe(4);
    const access = logs.filter((l) => l.msg === 'request');
    expect(access.map((l) => l.requestId)).toEqual(seen);
    expect(access.every((l) => l.worker === 3)).toBe(true);
  });
});

describe('the status path and the counters', () => {
  it('answers the status path with its own app, before the served one; refusals still win', async () => {
    let appCalls = 0;
    const statusApp: App = (_e, sr) => {
      sr('200 OK', [['Content-Type', 'application/json']]);
      return ['{"status":true}'];
    };
    const { gw } = gateway(() => {
      appCalls++;
      return [];
    }, { status: { path: '/status', app: statusApp } });
    const sink = new RecordingSink();
    await gw.handle(GET('/status'), noBody(), sink, new RequestAbort());
    expect(sink.text()).toBe('{"status":true}');
    expect(appCalls).toBe(0);
    const refused = new RecordingSink();
    await gw.handle(GET('/status'), noBody(), refused, new RequestAbort(), undefined, refusingApp(new RequestError('TSGI_BODY_TOO_LARGE', 'too large', 413)));
    expect(refused.calls[0]).toMatchObject({ status: '413 Content Too Large' });
  });

  it('keeps the requests in flight (with track) and counts finished and slow ones', async () => {
    const gate = deferred();
    const { gw, logs } = gateway(async (_e, sr) => {
      await gate.promise;
      sr('200 OK', []);
      return [];
    }, { track: true, slowRequestMs: 50 });
    const p = gw.handle(GET('/held', { HTTP_X_REQUEST_ID: 'held-1' }), noBody(), new RecordingSink(), new RequestAbort());
    await sleep(80);
    expect([...gw.current!.values()]).toEqual([expect.objectContaining({ id: 'held-1', method: 'GET', path: '/held' })]);
    gate.resolve();
    await p;
    expect(gw.current!.size).toBe(0);
    expect(gw.stats).toEqual({ requests: 1, slow: 1, timeouts: 0 });
    expect(logs.find((l) => l.code === 'TSGI_SLOW_REQUEST')).toMatchObject({ requestId: 'held-1', path: '/held' });
  });
});
