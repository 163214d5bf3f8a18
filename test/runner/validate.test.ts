// The validator (validator(app), checkEnviron), in the spirit of wsgiref.validate: each broken
// rule throws an AppError whose message starts with "lint:"; a correct app passes untouched.
// Where the runner would catch the same mistake, the tests call the linted app directly with a
// permissive startResponse, so only the validator can be what catches it.

import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { checkEnviron, validator } from '../../src/runner/validate.js';
import type { App, Body, Chunk, Environ, StartResponse } from '../../src/types.js';
import { makeRequest, memoryLogger, tick } from '../helpers/recording-sink.js';

/** A startResponse that checks nothing and whose write() accepts anything. */
const lenient: StartResponse = () => () => {};

function environ(vars: Record<string, string> = {}): Environ {
  return makeRequest(vars).environ;
}

function lintError(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).message).toMatch(/^lint: /);
    return err as AppError;
  }
  throw new Error('expected a lint AppError');
}

async function lintRejection(p: Promise<unknown>): Promise<AppError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AppError);
  expect((err as AppError).message).toMatch(/^lint: /);
  return err as AppError;
}

async function drain(body: Body): Promise<Chunk[]> {
  const out: Chunk[] = [];
  if (Symbol.asyncIterator in body) for await (const c of body as AsyncIterable<Chunk>) out.push(c);
  else for (const c of body as Iterable<Chunk>) out.push(c);
  return out;
}

describe('validator(app): the app side', () => {
  it('lets a correct app through unchanged: same status, headers and bytes, close() once', async () => {
    const req = makeRequest();
    let closes = 0;
    const app: App = (_e, sr) => {
      sr('200 OK', [['Content-Type', 'text/plain']]);
      return Object.assign(['a', 'b'], { close: () => void closes++ });
    };
    const result = await req.run(validator(app));
    expect(result.outcome).toBe('ok');
    expect(req.sink.head.status).toBe('200 OK');
    expect(req.sink.text()).toBe('ab');
    expect(closes).toBe(1);
  });

  it('lets correct async generator and Promise apps through', async () => {
    const gen: App = async function* (_e, sr) {
      sr('200 OK', [['Content-Type', 'text/plain']]);
      yield 'gen';
    };
    const prom: App = async (_e, sr) => {
      await tick();
      sr('200 OK', [['Content-Type', 'text/plain']]);
      return ['promise'];
    };
    for (const [app, text] of [[gen, 'gen'], [prom, 'promise']] as const) {
      const req = makeRequest();
      await req.run(validator(app));
      expect(req.sink.text()).toBe(text);
    }
  });

  it('catches a string returned as the body', () => {
    const linted = validator(((_e: Environ, sr: StartResponse) => {
      sr('200 OK', []);
      return 'hello';
    }) as unknown as App);
    const err = lintError(() => linted(environ(), lenient));
    expect(err.message).toMatch(/string/);
  });

  it('catches a string body resolved by a Promise app', async () => {
    const linted = validator((async (_e: Environ, sr: StartResponse) => {
      sr('200 OK', []);
      return 'hello';
    }) as unknown as App);
    await lintRejection(Promise.resolve(linted(environ(), lenient)));
  });

  it('catches bytes returned as the body, and nothing returned', () => {
    for (const bad of [new Uint8Array([1]), undefined, null]) {
      const linted = validator(((_e: Environ, sr: StartResponse) => {
        sr('200 OK', []);
        return bad;
      }) as unknown as App);
      lintError(() => linted(environ(), lenient));
    }
  });

  it('catches a chunk of the wrong type in a sync body', () => {
    const linted = validator((_e, sr) => {
      sr('200 OK', []);
      return ['fine', 42 as unknown as Chunk];
    });
    const body = linted(environ(), lenient) as Iterable<Chunk>;
    lintError(() => [...body]);
  });

  it('catches a chunk of the wrong type in an async body', async () => {
    const linted = validator(async function* (_e, sr) {
      sr('200 OK', []);
      yield { not: 'a chunk' } as unknown as Chunk;
    });
    await lintRejection(drain(linted(environ(), lenient) as Body));
  });

  it('catches a chunk of the wrong type passed to write()', () => {
    const linted = validator((_e, sr) => {
      const write = sr('200 OK', []);
      write(7 as unknown as Chunk);
      return [];
    });
    lintError(() => linted(environ(), lenient));
  });

  it('catches a chunk yielded before startResponse', async () => {
    const linted = validator(async function* (_e, sr) {
      yield 'early';
      sr('200 OK', []);
    });
    const err = await lintRejection(drain(linted(environ(), lenient) as Body));
    expect(err.message).toMatch(/before startResponse/);
  });

  it('catches startResponse called twice without excInfo, and allows it with excInfo', () => {
    const twice = validator((_e, sr) => {
      sr('200 OK', []);
      sr('500 Oops', []);
      return [];
    });
    expect(lintError(() => twice(environ(), lenient)).message).toMatch(/second time/);

    const withExc = validator((_e, sr) => {
      sr('200 OK', []);
      sr('500 Oops', [], new Error('why'));
      return [];
    });
    expect(() => withExc(environ(), lenient)).not.toThrow();
  });

  it('catches startResponse with a status that is not a string, or the wrong number of arguments', () => {
    const notString = validator((_e, sr) => {
      sr(200 as unknown as string, []);
      return [];
    });
    lintError(() => notString(environ(), lenient));
    const oneArg = validator((_e, sr) => {
      (sr as unknown as (s: string) => void)('200 OK');
      return [];
    });
    lintError(() => oneArg(environ(), lenient));
  });

  it('catches close() called twice', async () => {
    let inner = 0;
    const linted = validator((_e, sr) => {
      sr('200 OK', []);
      return Object.assign(['x'], { close: () => void inner++ });
    });
    const body = linted(environ(), lenient) as Body;
    await body.close!();
    await lintRejection(Promise.resolve().then(() => body.close!()));
    expect(inner).toBe(1);
  });

  it('catches the body iterated after close()', async () => {
    const linted = validator((_e, sr) => {
      sr('200 OK', []);
      return ['x'];
    });
    const body = linted(environ(), lenient) as Iterable<Chunk> & Body;
    await body.close!();
    lintError(() => [...body]);
  });

  it('catches a non-integer size passed to wsgi.input.read()', async () => {
    const linted = validator(async (env, sr) => {
      await env['wsgi.input'].read(1.5);
      sr('200 OK', []);
      return [];
    });
    await lintRejection(Promise.resolve().then(() => linted(environ(), lenient)));
  });

  it('warns (without failing) about a missing Content-Type', async () => {
    const { log, logs } = memoryLogger();
    const linted = validator((_e, sr) => {
      sr('200 OK', []);
      return ['x'];
    }, log);
    await drain(linted(environ(), lenient) as Body);
    expect(logs.some((l) => /Content-Type/.test(l.msg))).toBe(true);
  });

  it('turns a lint error into a 500 when run, with the lint message in the log', async () => {
    const req = makeRequest();
    await req.run(
      validator((_e, sr) => {
        sr('200 OK', []);
        sr('200 OK', []);
        return [];
      }),
    );
    expect(req.sink.head.status).toBe('500 Internal Server Error');
    expect(req.logs.some((l) => /^lint: /.test(l.err?.message ?? ''))).toBe(true);
  });
});

describe('checkEnviron: the server side', () => {
  it('accepts the environ buildEnviron makes', () => {
    expect(() => checkEnviron(environ())).not.toThrow();
  });

  it.each([['REQUEST_METHOD'], ['SERVER_NAME'], ['SERVER_PORT'], ['SERVER_PROTOCOL'], ['SCRIPT_NAME'], ['PATH_INFO']])(
    'catches a missing %s',
    (key) => {
      const env = environ();
      delete (env as Record<string, unknown>)[key];
      lintError(() => checkEnviron(env));
      lintError(() => validator(() => [])(env, lenient));
    },
  );

  it.each([['wsgi.version'], ['wsgi.input'], ['wsgi.errors'], ['wsgi.url_scheme'], ['wsgi.multithread'], ['wsgi.input_terminated'], ['tsgi.signal'], ['tsgi.protocol']])(
    'catches a missing %s',
    (key) => {
      const env = environ();
      delete (env as Record<string, unknown>)[key];
      lintError(() => checkEnviron(env));
    },
  );

  it('catches HTTP_CONTENT_TYPE and HTTP_CONTENT_LENGTH (they are CONTENT_TYPE and CONTENT_LENGTH)', () => {
    lintError(() => checkEnviron(environ({ HTTP_CONTENT_TYPE: 'text/plain' })));
    lintError(() => checkEnviron(environ({ HTTP_CONTENT_LENGTH: '3' })));
  });

  it('catches a CGI variable with a character above U+00FF, and accepts latin-1', () => {
    lintError(() => checkEnviron(environ({ PATH_INFO: '/caf\u00e9\u0100' })));
    lintError(() => checkEnviron(environ({ HTTP_X_NAME: '\u{1f600}' })));
    expect(() => checkEnviron(environ({ PATH_INFO: '/caf\u00c3\u00a9', HTTP_X_NAME: '\u00ff' }))).not.toThrow();
  });

  it('catches a CGI variable that is not a string', () => {
    const env = environ();
    (env as Record<string, unknown>).SERVER_PORT_NUMBER = 80;
    lintError(() => checkEnviron(env));
  });

  it('catches SCRIPT_NAME "/" and SCRIPT_NAME or PATH_INFO not starting with /', () => {
    lintError(() => checkEnviron(environ({ SCRIPT_NAME: '/' })));
    lintError(() => checkEnviron(environ({ SCRIPT_NAME: 'app' })));
    lintError(() => checkEnviron(environ({ PATH_INFO: 'x' })));
    expect(() => checkEnviron(environ({ SCRIPT_NAME: '', PATH_INFO: '' }))).not.toThrow();
  });

  it('catches HTTP_PROXY, a non-token REQUEST_METHOD and a non-numeric CONTENT_LENGTH', () => {
    const env = environ();
    (env as Record<string, unknown>).HTTP_PROXY = 'http://evil';
    lintError(() => checkEnviron(env));
    lintError(() => checkEnviron(environ({ REQUEST_METHOD: 'GET /' })));
    lintError(() => checkEnviron(environ({ CONTENT_LENGTH: '-3' })));
  });

  it('catches a wsgi.url_scheme other than http or https, and a wrong wsgi.version', () => {
    const a = environ();
    (a as Record<string, unknown>)['wsgi.url_scheme'] = 'ftp';
    lintError(() => checkEnviron(a));
    const v = environ();
    (v as Record<string, unknown>)['wsgi.version'] = [2, 0];
    lintError(() => checkEnviron(v));
  });
});
