// FastCGI's other roles. environ.FCGI_ROLE says which one the web server asked for:
//   RESPONDER   an ordinary request (what nginx, Apache and lighttpd send)
//   AUTHORIZER  no body; 200 lets the request through, any other status is the answer to the client
//   FILTER      the file to filter arrives as environ['tsgi.fcgi_data'], read like wsgi.input
//               (FCGI_DATA_LENGTH bytes); this app returns it upper-cased
//
//   bin/tsgi serve examples/fcgi-roles.ts --protocol fastcgi --bind 127.0.0.1:9000
import type { App, InputStream } from '../src/types.js';

const app: App = async (environ, startResponse) => {
  switch (environ.FCGI_ROLE) {
    case 'AUTHORIZER': {
      const ok = environ.HTTP_AUTHORIZATION === 'Bearer let-me-in';
      // A 200 answer's Variable-NAME headers reach the later stages as environment variables.
      startResponse(ok ? '200 OK' : '403 Forbidden', ok ? [['Variable-USER', 'demo']] : [['Content-Type', 'text/plain']]);
      return ok ? [] : ['forbidden\n'];
    }
    case 'FILTER': {
      // The web server sends the whole wsgi.input first, then the data stream: read them in
      // that order.
      await environ['wsgi.input'].read();
      const data = environ['tsgi.fcgi_data'] as InputStream;
      const text = Buffer.from(await data.read()).toString('utf8');
      startResponse('200 OK', [['Content-Type', 'text/plain; charset=utf-8']]);
      return [text.toUpperCase()];
    }
    default:
      startResponse('200 OK', [['Content-Type', 'text/plain; charset=utf-8']]);
      return [`role ${String(environ.FCGI_ROLE)} over ${environ['tsgi.protocol']}\n`];
  }
};

export default app;
