// Writing a middleware of your own: an app that wraps an app. This one adds security headers
// to every response. It changes the headers on their way to startResponse, passes excInfo on
// (so error handling around and inside it keeps working), and returns the inner body itself,
// so the body's close() still runs after the response (docs/middleware.md).
//
//   bin/tsgi serve examples/middleware/own-middleware.ts
//   curl -i http://127.0.0.1:8000/
import type { App, HeaderList, StartResponse } from '../../src/types.js';

export function securityHeaders(app: App, extra: HeaderList = []): App {
  const added: HeaderList = [
    ['X-Content-Type-Options', 'nosniff'],
    ['Referrer-Policy', 'same-origin'],
    ...extra,
  ];
  return (environ, startResponse) => {
    const sr: StartResponse = (status, headers, excInfo) => {
      const names = new Set(headers.map(([n]) => n.toLowerCase()));
      return startResponse(status, [...headers, ...added.filter(([n]) => !names.has(n.toLowerCase()))], excInfo);
    };
    return app(environ, sr);
  };
}

const hello: App = (_environ, startResponse) => {
  startResponse('200 OK', [['Content-Type', 'text/plain; charset=utf-8']]);
  return ['protected by headers\n'];
};

export default securityHeaders(hello, [['Content-Security-Policy', "default-src 'self'"]]);
