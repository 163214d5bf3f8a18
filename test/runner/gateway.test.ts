// Gateway from a protocol server's side: one handle() call builds the environ (with the server's
// context and a wsgi.errors into the log), runs the app, drops the unread body and resumes a
// paused source, and counts requests in flight for a clean shutdown.

import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, Gateway } from '../../src/runner/gateway.js';
import { BodyQueue } from '../../src/runner/input.js';
import type { App, Environ } from '../../src/types.js';
import { deferred, memoryLogger, RecordingSink, within } from '../helpers/recording-sink.js';

function gateway(app: App, extra: Partial<ConstructorParameters<typeof Gateway>[0]> = {}) {
  const { log, logs } = memoryLogger();
  return { gw: new Gateway({ app, log, protocol: 'scgi', ...extra }), logs };
}

describe('Gateway', () => {
  it('builds the environ with its protocol and deployment flags and runs the app into the sink', async () => {
    let seen: Environ | undefined;
    const { gw } = gateway(
      (environ, sr) => {
        seen = environ;
        sr('200 OK', []);
        return ['hi'];
      },
      { multiprocess: true, runOnce: true },
    );
    const sink = new RecordingSink();
    const result = await gw.handle({ REQUEST_METHOD: 'GET', PATH_INFO: '/' }, new BodyQueue({ length: 0 }), sink, new AbortController().signal);
    expect(result.outcome).toBe('ok');
    expect(sink.text()).toBe('hi');
    expect(seen?.['tsgi.protocol']).toBe('scgi');
    expect(seen?.['wsgi.multiprocess']).toBe(true);
    expect(seen?.['wsgi.run_once']).toBe(true);
    expect(seen?.['wsgi.multithread']).toBe(false);
  });

  it('routes wsgi.errors into its log', async () => {
    const { gw, logs } = gateway((environ, sr) => {
      environ['wsgi.errors'].write('oops\n');
      sr('200 OK', []);
      return [];
    });
    await gw.handle({}, new BodyQueue({ length: 0 }), new RecordingSink(), new AbortController().signal);
    expect(logs.some((l) => l.stream === 'wsgi.errors' && l.msg === 'oops')).toBe(true);
  });

  it('discards an unread body after the response and resumes a paused source', async () => {
    let demands = 0;
    const input = new BodyQueue({ length: 1000, highWaterMark: 8, onDemand: () => demands++ });
    expect(input.push(new Uint8Array(16))).toBe(false);
    const { gw } = gateway((_e, sr) => {
      sr('200 OK', []);
      return ['ignored the body'];
    });
    await gw.handle({ REQUEST_METHOD: 'POST' }, input, new RecordingSink(), new AbortController().signal);
    expect(demands).toBe(1);
    expect(input.push(new Uint8Array(100))).toBe(true);
  });

  it('counts requests in flight and resolves whenIdle() once the last one finished', async () => {
    const gate = deferred();
    const { gw } = gateway(async (_e, sr) => {
      await gate.promise;
      sr('200 OK', []);
      return [];
    });
    await within(gw.whenIdle(), 100);
    const a = gw.handle({}, new BodyQueue({ length: 0 }), new RecordingSink(), new AbortController().signal);
    const b = gw.handle({}, new BodyQueue({ length: 0 }), new RecordingSink(), new AbortController().signal);
    expect(gw.active).toBe(2);
    let idle = false;
    const idleP = gw.whenIdle().then(() => (idle = true));
    await new Promise((r) => setImmediate(r));
    expect(idle).toBe(false);
    gate.resolve();
    await within(Promise.all([a, b, idleP]));
    expect(gw.active).toBe(0);
    expect(idle).toBe(true);
  });

  it('applies the default limits under the ones given', () => {
    const { gw } = gateway(() => [], { limits: { maxBodyBytes: 10 } });
    expect(gw.limits).toEqual({ ...DEFAULT_LIMITS, maxBodyBytes: 10 });
  });
});

describe('Gateway limits and endings', () => {
  it('flushes a last wsgi.errors line without a newline when the request ends', async () => {
    const { gw, logs } = gateway((environ, sr) => {
      environ['wsgi.errors'].write('no newline at the end');
      sr('200 OK', []);
      return [];
    });
    await gw.handle({ REQUEST_METHOD: 'GET' }, new BodyQueue({ length: 0 }), new RecordingSink(), new AbortController().signal);
    expect(logs.some((l) => l.msg === 'no newline at the end')).toBe(true);
  });

  it('refuses a declared body over maxBodyBytes with a 413 RequestError before reading', () => {
    const { gw } = gateway(() => [], { limits: { maxBodyBytes: 10 } });
    expect(() => gw.bodyQueue(11, () => {})).toThrow(expect.objectContaining({ code: 'TSGI_BODY_TOO_LARGE', status: 413 }));
    expect(gw.bodyQueue(10, () => {})).toBeInstanceOf(BodyQueue);
  });

  it('fails a body of unknown length once it grows past maxBodyBytes, and the app answers 413', async () => {
    const { gw } = gateway(async (environ, sr) => {
      await environ['wsgi.input'].read();
      sr('200 OK', []);
      return ['read it all'];
    }, { limits: { maxBodyBytes: 10 } });
    const q = gw.bodyQueue(undefined, () => {});
    const sink = new RecordingSink();
    const done = gw.handle({ REQUEST_METHOD: 'POST' }, q, sink, new AbortController().signal);
    q.push(Buffer.from('0123456789'));
    q.push(Buffer.from('x'));
    const result = await within(done, 2000);
    expect(result.status).toBe(413);
    expect(sink.head.status).toMatch(/^413 /);
  });

  it('answers 500 when the sink refuses the head before writing anything (AJP: headers over the packet size)', async () => {
    const { gw } = gateway((_e, sr) => {
      sr('200 OK', [['X-Big', 'x'.repeat(100)]]);
      return ['body'];
    });
    const calls: string[] = [];
    let first = true;
    const sink = {
      start(status: string) {
        calls.push(`start ${status}`);
        if (first) {
          first = false;
          throw new Error('headers too large for one packet');
        }
      },
      write() {},
      end() {
        calls.push('end');
      },
      abort() {
        calls.push('abort');
      },
    };
    const result = await gw.handle({ REQUEST_METHOD: 'GET' }, new BodyQueue({ length: 0 }), sink, new AbortController().signal);
    expect(calls).toEqual(['start 200 OK', 'start 500 Internal Server Error', 'end']);
    expect(result.status).toBe(500);
  });
});
