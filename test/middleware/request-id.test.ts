// requestId() and timing(): the id taken from the request or made, in the environ and the
// response; the timing header in both styles; excInfo passes through both.

import { describe, expect, it } from 'vitest';
import { errorCatcher } from '../../src/middleware/error-catcher.js';
import { requestId } from '../../src/middleware/request-id.js';
import { timing } from '../../src/middleware/timing.js';
import type { App } from '../../src/types.js';
import { call, linted, textApp } from './harness.js';

const echoId: App = linted((environ, sr) => {
  sr('200 OK', [['Content-Type', 'text/plain'], ['X-Request-Id', 'app-set']]);
  return [`${environ['tsgi.request_id']}|${environ.HTTP_X_REQUEST_ID}`];
});

describe('requestId', () => {
  it('keeps a well-formed incoming id, in the environ and the response (replacing the app\'s)', async () => {
    const r = await call(requestId(echoId), { HTTP_X_REQUEST_ID: 'abc-123' });
    expect(r.text).toBe('abc-123|abc-123');
    expect(r.headerAll('X-Request-Id')).toEqual(['abc-123']);
  });

  it.each([undefined, '', 'has space', 'x'.repeat(201), 'quote"d', 'new\u00e9'])('makes a UUID when the incoming id is %j', async (incoming) => {
    const r = await call(requestId(echoId), incoming === undefined ? {} : { HTTP_X_REQUEST_ID: incoming });
    const id = r.header('X-Request-Id')!;
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(r.text).toBe(`${id}|${id}`);
  });

  it('trustIncoming=false, another header name, a custom generator', async () => {
    let n = 0;
    const app = requestId(textApp('x'), { header: 'X-Trace', trustIncoming: false, generate: () => `t${++n}` });
    const r = await call(app, { HTTP_X_TRACE: 'from-client' });
    expect(r.header('X-Trace')).toBe('t1');
    expect(() => requestId(textApp('x'), { header: 'bad header' })).toThrow(/header name/);
  });

  it('the id is on the error response too', async () => {
    const boom: App = () => {
      throw new Error('x');
    };
    const r = await call(requestId(errorCatcher(boom)), { HTTP_X_REQUEST_ID: 'err-1' });
    expect(r.status).toBe(500);
    expect(r.header('X-Request-Id')).toBe('err-1');
  });
});

describe('timing', () => {
  const slow: App = async (_e, sr) => {
    await new Promise((r) => setTimeout(r, 30));
    sr('200 OK', [['Content-Type', 'text/plain']]);
    return ['done'];
  };

  it('Server-Timing: app;dur=N, the time until startResponse', async () => {
    const r = await call(timing(slow));
    const m = /^app;dur=([0-9.]+)$/.exec(r.header('Server-Timing')!);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(25);
  });

  it('X-Response-Time: Nms; metric name and digits', async () => {
    const r = await call(timing(slow, { header: 'x-response-time', digits: 0 }));
    expect(r.header('X-Response-Time')).toMatch(/^[0-9]+ms$/);
    const r2 = await call(timing(textApp('x'), { metric: 'total', digits: 3 }));
    expect(r2.header('Server-Timing')).toMatch(/^total;dur=[0-9]+\.[0-9]{3}$/);
    expect(() => timing(textApp('x'), { header: 'nope' as 'server-timing' })).toThrow();
  });

  it('an error response replacing the app\'s still carries one header', async () => {
    const app: App = async function* (_e, sr) {
      sr('200 OK', [['Content-Type', 'text/plain']]);
      yield '';
      throw new Error('x');
    };
    const r = await call(errorCatcher(timing(app)));
    expect(r.status).toBe(500);
    const r2 = await call(timing(errorCatcher(app)));
    expect(r2.status).toBe(500);
    expect(r2.headerAll('Server-Timing')).toHaveLength(1);
  });
});
