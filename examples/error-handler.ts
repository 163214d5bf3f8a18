// Error-handling middleware in the PEP 3333 manner. It wraps an app; when the app throws and the
// response headers have not gone out yet, it calls startResponse again *with excInfo* to replace
// the status and headers with its own error page. When the headers have gone out, that same call
// throws the error again, and tsgi aborts the response so that the front end sees it incomplete.
//
//   bin/tsgi serve examples/error-handler.ts
//   curl -i http://127.0.0.1:8000/ok           200 from the inner app
//   curl -i http://127.0.0.1:8000/fail-early   the inner app set 200 and threw before its first
//                                              chunk: the middleware answers 500 with its page
//   curl -i http://127.0.0.1:8000/fail-late    the inner app sent a chunk, then threw: the
//                                              response is cut off (curl reports an error)
import type { App, Body } from '../src/types.js';

export function withErrorPage(inner: App): App {
  return (environ, startResponse) => {
    let body: Body | undefined;
    async function* chunks() {
      try {
        body = await inner(environ, startResponse);
        for await (const chunk of body) yield chunk;
      } catch (err) {
        environ['wsgi.errors'].write(`${environ.PATH_INFO}: ${String(err)}\n`);
        // Replaces status and headers while they are unsent; otherwise throws `err` again.
        startResponse('500 Internal Server Error', [['Content-Type', 'text/html; charset=utf-8']], err);
        yield '<!doctype html><title>Error</title><h1>Sorry, something went wrong.</h1>\n';
      }
    }
    // The inner body's close() is passed on as this body's close(), so it still runs after the
    // response is finished (a `finally` in the generator would run before).
    return { [Symbol.asyncIterator]: chunks, close: async () => body?.close?.() };
  };
}

const inner: App = async function* (environ, startResponse) {
  startResponse('200 OK', [['Content-Type', 'text/plain; charset=utf-8']]);
  if (environ.PATH_INFO === '/fail-early') throw new Error('failed before the first chunk');
  yield 'first part\n';
  if (environ.PATH_INFO === '/fail-late') throw new Error('failed after the first chunk');
  yield 'second part\n';
};

export default withErrorPage(inner);
