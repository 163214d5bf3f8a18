// The listen backlog of bin/tsgi, seen from a client: while tsgi's event loop is busy (an app
// that blocks it), new connections wait in the kernel's backlog. On a Unix socket a full backlog
// fails the connect at once with EAGAIN, which nginx turns into a 502; so 1,000 connections
// arriving while tsgi is busy must all fit. (Regression: the backlog was Node's 511, and 379 of
// 1,000 requests at once through nginx got 502; test/servers/load.test.ts.)

import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { app, run, sleep, stopAll, within } from '../helpers/spawn.js';

afterAll(() => stopAll());

/** net.core.somaxconn: the kernel caps every listen backlog at it. */
function somaxconn(): number {
  try {
    return Number(fs.readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
  } catch {
    return 0;
  }
}

const cap = somaxconn();
// 1,000 when the kernel lets a backlog hold them (Linux 5.4 and later: 4096), else what it allows.
const N = cap >= 1024 ? 1000 : Math.max(0, cap - 16);
if (N < 1000) process.stderr.write(`[backlog] net.core.somaxconn is ${cap}: checking ${N} connections instead of 1000\n`);

it(`${N} connections to a Unix socket while tsgi is busy all wait in the backlog (none refused with EAGAIN)`, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsgi-backlog-'));
  const sock = path.join(dir, 'tsgi.sock');
  const p = run(['serve', app('block.mjs'), '--protocol', 'http', '--bind', `unix:${sock}`]);
  try {
    await p.waitForStderr(/serving/, 10_000);
    // One request that blocks tsgi's event loop for 1.5 s ...
    const blocked = within(
      new Promise<string>((resolve, reject) => {
        const req = http.get({ socketPath: sock, path: '/?ms=1500', agent: false }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (d: string) => (body += d));
          res.on('end', () => resolve(body));
        });
        req.on('error', reject);
      }),
      10_000,
      'the blocking request',
    );
    await sleep(300);
    // ... and meanwhile N connections, which nobody accepts until it ends.
    const outcomes = await Promise.all(
      Array.from({ length: N }, () =>
        within(
          new Promise<string>((resolve) => {
            const s = net.connect(sock);
            s.once('connect', () => {
              s.destroy();
              resolve('connected');
            });
            s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
          }),
          10_000,
          'a connect',
        ),
      ),
    );
    const counts: Record<string, number> = {};
    for (const o of outcomes) counts[o] = (counts[o] ?? 0) + 1;
    expect(counts).toEqual({ connected: N });
    expect(await blocked).toBe('blocked 1500 ms\n');
  } finally {
    await p.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
