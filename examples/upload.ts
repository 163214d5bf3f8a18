// Reading the request body (wsgi.input) three ways. The body may come with a CONTENT_LENGTH or
// without one (a chunked upload); either way the reads end with an empty chunk, never past it.
//
//   bin/tsgi serve examples/upload.ts
//   curl --data-binary @README.md http://127.0.0.1:8000/sha256     for await over chunks
//   curl --data-binary @README.md http://127.0.0.1:8000/lines      readline()
//   curl -H 'Content-Type: application/json' -d '{"a":1}' http://127.0.0.1:8000/json   read(n)
import { createHash } from 'node:crypto';
import type { App, InputStream } from '../src/types.js';

const MAX_JSON = 1024 * 1024;

/** Reads the whole body, but no more than `max` bytes: null when it is longer. */
async function readAtMost(input: InputStream, max: number): Promise<Uint8Array | null> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const chunk = await input.read(64 * 1024); // up to 64 KiB; empty at the end of the body
    if (chunk.length === 0) return Buffer.concat(parts);
    size += chunk.length;
    if (size > max) return null;
    parts.push(chunk);
  }
}

const app: App = async (environ, startResponse) => {
  const input = environ['wsgi.input'];
  const reply = (status: string, text: string, headers: Array<[string, string]> = []) => {
    startResponse(status, [['Content-Type', 'text/plain; charset=utf-8'], ...headers]);
    return [text];
  };
  if (environ.REQUEST_METHOD !== 'POST') {
    return reply('405 Method Not Allowed', 'POST a body to /sha256, /lines or /json\n', [['Allow', 'POST']]);
  }

  switch (environ.PATH_INFO) {
    case '/sha256': {
      // Any size in constant memory: each chunk as it arrives.
      const hash = createHash('sha256');
      let bytes = 0;
      for await (const chunk of input) {
        hash.update(chunk);
        bytes += chunk.length;
      }
      return reply('200 OK', `${bytes} bytes, sha256 ${hash.digest('hex')}\n`);
    }

    case '/lines': {
      // readline(size) returns one line with its "\n", at most `size` bytes of it.
      let lines = 0;
      let longest = 0;
      for (;;) {
        const line = await input.readline(64 * 1024);
        if (line.length === 0) break;
        lines++;
        longest = Math.max(longest, line.length);
      }
      return reply('200 OK', `${lines} lines, the longest ${longest} bytes\n`);
    }

    case '/json': {
      // Refuse early when the declared length is too big; still bound the read (chunked uploads
      // declare nothing).
      if (Number(environ.CONTENT_LENGTH || '0') > MAX_JSON) return reply('413 Content Too Large', 'too big\n');
      const bytes = await readAtMost(input, MAX_JSON);
      if (bytes === null) return reply('413 Content Too Large', 'too big\n');
      let value: unknown;
      try {
        value = JSON.parse(Buffer.from(bytes).toString('utf8'));
      } catch {
        return reply('400 Bad Request', 'the body is not JSON\n');
      }
      startResponse('200 OK', [['Content-Type', 'application/json']]);
      return [JSON.stringify({ received: value, bytes: bytes.length }) + '\n'];
    }

    default:
      return reply('404 Not Found', 'no such endpoint\n');
  }
};

export default app;
