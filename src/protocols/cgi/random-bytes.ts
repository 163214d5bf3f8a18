// `randomBytes` for the bundled CGI entry (dist/cgi.cjs), where scripts/build-cgi.mjs puts this
// module in the place of node:crypto: the runner takes one random request-id prefix per process
// (src/runner/gateway.ts), and loading node:crypto for it (with the stream modules it pulls in)
// cost a CGI program more start-up than the rest of its request. The bytes are the kernel's, as
// crypto.randomBytes's are; where /dev/urandom cannot be read, node:crypto is loaded after all.

import { closeSync, openSync, readSync } from 'node:fs';

export function randomBytes(size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let fd: number | undefined;
  try {
    fd = openSync('/dev/urandom', 'r');
    for (let off = 0; off < size; ) {
      const n = readSync(fd, buf, off, size - off, null);
      if (n === 0) throw new Error('/dev/urandom ended');
      off += n;
    }
    return buf;
  } catch {
    // process.getBuiltinModule: Node >= 20.16. Before it, and with no /dev/urandom (Windows),
    // the prefix is only a unique-enough label: Math.random's bytes do.
    const crypto = process.getBuiltinModule?.('node:crypto');
    if (crypto) return crypto.randomBytes(size);
    for (let i = 0; i < size; i++) buf[i] = Math.floor(Math.random() * 256);
    return buf;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
