// The legacy write() callable that startResponse returns (PEP 3333 keeps it for old frameworks).
// Each call sends a piece of body at once. Await what it returns: a promise means the transport is
// full, and it resolves when there is room again, so the app never runs ahead of the client.
//
//   bin/tsgi serve examples/write.ts
//   curl http://127.0.0.1:8000/?rows=5
import type { App } from '../src/types.js';

const app: App = async (environ, startResponse) => {
  const rows = Math.min(Number(new URLSearchParams(environ.QUERY_STRING ?? '').get('rows') ?? '1000') || 0, 1_000_000);
  const write = startResponse('200 OK', [['Content-Type', 'text/csv; charset=utf-8']]);
  await write('n,square\n');
  for (let n = 1; n <= rows; n++) await write(`${n},${n * n}\n`);
  return []; // everything went through write(); the body is empty
};

export default app;
