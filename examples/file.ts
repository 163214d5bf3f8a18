// Serving files with wsgi.file_wrapper: the file is read 64 KiB at a time as the client takes it,
// and closed through the body's close(), also when the client goes away.
//
//   bin/tsgi serve examples/file.ts                (serves the current directory)
//   curl -O http://127.0.0.1:8000/README.md
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { App } from '../src/types.js';

const ROOT = path.resolve(process.env.FILES_ROOT ?? '.');
const TYPES: Record<string, string> = {
  '.md': 'text/markdown; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
  '.json': 'application/json',
  '.html': 'text/html; charset=utf-8',
};

const app: App = async (environ, startResponse) => {
  const notFound = () => {
    startResponse('404 Not Found', [['Content-Type', 'text/plain']]);
    return ['not found\n'];
  };
  // PATH_INFO is a byte string: decode it as UTF-8 to get the file name.
  const name = Buffer.from(environ.PATH_INFO, 'latin1').toString('utf8');
  if (name.includes('\0')) return notFound();
  // Normalising "/" + name first keeps the result inside ROOT ("/../x" becomes "/x").
  const file = path.join(ROOT, path.posix.normalize('/' + name));
  const st = await stat(file).catch(() => null);
  if (!st?.isFile()) return notFound();

  startResponse('200 OK', [
    ['Content-Type', TYPES[path.extname(file)] ?? 'application/octet-stream'],
    ['Content-Length', String(st.size)],
  ]);
  const wrapper = environ['wsgi.file_wrapper'];
  // A server without file_wrapper: any async iterable of chunks does the same.
  return wrapper ? wrapper(file) : createReadStream(file);
};

export default app;
