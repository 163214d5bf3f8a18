// errorCatcher(): errors before headers become a 500 (plain, or a debug page with the stack and
// the environ), logged through wsgi.errors; errors after headers abort the response (excInfo).

import { describe, expect, it } from 'vitest';
import { RequestError } from '../../src/errors.js';
import { errorCatcher } from '../../src/middleware/error-catcher.js';
import type { App, Environ, StartResponse } from '../../src/types.js';
import { tick } from '../helpers/recording-sink.js';
import { call, linted } from './harness.js';

const throwsNow: App = () => {
  throw new Error('sync <boom>');
};
const rejects: App = async () => {
  await tick();
  throw new Error('async boom');
};
const failsInBody: App = async function* (_e, sr) {
  sr('200 OK', [['Content-Type', 'text/plain'], ['X-Inner', '1']]);
  yield '';
  throw new Error('body boom');
};
const failsInSyncGenerator: App = function* (_e: Environ, sr: StartResponse) {
  sr('200 OK', [['Content-Type', 'text/plain']]);
  throw new Error('generator boom');
} as unknown as App;

describe('errorCatcher(app)', () => {
  it.each([
    ['a sync throw', throwsNow, 'sync <boom>'],
    ['a rejected promise', rejects, 'async boom'],
    ['a throw while the body is read (before any byte)', failsInBody, 'body boom'],
    ['a sync generator', failsInSyncGenerator, 'generator boom'],
  ])('%s: plain 500, no details, stack in wsgi.errors', async (_what, app, message) => {
    const r = await call(errorCatcher(linted(app)), { PATH_INFO: '/x', HTTP_COOKIE: 'sid=secret' });
    expect(r.status).toBe(500);
    expect(r.header('Content-Type')).toBe('text/plain; charset=utf-8');
    expect(r.header('X-Inner')).toBeUndefined(); // the error response replaced the app's headers
    expect(r.text).toBe('Internal Server Error\n');
    const logged = r.req.logs.map((l) => JSON.stringify(l)).join('\n');
    expect(logged).toContain(message);
    expect(logged).toContain('GET /x');
  });

  it('debug: an HTML page with the error, its stack and the environ, secrets hidden, HTML escaped', async () => {
    const r = await call(errorCatcher(throwsNow, { debug: true }), {
      PATH_INFO: '/p',
      QUERY_STRING: 'a=<b>',
      HTTP_COOKIE: 'sid=secret',
      HTTP_AUTHORIZATION: 'Basic c2VjcmV0OnNlY3JldA==',
      HTTP_X_THING: '<script>',
    });
    expect(r.status).toBe(500);
    expect(r.header('Content-Type')).toBe('text/html; charset=utf-8');
    expect(r.header('Content-Length')).toBe(String(r.body.length));
    expect(r.text).toContain('Error: sync &#60;boom&#62;');
    expect(r.text).toContain('error-catcher.test.ts'); // the stack
    expect(r.text).toContain('<th>HTTP_X_THING</th><td>&#60;script&#62;</td>');
    expect(r.text).toContain('<th>wsgi.input</th>');
    expect(r.text).not.toContain('sid=secret');
    expect(r.text).not.toContain('c2VjcmV0');
    expect(r.text).toContain('GET /p?a=&#60;b&#62;');
  });

  it('debug: shows the cause chain', async () => {
    const app: App = () => {
      throw new Error('outer', { cause: new TypeError('inner cause') });
    };
    const r = await call(errorCatcher(app, { debug: true }));
    expect(r.text).toContain('Caused by TypeError: inner cause');
  });

  it('after the headers went out: excInfo is thrown again and the response is aborted', async () => {
    const app: App = async function* (_e, sr) {
      sr('200 OK', [['Content-Type', 'text/plain']]);
      yield 'partial';
      await tick();
      throw new Error('late');
    };
    const r = await call(errorCatcher(app, { debug: true }), {}, undefined, { allowError: true });
    expect(r.status).toBe(200);
    expect(r.text).toBe('partial');
    expect(r.req.sink.kinds).toEqual(['start', 'abort']);
    expect(JSON.stringify(r.req.logs)).toContain('late');
  });

  it('passes a good response through untouched, arrays as arrays, and close() once', async () => {
    let closes = 0;
    const app: App = (_e, sr) => {
      sr('200 OK', [['Content-Type', 'text/plain']]);
      return Object.assign(['ok'], { close: () => void closes++ });
    };
    const r = await call(errorCatcher(app));
    expect(r.text).toBe('ok');
    // An array stays an array (the runner's fast path: one write with its Content-Length).
    expect(Array.isArray(errorCatcher(app)(r.req.environ, () => () => {}))).toBe(true);
    expect(closes).toBe(1);
    let genCloses = 0;
    const gen: App = (_e, sr) => {
      sr('200 OK', [['Content-Type', 'text/plain']]);
      return Object.assign((function* () {
        yield 'a';
        yield 'b';
      })(), { close: () => void genCloses++ });
    };
    const r2 = await call(errorCatcher(gen));
    expect(r2.text).toBe('ab');
    expect(genCloses).toBe(1);
  });

  it('a body that is not iterable is answered 500 by the catcher', async () => {
    const app = ((_e: unknown, sr: (s: string, h: Array<[string, string]>) => void) => {
      sr('200 OK', [['Content-Type', 'text/plain']]);
      return 'a string';
    }) as unknown as App;
    const r = await call(errorCatcher(app), {}, undefined, { noLint: true });
    expect(r.status).toBe(500);
  });

  it('leaves refused requests (RequestError) to the server: 413 stays 413', async () => {
    const app: App = () => {
      throw new RequestError('TSGI_BODY_TOO_LARGE', 'too big', 413);
    };
    const r = await call(errorCatcher(app), {}, undefined, { allowError: true });
    expect(r.status).toBe(413);
  });

  it('a client that went away is not answered (no 500 after the abort)', async () => {
    const app: App = async (environ) => {
      await new Promise((r) => setTimeout(r, 5));
      throw environ['tsgi.signal'].reason ?? new Error('gone');
    };
    const { makeRequest } = await import('../helpers/recording-sink.js');
    const req = makeRequest();
    const p = req.run(errorCatcher(app));
    req.controller.abort();
    const res = await p;
    expect(res.outcome).toBe('aborted');
    expect(req.sink.kinds).not.toContain('start');
  });
});
