#!/usr/bin/env node
// A whole CGI program in one file: the app, and the call that answers this process's one request
// with it (docs/cgi.md). tsgi must be installed where Node looks for 'tsgi/cgi' from this file:
// `npm install tsgi` in this directory or one above it.
//
// CommonJS, and require('tsgi/cgi'): that is tsgi's CGI code in one file (dist/cgi.cjs), the
// quickest to start. Node 20 runs a file ending in .cgi as CommonJS anyway (or refuses it,
// ERR_UNKNOWN_FILE_EXTENSION, when a package.json above says "type": "module"): keep this file
// out of "type": "module" packages. import('tsgi/cgi') works too, through Node's slower ES
// module loader.

function app(environ, startResponse) {
  startResponse('200 OK', [['Content-Type', 'application/json']]);
  return (async function* () {
    const body = Buffer.from(await environ['wsgi.input'].read());
    yield JSON.stringify({
      hello: 'from single-file.cgi',
      method: environ.REQUEST_METHOD,
      scriptName: environ.SCRIPT_NAME,
      pathInfo: environ.PATH_INFO,
      query: environ.QUERY_STRING ?? '',
      body: body.toString('latin1'),
      runOnce: environ['wsgi.run_once'],
      protocol: environ['tsgi.protocol'],
    });
  })();
}

let cgi;
try {
  cgi = require('tsgi/cgi');
} catch (err) {
  // No tsgi to answer with: say so in the server's error log, and answer a plain 500.
  process.stderr.write(`single-file.cgi: cannot load tsgi/cgi: ${err.message}\n`);
  process.stdout.write('Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\nInternal Server Error\n');
  process.exitCode = 1;
}
if (cgi) cgi.runCgi(app);
