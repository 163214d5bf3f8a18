// The validator as a pipeline stage (tsgi/middleware exports it): it catches a middleware that
// breaks the rules towards the app it wraps, and one that breaks them towards the server.

import { describe, expect, it } from 'vitest';
import { compose, compression, errorCatcher, requestId, validator } from '../../src/middleware/index.js';
import type { App } from '../../src/types.js';
import { call, textApp } from './harness.js';

describe('validator in a pipeline', () => {
  it('a correct pipeline passes with the validator at every level', async () => {
    const app = compose(textApp('x'.repeat(5000)), validator, (a) => errorCatcher(a), validator, (a) => compression(a), validator, (a) => requestId(a), validator);
    const r = await call(app, { HTTP_ACCEPT_ENCODING: 'gzip' });
    expect(r.status).toBe(200);
    expect(r.header('Content-Encoding')).toBe('gzip');
  });

  it('catches a middleware that hands the app a broken environ (SCRIPT_NAME "/")', async () => {
    const badMount = (inner: App): App => (environ, sr) => {
      environ.SCRIPT_NAME = '/';
      return inner(environ, sr);
    };
    const r = await call(badMount(validator(textApp('x'))), {}, undefined, { allowError: true });
    expect(r.status).toBe(500);
    expect(JSON.stringify(r.req.logs)).toContain("lint: SCRIPT_NAME must not be '/'");
  });

  it('catches a middleware that returns a string as the body', async () => {
    const bad = (): App => (_e, sr) => {
      sr('200 OK', [['Content-Type', 'text/plain']]);
      return 'oops' as unknown as string[];
    };
    const r = await call(validator(bad()), {}, undefined, { allowError: true, noLint: true });
    expect(r.status).toBe(500);
    expect(JSON.stringify(r.req.logs)).toContain('lint: the app returned a string');
  });

  it('compose lists middleware from the outside in', async () => {
    const order: string[] = [];
    const tag = (name: string) => (inner: App): App => (e, sr) => {
      order.push(name);
      return inner(e, sr);
    };
    await call(compose(textApp('x'), tag('outer'), tag('middle'), tag('inner')));
    expect(order).toEqual(['outer', 'middle', 'inner']);
  });
});
