// curl as the HTTP client of real-server tests: exact request shapes (chunked uploads, HEAD,
// repeated headers), its exit code for incomplete responses (18: partial file), and bodies
// hashed as they stream so that 100 MiB never sit in the test's memory.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { makeTempDir } from './fs-access.js';

export interface CurlOptions {
  method?: string;
  /** Request header lines, "Name: value"; repeat a name to send it twice. */
  headers?: string[];
  /** A small body sent as is (--data-binary). */
  data?: string | Buffer;
  /** A file streamed as the body (-T), with its Content-Length unless `chunked`. */
  uploadFile?: string;
  /** Send the body with Transfer-Encoding: chunked and no Content-Length. */
  chunked?: boolean;
  /** HEAD request (-I). */
  head?: boolean;
  /** Connect to this Unix socket instead of the URL's host. */
  unixSocket?: string;
  /** Keep at most this many body bytes in `body` (the hash and length cover all of them). */
  keepBytes?: number;
  /** Overall limit (ms); curl gets it as --max-time and is killed by pid past it. */
  timeoutMs?: number;
  /** More curl arguments. */
  args?: string[];
}

export interface CurlResult {
  /** curl's exit code: 0 ok, 18 partial file (short body), 52 empty reply, 56 recv failure... */
  exitCode: number;
  status: number;
  reason: string;
  /** The final response's header lines in order, repeats kept. */
  headers: Array<[string, string]>;
  header(name: string): string[];
  /** The body, or its first `keepBytes` bytes. */
  body: Buffer;
  bytes: number;
  sha256: string;
  stderr: string;
  ms: number;
}

let headerDir: string | undefined;
let seq = 0;

/** Runs curl once; resolves when it exits (never rejects for HTTP or transfer errors). */
export function curl(url: string, o: CurlOptions = {}): Promise<CurlResult> {
  // (Made again if a test's afterAll removed the temp dirs meanwhile.)
  if (!headerDir || !fs.existsSync(headerDir)) headerDir = makeTempDir('curl');
  const headerFile = path.join(headerDir, `h${++seq}`);
  const timeoutMs = o.timeoutMs ?? 30_000;
  const args = ['-sS', '--http1.1', '-o', '-', '-D', headerFile, '--max-time', String(timeoutMs / 1000)];
  if (o.method) args.push('-X', o.method);
  if (o.head) args.push('-I');
  if (o.unixSocket) args.push('--unix-socket', o.unixSocket);
  // No "Expect: 100-continue" round trip: uploads start at once, the same on every front end.
  args.push('-H', 'Expect:');
  for (const h of o.headers ?? []) args.push('-H', h);
  if (o.chunked) args.push('-H', 'Transfer-Encoding: chunked');
  if (o.uploadFile !== undefined) args.push('-T', o.uploadFile);
  else if (o.data !== undefined) args.push('--data-binary', '@-');
  args.push(...(o.args ?? []), url);
  const started = performance.now();
  const child = spawn('curl', args, { stdio: [o.data !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  if (o.data !== undefined) child.stdin!.end(o.data);
  const hash = createHash('sha256');
  const keep = o.keepBytes ?? 1024 * 1024;
  const kept: Buffer[] = [];
  let keptBytes = 0;
  let bytes = 0;
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => {
    hash.update(c);
    bytes += c.length;
    if (keptBytes < keep) {
      const part = c.subarray(0, keep - keptBytes);
      kept.push(part);
      keptBytes += part.length;
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => {
    const killer = setTimeout(() => {
      stderr += `\n[test] curl pid ${child.pid} killed after ${timeoutMs + 5000} ms`;
      child.kill('SIGKILL');
    }, timeoutMs + 5000);
    child.once('close', (code, signal) => {
      clearTimeout(killer);
      let head = '';
      try {
        head = fs.readFileSync(headerFile, 'latin1');
        fs.rmSync(headerFile, { force: true });
      } catch {
        // no response head
      }
      const { status, reason, headers } = parseLastHead(head);
      resolve({
        exitCode: code ?? (signal ? 128 : -1),
        status,
        reason,
        headers,
        header: (name) => headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v),
        body: Buffer.concat(kept),
        bytes,
        sha256: hash.digest('hex'),
        stderr,
        ms: performance.now() - started,
      });
    });
  });
}

/** The last response head in curl's -D output (after any 100 Continue). */
function parseLastHead(text: string): { status: number; reason: string; headers: Array<[string, string]> } {
  const blocks = text.split(/\r?\n\r?\n/).filter((b) => b.startsWith('HTTP/'));
  const last = blocks[blocks.length - 1];
  if (!last) return { status: 0, reason: '', headers: [] };
  const lines = last.split(/\r?\n/);
  const m = /^HTTP\/[0-9.]+ ([0-9]{3})(?: (.*))?$/.exec(lines[0]!);
  const headers: Array<[string, string]> = [];
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers.push([l.slice(0, i), l.slice(i + 1).trim()]);
  }
  return { status: m ? Number(m[1]) : 0, reason: m?.[2] ?? '', headers };
}
