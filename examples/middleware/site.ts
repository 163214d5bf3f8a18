// Middleware composed in code: a site with static files, an API behind Basic auth, errors
// caught, responses compressed, a request id and timing on every response, and the client's
// address taken from the proxy in front (docs/middleware.md).
//
//   bin/tsgi serve examples/middleware/site.ts
//   curl -i http://127.0.0.1:8000/                        static index.html
//   curl -i --compressed http://127.0.0.1:8000/hello      the app, gzip or brotli
//   curl -i -u ada:lovelace http://127.0.0.1:8000/api/me  the API, as ada
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  basicAuth,
  compose,
  compression,
  errorCatcher,
  proxyFix,
  requestId,
  staticFiles,
  timing,
  urlMap,
} from '../../src/middleware/index.js';
import type { App } from '../../src/types.js';

const here = path.dirname(fileURLToPath(import.meta.url));

const hello: App = (environ, startResponse) => {
  if (environ.PATH_INFO === '/boom') throw new Error('something broke');
  startResponse('200 OK', [['Content-Type', 'text/plain; charset=utf-8']]);
  return [`Hello from ${environ.SCRIPT_NAME}${environ.PATH_INFO} (request ${environ['tsgi.request_id']})\n`.repeat(50)];
};

const api: App = (environ, startResponse) => {
  startResponse('200 OK', [['Content-Type', 'application/json']]);
  return [JSON.stringify({ user: environ.REMOTE_USER, mountedAt: environ.SCRIPT_NAME, path: environ.PATH_INFO })];
};

const site = urlMap({
  '/': staticFiles(hello, { root: path.join(here, 'public'), maxAge: 300 }),
  '/api': basicAuth(api, { realm: 'Example API', users: { ada: 'lovelace' } }),
});

// Listed from the outside in: a request meets proxyFix first, the URL map last.
export default compose(
  site,
  (app) => proxyFix(app, { trusted: ['127.0.0.1', '::1'], xFor: 1, xProto: 1 }),
  (app) => requestId(app),
  (app) => errorCatcher(app, { debug: process.env.NODE_ENV === 'development' }),
  (app) => timing(app),
  (app) => compression(app, { minSize: 512 }),
);
