// The app examples/cgi/app.cgi runs: a plain TSGI app, the same module `tsgi serve` would take.
// Under CGI each request is a fresh process (environ['wsgi.run_once'] is true): keep start-up
// work small, and put nothing on standard output yourself (tsgi sends console.log to stderr).

export default async function app(environ, startResponse) {
  if (environ.REQUEST_METHOD === 'POST') {
    const body = Buffer.from(await environ['wsgi.input'].read()).toString('utf8');
    startResponse('200 OK', [['Content-Type', 'text/plain; charset=utf-8']]);
    return [`you sent ${Buffer.byteLength(body)} bytes: ${body.slice(0, 200)}\n`];
  }
  if (environ.PATH_INFO === '/old') {
    // A local redirect (RFC 3875 6.2.2): the web server serves /index.html in our place.
    startResponse('200 OK', [['Location', '/index.html']]);
    return [];
  }
  startResponse('200 OK', [['Content-Type', 'text/plain; charset=utf-8']]);
  return [
    `hello from ${environ.SCRIPT_NAME}\n`,
    `PATH_INFO ${JSON.stringify(environ.PATH_INFO)}, QUERY_STRING ${JSON.stringify(environ.QUERY_STRING ?? '')}\n`,
    `served over ${environ['tsgi.protocol']} by process ${process.pid} (run_once ${environ['wsgi.run_once']})\n`,
  ];
}
