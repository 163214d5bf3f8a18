// In-process cost of the framework adapters: `Gateway.handle` in a loop over a no-op sink, for a
// plain TSGI hello, a Hono app through fromFetch as `bin/tsgi serve` runs it (the global Response
// made lightweight: overrideGlobalObjects), the same with the globals left alone (hono-native), a
// bare (req, res) listener and an Express app through fromNodeListener. `npm run build` first; then
//   node bench/micro/adapters-loop.mjs plain|hono|hono-native|node|express [N]
const D = new URL('../../dist/', import.meta.url).href;
const { fromFetch } = await import(D + 'adapters/fetch.js');
const { fromNodeListener } = await import(D + 'adapters/node.js');
const { Gateway } = await import(D + 'runner/gateway.js');
const { RequestAbort } = await import(D + 'runner/abort.js');
const { createLineLogger } = await import(D + 'log-line.js');

async function appFor(name) {
  if (name === 'plain') {
    return (_env, sr) => {
      sr('200 OK', [['Content-Type', 'text/plain'], ['Content-Length', '13']]);
      return ['Hello, world!'];
    };
  }
  if (name === 'hono') return fromFetch((await import('../apps/hono.mjs')).default, { overrideGlobalObjects: true });
  if (name === 'hono-native') return fromFetch((await import('../apps/hono.mjs')).default);
  if (name === 'express') return fromNodeListener((await import('../apps/express.mjs')).default);
  return fromNodeListener((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '13' });
    res.end('Hello, world!');
  });
}

const name = process.argv[2] ?? 'plain';
const N = Number(process.argv[3] ?? 20000);
const gw = new Gateway({ app: await appFor(name), log: createLineLogger({ level: 'warn' }), protocol: 'fastcgi' });
let bytes = 0;
const sink = { start: (_s, _h, c) => void (bytes += c?.length ?? 0), write: (c) => void (bytes += c.length), end() {}, abort: (e) => console.error('abort', e) };
for (let round = 0; round < 3; round++) {
  const t = performance.now();
  for (let i = 0; i < N; i++) {
    // What nginx's fastcgi_params send for GET /hello.
    const vars = {
      REQUEST_METHOD: 'GET', SCRIPT_NAME: '', PATH_INFO: '/hello', QUERY_STRING: '', REQUEST_URI: '/hello',
      SERVER_NAME: 'localhost', SERVER_PORT: '80', SERVER_PROTOCOL: 'HTTP/1.1', REMOTE_ADDR: '127.0.0.1',
      CONTENT_LENGTH: '', CONTENT_TYPE: '', HTTP_HOST: 'localhost', HTTP_USER_AGENT: 'wrk', HTTP_ACCEPT: '*/*',
    };
    await gw.handle(vars, gw.bodyQueue(0, () => {}), sink, new RequestAbort());
  }
  console.log(`${name}: ${((performance.now() - t) * 1000 / N).toFixed(1)} us/request`);
}
if (bytes !== 3 * N * 13) throw new Error(`expected ${3 * N * 13} body bytes, got ${bytes}`);
