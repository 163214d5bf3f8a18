// Work after the response, the way PHP's fastcgi_finish_request() is used: return a body that has
// a close() method. tsgi calls close() once, after the response is finished on the wire (FastCGI
// END_REQUEST, AJP END_RESPONSE, SCGI connection closed, HTTP message ended), so the client
// already has its answer while close() runs.
//
//   bin/tsgi serve examples/after-response.ts
//   curl -X POST http://127.0.0.1:8000/reports    answers "202 report 1 queued" at once
//   curl http://127.0.0.1:8000/reports            the reports finished so far (each takes 2 s)
import { setTimeout as sleep } from 'node:timers/promises';
import type { App, Body, Environ } from '../src/types.js';

const done: string[] = [];
let nextId = 1;

async function buildReport(id: number, environ: Environ): Promise<void> {
  const started = Date.now();
  await sleep(2000); // stands for slow work: sending mail, resizing images, calling an API
  done.push(`report ${id}: built in ${Date.now() - started} ms\n`);
  environ['wsgi.errors'].write(`report ${id} built\n`);
}

const app: App = (environ, startResponse) => {
  if (environ.REQUEST_METHOD === 'POST') {
    const id = nextId++;
    const text = `report ${id} queued\n`;
    startResponse('202 Accepted', [
      ['Content-Type', 'text/plain; charset=utf-8'],
      ['Content-Length', String(Buffer.byteLength(text))],
    ]);
    const body: Body = Object.assign([text], {
      async close() {
        // close() also runs when the response failed or the client went away: skip the work then.
        if (environ['tsgi.signal'].aborted) return;
        await buildReport(id, environ);
      },
    });
    return body;
  }
  startResponse('200 OK', [['Content-Type', 'text/plain; charset=utf-8']]);
  return [done.length > 0 ? done.join('') : 'no report finished yet\n'];
};

export default app;
