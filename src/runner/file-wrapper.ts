// wsgi.file_wrapper (PEP 3333 "Optional Platform-Specific File Handling"): a file as a body,
// read block by block as the response drains, closed through the body's close().

import type { FileHandle } from 'node:fs/promises';
import type { Body, FileLike } from '../types.js';

export function fileWrapper(file: FileLike, blockSize = 64 * 1024): Body {
  let handle: FileHandle | null = null;
  let closed = false;
  const body = {
    async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
      if (typeof file === 'object') {
        for (;;) {
          const block = await file.read(blockSize);
          if (!block || block.length === 0) return;
          yield block;
        }
      }
      if (typeof file === 'string') {
        const { open } = await import('node:fs/promises');
        const h = await open(file, 'r');
        if (closed) {
          // close() came while the file was being opened
          await h.close();
          return;
        }
        handle = h;
      }
      for (;;) {
        if (closed) return;
        const buf = Buffer.allocUnsafe(blockSize);
        const { bytesRead } = handle
          ? await handle.read(buf, 0, blockSize, null)
          : await readFd(file as number, buf);
        if (bytesRead === 0) return;
        yield bytesRead === blockSize ? buf : buf.subarray(0, bytesRead);
      }
    },
    async close(): Promise<void> {
      closed = true;
      if (handle) await handle.close();
      else if (typeof file === 'object') await file.close?.();
    },
  };
  return body;
}

async function readFd(fd: number, buf: Buffer): Promise<{ bytesRead: number }> {
  const { read } = await import('node:fs');
  return new Promise((resolve, reject) => {
    read(fd, buf, 0, buf.length, null, (err, bytesRead) => (err ? reject(err) : resolve({ bytesRead })));
  });
}
