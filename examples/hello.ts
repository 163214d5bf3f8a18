// The smallest TSGI app: `bin/tsgi serve examples/hello.ts`, then open http://127.0.0.1:8000/
import type { App } from '../src/types.js';

const app: App = (environ, startResponse) => {
  const name = (environ.PATH_INFO || '/').slice(1) || 'world';
  const body = `Hello, ${name}!\n`;
  startResponse('200 OK', [
    ['Content-Type', 'text/plain; charset=utf-8'],
    ['Content-Length', String(Buffer.byteLength(body))],
  ]);
  return [body];
};

export default app;
