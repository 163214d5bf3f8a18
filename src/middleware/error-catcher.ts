// Error catcher (Paste's ErrorMiddleware, werkzeug's DebuggedApplication without the console):
// an error of the wrapped app is logged through wsgi.errors and answered with a 500, a plain one
// in production and a page with the stack and the environ in debug mode. Once the headers have
// gone out, PEP 3333's exc_info rule applies: startResponse throws the error again and the
// server aborts the response, so the client never takes a cut-off body for a whole one.

import { ClientGoneError, RequestError } from '../errors.js';
import type { App, Body, Chunk, Environ, StartResponse } from '../types.js';
import { escapeHtml, requestPath, respond } from './util.js';

export interface ErrorCatcherOptions {
  /** Answer with the stack and the environ (never in production). Default false. */
  debug?: boolean;
}

/** Environ keys whose values never appear on the debug page. */
const SECRET = new Set(['HTTP_AUTHORIZATION', 'HTTP_PROXY_AUTHORIZATION', 'HTTP_COOKIE']);

/** Catches what `app` throws, before or while its body is read, and answers a 500. */
export function errorCatcher(app: App, options: ErrorCatcherOptions = {}): App {
  const debug = options.debug ?? false;
  return function errorCatcherApp(environ, startResponse) {
    const fail = (err: unknown): Body => {
      if (passOn(err, environ)) throw err;
      logError(environ, err);
      return errorResponse(environ, startResponse, err, debug);
    };
    let result: Body | Promise<Body>;
    try {
      result = app(environ, startResponse);
    } catch (err) {
      return fail(err);
    }
    const wrap = (body: Body): Body => {
      // An array runs no app code while it is read: nothing to catch there.
      if (Array.isArray(body)) return body;
      if (body === null || (typeof body !== 'object' && typeof body !== 'function') || typeof body === 'string') {
        return fail(new TypeError(`the app must return an iterable body, got ${body === null ? 'null' : typeof body}`));
      }
      const iterable = Symbol.asyncIterator in body || Symbol.iterator in body;
      if (!iterable) return fail(new TypeError('the app must return an iterable or async iterable body'));
      return {
        async *[Symbol.asyncIterator](): AsyncGenerator<Chunk> {
          try {
            // for await stops the inner body (its return()) when the server stops reading early.
            for await (const chunk of body as AsyncIterable<Chunk>) yield chunk;
          } catch (err) {
            if (passOn(err, environ)) throw err;
            logError(environ, err);
            // Replaces status and headers while they are unsent; once sent, throws `err` again.
            yield* errorResponse(environ, startResponse, err, debug) as Chunk[];
          }
        },
        close: async () => body.close?.(),
      };
    };
    if (result !== null && typeof (result as Promise<Body>)?.then === 'function') return (result as Promise<Body>).then(wrap, fail);
    return wrap(result as Body);
  };
}

/** Errors that are not the app's to answer: the client went away, or the request was refused. */
function passOn(err: unknown, environ: Environ): boolean {
  return err instanceof ClientGoneError || err instanceof RequestError || environ['tsgi.signal']?.aborted === true;
}

function logError(environ: Environ, err: unknown): void {
  const e = err instanceof Error ? err : new Error(String(err));
  try {
    environ['wsgi.errors'].write(`${environ.REQUEST_METHOD} ${requestPath(environ)}: ${e.stack ?? e.message}\n`);
  } catch {
    // a broken error stream must not hide the error response
  }
}

function errorResponse(environ: Environ, startResponse: StartResponse, err: unknown, debug: boolean): Body {
  const status = '500 Internal Server Error';
  const noStore: Array<[string, string]> = [['Cache-Control', 'no-store']];
  if (!debug) return respond(startResponse, status, 'Internal Server Error\n', noStore, undefined, err);
  return respond(startResponse, status, debugPage(environ, err), noStore, 'text/html; charset=utf-8', err);
}

/** The debug page: the error and its causes with their stacks, then the environ. */
export function debugPage(environ: Environ, err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e !== undefined && depth < 5; depth++) {
    const error = e instanceof Error ? e : new Error(String(e));
    parts.push(
      `<h${depth === 0 ? 1 : 2}>${depth === 0 ? '' : 'Caused by '}${escapeHtml(error.name)}: ${escapeHtml(error.message)}</h${depth === 0 ? 1 : 2}>\n` +
        `<pre>${escapeHtml(error.stack ?? '')}</pre>`,
    );
    e = (error as { cause?: unknown }).cause;
  }
  const rows = Object.keys(environ)
    .sort()
    .map((k) => {
      const v = environ[k];
      const shown = SECRET.has(k) ? '[hidden]' : typeof v === 'string' ? v : describe(v);
      return `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(shown)}</td></tr>`;
    })
    .join('\n');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>500 Internal Server Error</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:2em}pre{background:#f6f6f6;padding:1em;overflow:auto}th{text-align:left;padding-right:1em;vertical-align:top}td{font-family:monospace;white-space:pre-wrap;word-break:break-all}</style>
</head><body>
<p>${escapeHtml(environ.REQUEST_METHOD)} ${escapeHtml(requestPath(environ))}${environ.QUERY_STRING ? '?' + escapeHtml(environ.QUERY_STRING) : ''}</p>
${parts.join('\n')}
<h2>environ</h2>
<table>
${rows}
</table>
<p><small>tsgi error catcher, debug mode: never enable it in production.</small></p>
</body></html>
`;
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (typeof v === 'boolean' || typeof v === 'number') return String(v);
  if (Array.isArray(v)) return `[${v.map(String).join(', ')}]`;
  if (typeof v === 'function') return `function ${v.name || '(anonymous)'}`;
  if (v instanceof AbortSignal) return `AbortSignal (aborted: ${v.aborted})`;
  return `${(v as object).constructor?.name ?? 'object'}`;
}
