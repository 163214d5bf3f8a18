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
