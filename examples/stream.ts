// Streaming with an async generator: startResponse before the first yield, then one line every
// 200 ms, each sent as soon as it is yielded. A client that goes away stops the loop at once.
//
//   bin/tsgi serve examples/stream.ts
//   curl -N 'http://127.0.0.1:8000/?n=5'
import { setTimeout as sleep } from 'node:timers/promises';
import type { App } from '../src/types.js';

const app: App = async function* (environ, startResponse) {
  const n = Math.min(Number(new URLSearchParams(environ.QUERY_STRING ?? '').get('n') ?? '10') || 10, 1000);
  const signal = environ['tsgi.signal'];
  startResponse('200 OK', [
    ['Content-Type', 'text/plain; charset=utf-8'],
    ['Cache-Control', 'no-store'],
    ['X-Accel-Buffering', 'no'], // nginx: pass each chunk on without buffering the response
  ]);
  for (let i = 1; i <= n; i++) {
    yield `tick ${i} of ${n}\n`;
    // Rejects with an AbortError when the client goes away; tsgi then ends the request quietly.
    await sleep(200, undefined, { signal });
  }
  yield 'done\n';
};

export default app;
