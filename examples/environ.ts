// Shows the environ the server built: every CGI variable the front end sent (byte strings), the
// wsgi.* and tsgi.* keys, and PATH_INFO and QUERY_STRING decoded from UTF-8 into Unicode.
//
//   bin/tsgi serve examples/environ.ts
//   curl 'http://127.0.0.1:8000/caf%C3%A9?q=%E2%9C%93'
import type { App } from '../src/types.js';

/** A byte string of the environ (one char per byte) read as UTF-8. */
const utf8 = (bytes: string): string => Buffer.from(bytes, 'latin1').toString('utf8');

function show(value: unknown): string {
  if (typeof value === 'string' || typeof value === 'boolean' || Array.isArray(value)) return JSON.stringify(value);
  if (value instanceof AbortSignal) return `AbortSignal (aborted: ${value.aborted})`;
  if (typeof value === 'function') return 'function';
  return value === null ? 'null' : (value?.constructor?.name ?? typeof value);
}

const app: App = (environ, startResponse) => {
  const lines = Object.keys(environ)
    .sort()
    .map((key) => `${key} = ${show(environ[key])}`);
  const query = new URLSearchParams(utf8(environ.QUERY_STRING ?? ''));
  lines.push(
    '',
    `path as Unicode: ${JSON.stringify(utf8(environ.SCRIPT_NAME + environ.PATH_INFO))}`,
    `query as Unicode: ${JSON.stringify(Object.fromEntries(query))}`,
  );
  startResponse('200 OK', [['Content-Type', 'text/plain; charset=utf-8']]);
  return [lines.join('\n') + '\n'];
};

export default app;
