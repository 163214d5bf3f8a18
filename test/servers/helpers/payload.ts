// Large bodies without holding them: upload files written 1 MiB at a time with their sha256, and
// the sha256 of the byte pattern that test/fixtures/apps/download.mjs produces.

import { createHash, randomFillSync } from 'node:crypto';
import fs from 'node:fs';

export const KiB = 1024;
export const MiB = 1024 * 1024;

/** Writes `size` random bytes to `file` in 1 MiB steps; returns their sha256 (hex). */
export function writeRandomFile(file: string, size: number): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'w', 0o644);
  try {
    const buf = Buffer.allocUnsafe(Math.min(size, MiB));
    for (let at = 0; at < size; at += buf.length) {
      const part = buf.subarray(0, Math.min(buf.length, size - at));
      randomFillSync(part);
      h.update(part);
      fs.writeSync(fd, part);
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** download.mjs's bytes from..to: byte i is (i * 7 + (i >>> 16)) & 0xff. */
export function downloadPattern(from: number, to: number): Uint8Array {
  const b = new Uint8Array(to - from);
  for (let i = from; i < to; i++) b[i - from] = (i * 7 + (i >>> 16)) & 0xff;
  return b;
}

/** sha256 (hex) of the first `n` bytes download.mjs sends for `?n=N`. */
export function downloadSha256(n: number): string {
  const h = createHash('sha256');
  for (let at = 0; at < n; at += 65536) h.update(downloadPattern(at, Math.min(n, at + 65536)));
  return h.digest('hex');
}

export const sha256 = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');
