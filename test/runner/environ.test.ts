// buildEnviron from the server's side: CGI variables in, the PEP 3333 environ out (httpoxy,
// PATH_INFO from REQUEST_URI decoded as latin-1, url_scheme, defaults, wsgi.* and tsgi.* keys),
// plus cgiHeaderName, percentDecode and parseContentLength.

import { describe, expect, it } from 'vitest';
import { RequestError } from '../../src/errors.js';
import { buildEnviron, cgiHeaderName, newVars, parseContentLength, percentDecode, type ServerContext } from '../../src/runner/environ.js';
import { LogErrorStream } from '../../src/runner/errors-stream.js';
import { fileWrapper } from '../../src/runner/file-wrapper.js';
import { BodyQueue } from '../../src/runner/input.js';
import { RequestAbort } from '../../src/runner/abort.js';
import { checkEnviron } from '../../src/runner/validate.js';
import { memoryLogger } from '../helpers/recording-sink.js';

const CTX: ServerContext = { protocol: 'fastcgi', multithread: false, multiprocess: true, runOnce: false };

function build(vars: Record<string, string>, ctx: Partial<ServerContext> = {}) {
  const input = new BodyQueue({ length: 0 });
  const errors = new LogErrorStream(memoryLogger().log);
  const controller = new AbortController();
  const environ = buildEnviron({ ...vars }, input, errors, controller.signal, { ...CTX, ...ctx });
  return { environ, input, errors, signal: controller.signal };
}

describe('buildEnviron', () => {
  it('drops HTTP_PROXY (httpoxy, CVE-2016-5385) and keeps other HTTP_ variables', () => {
    const { environ } = build({ HTTP_PROXY: 'http://evil.example:8080', HTTP_PROXY_AUTHORIZATION: 'x', HTTP_HOST: 'a.test' });
    expect('HTTP_PROXY' in environ).toBe(false);
    expect(environ.HTTP_PROXY_AUTHORIZATION).toBe('x');
    expect(environ.HTTP_HOST).toBe('a.test');
  });

  it('derives PATH_INFO from REQUEST_URI, percent-decoded one byte per char (latin-1)', () => {
    const { environ } = build({ REQUEST_URI: '/caf%C3%A9' });
    expect(environ.PATH_INFO).toBe('/caf\u00c3\u00a9');
  });

  it('leaves the query string out of a PATH_INFO derived from REQUEST_URI', () => {
    const { environ } = build({ REQUEST_URI: '/a%20b/c?x=%41&y=2', QUERY_STRING: 'x=%41&y=2' });
    expect(environ.PATH_INFO).toBe('/a b/c');
    expect(environ.QUERY_STRING).toBe('x=%41&y=2');
  });

  it('does not decode %2F differently from other escapes, and keeps malformed escapes', () => {
    const { environ } = build({ REQUEST_URI: '/a%2Fb/%zz/%4' });
    expect(environ.PATH_INFO).toBe('/a/b/%zz/%4');
  });

  it('strips SCRIPT_NAME from a PATH_INFO derived from REQUEST_URI', () => {
    const { environ } = build({ SCRIPT_NAME: '/app', REQUEST_URI: '/app/users/7?q=1' });
    expect(environ.SCRIPT_NAME).toBe('/app');
    expect(environ.PATH_INFO).toBe('/users/7');
    expect(build({ SCRIPT_NAME: '/app', REQUEST_URI: '/app' }).environ.PATH_INFO).toBe('');
  });

  // Regression (fixed): pathFromRequestUri strips SCRIPT_NAME with a plain startsWith(), so SCRIPT_NAME '/app'
  // and REQUEST_URI '/application' give PATH_INFO 'lication' (no leading slash, and a resource
  // the app never was asked for). Fix: strip only when the path equals SCRIPT_NAME or continues
  // with '/' right after it: `path === sn || path.startsWith(sn + '/')` (or sn ending in '/').
  it('strips SCRIPT_NAME only at a path segment boundary', () => {
    const { environ } = build({ SCRIPT_NAME: '/app', REQUEST_URI: '/application/x' });
    expect(environ.PATH_INFO).toMatch(/^\//);
    expect(() => checkEnviron(environ)).not.toThrow();
  });

  it('keeps a PATH_INFO the front end sent, without decoding it again or using REQUEST_URI', () => {
    const { environ } = build({ PATH_INFO: '/100%25/x', REQUEST_URI: '/other' });
    expect(environ.PATH_INFO).toBe('/100%25/x');
  });

  it('passes every variable the front end sent through, unchanged', () => {
    const vars = {
      REQUEST_METHOD: 'PATCH',
      SCRIPT_NAME: '/s',
      PATH_INFO: '/p',
      QUERY_STRING: 'a=1',
      CONTENT_TYPE: 'text/plain',
      CONTENT_LENGTH: '0',
      SERVER_NAME: 'srv',
      SERVER_PORT: '8443',
      SERVER_PROTOCOL: 'HTTP/1.1',
      REMOTE_ADDR: '10.0.0.1',
      REMOTE_USER: 'bob',
      DOCUMENT_ROOT: '/var/www',
      HTTP_X_CUSTOM: 'caf\u00c3\u00a9',
      SOME_VENDOR_VAR: 'kept',
    };
    const { environ } = build(vars);
    expect(environ).toMatchObject(vars);
  });

  it('sets wsgi.url_scheme to https when HTTPS is on (any case, 1, yes, true) or REQUEST_SCHEME is https', () => {
    for (const on of ['on', 'ON', '1', 'yes', 'true']) {
      const { environ } = build({ HTTPS: on });
      expect(environ['wsgi.url_scheme']).toBe('https');
      expect(environ.SERVER_PORT).toBe('443');
    }
    expect(build({ REQUEST_SCHEME: 'https' }).environ['wsgi.url_scheme']).toBe('https');
  });

  it('sets wsgi.url_scheme to http otherwise (HTTPS off or empty, nothing said)', () => {
    for (const vars of [{}, { HTTPS: 'off' }, { HTTPS: '' }, { HTTPS: '0' }, { REQUEST_SCHEME: 'http' }] as Array<Record<string, string>>) {
      const { environ } = build(vars);
      expect(environ['wsgi.url_scheme']).toBe('http');
      expect(environ.SERVER_PORT).toBe('80');
    }
  });

  it('fills missing CGI variables with PEP 3333 defaults', () => {
    const { environ } = build({});
    expect(environ).toMatchObject({
      REQUEST_METHOD: 'GET',
      SCRIPT_NAME: '',
      PATH_INFO: '',
      SERVER_NAME: 'localhost',
      SERVER_PORT: '80',
      SERVER_PROTOCOL: 'HTTP/1.0',
    });
    expect('QUERY_STRING' in environ ? environ.QUERY_STRING : '').toBe('');
    expect(environ.CONTENT_TYPE ?? '').toBe('');
    expect(environ.CONTENT_LENGTH ?? '').toBe('');
  });

  it('takes SERVER_NAME from HTTP_HOST without its port (IPv6 literals included)', () => {
    expect(build({ HTTP_HOST: 'example.com:8080' }).environ.SERVER_NAME).toBe('example.com');
    expect(build({ HTTP_HOST: 'example.com' }).environ.SERVER_NAME).toBe('example.com');
    expect(build({ HTTP_HOST: '[::1]:8080' }).environ.SERVER_NAME).toBe('[::1]');
    expect(build({ HTTP_HOST: 'h', SERVER_NAME: 'given' }).environ.SERVER_NAME).toBe('given');
  });

  it('adds the wsgi.* and tsgi.* keys, true to the server context', () => {
    const { environ, input, errors, signal } = build({}, { protocol: 'cgi', runOnce: true, multiprocess: false, multithread: true });
    expect(environ['wsgi.version']).toEqual([1, 0]);
    expect(environ['wsgi.input']).toBe(input);
    expect(environ['wsgi.errors']).toBe(errors);
    expect(environ['wsgi.multithread']).toBe(true);
    expect(environ['wsgi.multiprocess']).toBe(false);
    expect(environ['wsgi.run_once']).toBe(true);
    expect(environ['wsgi.input_terminated']).toBe(true);
    expect(environ['wsgi.file_wrapper']).toBe(fileWrapper);
    expect(environ['tsgi.protocol']).toBe('cgi');
    expect(environ['tsgi.signal']).toBe(signal);
  });

  it('with a RequestAbort, tsgi.signal is made on first read, per request, and survives copies', () => {
    const make = () => {
      const abort = new RequestAbort();
      const environ = buildEnviron(newVars(), new BodyQueue({ length: 0 }), new LogErrorStream(memoryLogger().log), abort, CTX);
      return { abort, environ };
    };
    const a = make();
    const b = make();
    expect(Object.keys(a.environ)).toContain('tsgi.signal');
    // The request's abort flag rides on a symbol key: no name an app walks shows it.
    expect(Object.keys({ ...a.environ })).toEqual(Object.keys(a.environ));
    expect(Object.keys(a.environ).every((k) => !k.includes('requestAbort'))).toBe(true);
    const signal = a.environ['tsgi.signal'];
    expect(signal).toBeInstanceOf(AbortSignal);
    expect(a.environ['tsgi.signal']).toBe(signal);
    expect(b.environ['tsgi.signal']).not.toBe(signal);
    const copy = { ...a.environ };
    const derived = Object.create(a.environ) as typeof a.environ;
    expect(copy['tsgi.signal']).toBe(signal);
    expect(derived['tsgi.signal']).toBe(signal);
    a.abort.abort();
    expect(signal.aborted).toBe(true);
    expect(b.environ['tsgi.signal'].aborted).toBe(false);
    // Read for the first time after the abort: already aborted.
    const c = make();
    c.abort.abort();
    expect(c.environ['tsgi.signal'].aborted).toBe(true);
  });

  it('lets middleware put its own tsgi.signal in place by plain assignment', () => {
    'use strict';
    const environ = buildEnviron(newVars(), new BodyQueue({ length: 0 }), new LogErrorStream(memoryLogger().log), new RequestAbort(), CTX);
    const mine = new AbortController().signal;
    environ['tsgi.signal'] = mine;
    expect(environ['tsgi.signal']).toBe(mine);
    expect(Object.getOwnPropertyDescriptor(environ, 'tsgi.signal')).toMatchObject({ value: mine, writable: true, enumerable: true });
    const derived = Object.create(buildEnviron(newVars(), new BodyQueue({ length: 0 }), new LogErrorStream(memoryLogger().log), new RequestAbort(), CTX)) as typeof environ;
    derived['tsgi.signal'] = mine;
    expect(derived['tsgi.signal']).toBe(mine);
  });

  it('builds an environ the validator accepts', () => {
    const { environ } = build({
      REQUEST_METHOD: 'POST',
      REQUEST_URI: '/caf%C3%A9?x=1',
      QUERY_STRING: 'x=1',
      CONTENT_TYPE: 'application/x-www-form-urlencoded',
      CONTENT_LENGTH: '3',
      HTTP_HOST: 'example.com',
    });
    expect(() => checkEnviron(environ)).not.toThrow();
  });
});

describe('newVars', () => {
  it('is a plain, empty object, whatever V8 does with its shape', () => {
    for (let i = 0; i < 20; i++) {
      const v = newVars();
      expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
      expect(v.constructor).toBe(Object);
      expect(Object.keys(v)).toEqual([]);
      expect(JSON.stringify(v)).toBe('{}');
      for (let k = 0; k < 40; k++) v[`HTTP_X_${k}`] = String(k);
      expect(Object.keys(v)).toHaveLength(40);
      expect({ ...v }).toEqual(v);
      expect(Object.prototype.toString.call(v)).toBe('[object Object]');
    }
  });
});

describe('percentDecode', () => {
  it.each([
    ['/caf%C3%A9', '/caf\u00c3\u00a9'],
    ['/caf%c3%a9', '/caf\u00c3\u00a9'],
    ['%FF%00%41', '\u00ff\u0000A'],
    ['no escapes', 'no escapes'],
    ['100%', '100%'],
    ['%', '%'],
    ['%4', '%4'],
    ['%zz%41', '%zzA'],
    ['%%41', '%A'],
    ['a%20b%20', 'a b '],
    ['%2541', '%41'],
  ])('%j -> %j', (input, output) => {
    expect(percentDecode(input)).toBe(output);
  });

  it('never yields a character above U+00FF', () => {
    let all = '';
    for (let b = 0; b < 256; b++) all += '%' + b.toString(16).padStart(2, '0');
    const decoded = percentDecode(all);
    expect(decoded.length).toBe(256);
    for (let b = 0; b < 256; b++) expect(decoded.charCodeAt(b)).toBe(b);
  });
});

describe('cgiHeaderName', () => {
  it.each([
    ['Host', 'HTTP_HOST'],
    ['X-Forwarded-For', 'HTTP_X_FORWARDED_FOR'],
    ['accept-encoding', 'HTTP_ACCEPT_ENCODING'],
    ['Content-Type', 'CONTENT_TYPE'],
    ['content-length', 'CONTENT_LENGTH'],
    ['Proxy-Authorization', 'HTTP_PROXY_AUTHORIZATION'],
  ])('%s -> %s', (name, cgi) => {
    expect(cgiHeaderName(name)).toBe(cgi);
  });

  it('drops headers with an underscore (they would collide with their dashed twin)', () => {
    expect(cgiHeaderName('X_Forwarded_For')).toBeNull();
    expect(cgiHeaderName('Content_Length')).toBeNull();
  });

  it('drops the Proxy header (httpoxy), whatever its case', () => {
    expect(cgiHeaderName('Proxy')).toBeNull();
    expect(cgiHeaderName('proxy')).toBeNull();
    expect(cgiHeaderName('PROXY')).toBeNull();
  });
});

describe('parseContentLength', () => {
  it('is undefined when absent or empty, a number when decimal', () => {
    expect(parseContentLength(undefined)).toBeUndefined();
    expect(parseContentLength('')).toBeUndefined();
    expect(parseContentLength('0')).toBe(0);
    expect(parseContentLength('1048576')).toBe(1048576);
  });

  it.each([['-1'], ['1e3'], [' 5'], ['5 '], ['0x10'], ['1.0'], ['9999999999999999']])('answers 400 for %j', (value) => {
    let error: unknown;
    try {
      parseContentLength(value);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(RequestError);
    expect(error).toMatchObject({ code: 'TSGI_BAD_CONTENT_LENGTH', status: 400 });
  });
});
