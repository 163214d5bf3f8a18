// The validator (`tsgi serve --lint`, and a middleware): checks both sides of the interface,
// in the spirit of wsgiref.validate. A broken rule throws an AppError whose message starts
// with "lint:" and names the rule; doubtful but legal use is logged as a warning.

import { AppError } from '../errors.js';
import type { Logger } from '../log-line.js';
import type { App, Body, Chunk, Environ, ErrorStream, InputStream, StartResponse } from '../types.js';

const fail = (msg: string): never => {
  throw new AppError(`lint: ${msg}`);
};

const REQUIRED = ['REQUEST_METHOD', 'SERVER_NAME', 'SERVER_PORT', 'SERVER_PROTOCOL', 'SCRIPT_NAME', 'PATH_INFO'];
const BOOLEANS = ['wsgi.multithread', 'wsgi.multiprocess', 'wsgi.run_once'];

/** Server side: the environ a server hands over follows PEP 3333 and the TSGI contract. */
export function checkEnviron(env: Environ): void {
  if (env === null || typeof env !== 'object' || Array.isArray(env)) fail('environ must be a plain object');
  for (const k of REQUIRED) if (typeof env[k] !== 'string') fail(`environ is missing the string ${k}`);
  for (const k of BOOLEANS) if (typeof env[k] !== 'boolean') fail(`environ[${k}] must be a boolean`);
  const v = env['wsgi.version'];
  if (!Array.isArray(v) || v[0] !== 1 || v[1] !== 0) fail(`environ['wsgi.version'] must be [1, 0]`);
  if (env['wsgi.url_scheme'] !== 'http' && env['wsgi.url_scheme'] !== 'https') fail(`environ['wsgi.url_scheme'] must be 'http' or 'https'`);
  if (env['wsgi.input_terminated'] !== true) fail(`environ['wsgi.input_terminated'] must be true`);
  const input = env['wsgi.input'] as Partial<InputStream> | undefined;
  if (!input || typeof input.read !== 'function' || typeof input.readline !== 'function' || typeof input[Symbol.asyncIterator] !== 'function') {
    fail(`environ['wsgi.input'] must have read(), readline() and async iteration`);
  }
  const errors = env['wsgi.errors'] as Partial<ErrorStream> | undefined;
  if (!errors || typeof errors.write !== 'function' || typeof errors.flush !== 'function') fail(`environ['wsgi.errors'] must have write() and flush()`);
  if (!(env['tsgi.signal'] instanceof AbortSignal)) fail(`environ['tsgi.signal'] must be an AbortSignal`);
  if (!['fastcgi', 'scgi', 'ajp', 'cgi', 'http'].includes(env['tsgi.protocol'] as string)) fail(`environ['tsgi.protocol'] is not a known protocol`);
  for (const [k, val] of Object.entries(env)) {
    if (k.includes('.')) continue; // wsgi.*, tsgi.* and other extension keys
    if (typeof val !== 'string') fail(`environ[${k}] must be a string, got ${typeof val}`);
    if (/[^\x00-\xff]/.test(val as string)) fail(`environ[${k}] has a character above U+00FF: CGI variables are byte strings`);
  }
  if (env.HTTP_CONTENT_TYPE !== undefined) fail('environ has HTTP_CONTENT_TYPE: it must be CONTENT_TYPE');
  if (env.HTTP_CONTENT_LENGTH !== undefined) fail('environ has HTTP_CONTENT_LENGTH: it must be CONTENT_LENGTH');
  if (env.HTTP_PROXY !== undefined) fail('environ has HTTP_PROXY: the Proxy header must never reach the app (httpoxy)');
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(env.REQUEST_METHOD)) fail(`REQUEST_METHOD ${JSON.stringify(env.REQUEST_METHOD)} is not a token`);
  if (env.SCRIPT_NAME && !env.SCRIPT_NAME.startsWith('/')) fail(`SCRIPT_NAME ${JSON.stringify(env.SCRIPT_NAME)} must be empty or start with /`);
  if (env.SCRIPT_NAME === '/') fail(`SCRIPT_NAME must not be '/': use '' and put the / in PATH_INFO`);
  if (env.PATH_INFO && !env.PATH_INFO.startsWith('/')) fail(`PATH_INFO ${JSON.stringify(env.PATH_INFO)} must be empty or start with /`);
  if (env.CONTENT_LENGTH && !/^[0-9]+$/.test(env.CONTENT_LENGTH)) fail(`CONTENT_LENGTH ${JSON.stringify(env.CONTENT_LENGTH)} is not a number`);
}

/** Wraps an app so that every use of the interface, on either side, is checked. */
export function validator(app: App, log?: Logger): App {
  return function lint(environ, startResponse) {
    checkEnviron(environ);
    const input = environ['wsgi.input'];
    environ['wsgi.input'] = checkedInput(input);
    let status: string | undefined;
    let headersChecked = false;
    const sr: StartResponse = (...args: unknown[]) => {
      if (args.length < 2 || args.length > 3) fail(`startResponse takes 2 or 3 arguments, got ${args.length}`);
      const [st, headers, excInfo] = args as Parameters<StartResponse>;
      if (status !== undefined && (excInfo === undefined || excInfo === null)) {
        fail('startResponse called a second time without excInfo');
      }
      if (typeof st !== 'string') fail('status must be a string');
      if (!/^[0-9]{3} ./.test(st)) log?.warn({ status: st }, 'lint: status should have a reason phrase ("200 OK")');
      if (Array.isArray(headers)) {
        const names = headers.map((h) => (Array.isArray(h) ? String(h[0]).toLowerCase() : ''));
        const code = Number(st.slice(0, 3));
        if (code !== 204 && code !== 304 && code >= 200 && !names.includes('content-type')) {
          log?.warn({ status: st }, 'lint: no Content-Type header on a response that may have a body');
        }
      }
      headersChecked = true;
      status = st;
      const write = startResponse(st, headers, excInfo);
      return (chunk: Chunk) => {
        checkChunk(chunk, 'write()');
        return write(chunk);
      };
    };
    const result = app(environ, sr);
    const check = (body: Body): Body => {
      if (body === null || body === undefined) fail('the app returned nothing: it must return an iterable body');
      if (typeof body === 'string') fail('the app returned a string: return [string] (a string would be sent char by char)');
      if (body instanceof Uint8Array) fail('the app returned bytes: return [bytes]');
      return checkedBody(body, () => headersChecked);
    };
    return result instanceof Promise ? result.then(check) : check(result);
  };
}

function checkChunk(chunk: unknown, where: string): void {
  if (!(chunk instanceof Uint8Array) && typeof chunk !== 'string') {
    fail(`${where} got a ${chunk === null ? 'null' : typeof chunk}: chunks are Uint8Array or string`);
  }
}

function checkedBody(body: Body, started: () => boolean): Body {
  let closed = 0;
  const onChunk = (chunk: unknown) => {
    if (closed) fail('the body was iterated after close()');
    checkChunk(chunk, 'the body');
    if (!started()) fail('the body yielded a chunk before startResponse was called');
  };
  const wrapped: Body & { close(): Promise<void> } = {
    async close() {
      if (closed++) fail('close() was called more than once');
      await body.close?.();
    },
  } as Body & { close(): Promise<void> };
  if (typeof (body as Iterable<Chunk>)[Symbol.iterator] === 'function') {
    (wrapped as Iterable<Chunk>)[Symbol.iterator] = function* () {
      for (const c of body as Iterable<Chunk>) {
        onChunk(c);
        yield c;
      }
    };
  } else if (typeof (body as AsyncIterable<Chunk>)[Symbol.asyncIterator] === 'function') {
    (wrapped as AsyncIterable<Chunk>)[Symbol.asyncIterator] = async function* () {
      for await (const c of body as AsyncIterable<Chunk>) {
        onChunk(c);
        yield c;
      }
    };
  } else {
    fail('the app must return an iterable or async iterable body');
  }
  return wrapped;
}

function checkedInput(input: InputStream): InputStream {
  const sizeOk = (size: unknown, name: string) => {
    if (size !== undefined && (typeof size !== 'number' || !Number.isInteger(size))) fail(`wsgi.input.${name}(size): size must be a whole number`);
  };
  return {
    read(size?: number) {
      sizeOk(size, 'read');
      return input.read(size);
    },
    readline(size?: number) {
      sizeOk(size, 'readline');
      return input.readline(size);
    },
    readlines(hint?: number) {
      sizeOk(hint, 'readlines');
      return input.readlines(hint);
    },
    [Symbol.asyncIterator]: () => input[Symbol.asyncIterator](),
  };
}
