// The validator as middleware: every use of the interface, by the server and by the app, is
// checked, and a broken rule fails the request with an error whose message starts with "lint:".
// `bin/tsgi serve APP --lint` does the same for any app, without changing its code.
//
//   bin/tsgi serve examples/lint.ts
//   curl http://127.0.0.1:8000/          a correct response
//   curl http://127.0.0.1:8000/broken    500; the log says: lint: the app returned a string ...
import { validator } from '../src/index.js';
import type { App, Body } from '../src/types.js';

const app: App = (environ, startResponse) => {
  startResponse('200 OK', [['Content-Type', 'text/plain; charset=utf-8']]);
  if (environ.PATH_INFO === '/broken') return 'a string is not a body' as unknown as Body;
  return ['checked\n'];
};

export default validator(app);
