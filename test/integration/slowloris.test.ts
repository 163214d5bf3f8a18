// Slowloris on every protocol (issue 10, faults): a peer that sends its request head a byte at a
// time is cut off at --header-timeout, and well-formed requests on other connections are served
// all the while.

import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeForwardRequest } from '../../src/protocols/ajp/codec.js';
import { encodeBeginRequest, encodeParams, encodeRecord } from '../../src/protocols/fastcgi/codec.js';
import { encodeRequest } from '../../src/protocols/scgi/codec.js';
import { app, serve, sleep, stopAll, within } from '../helpers/spawn.js';

afterAll(() => stopAll());

const heads: Record<string, () => Buffer> = {
  http: () => Buffer.from('GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
  fastcgi: () =>
    Buffer.concat([
      encodeBeginRequest(1, 1, 0),
      encodeRecord(4, 1, encodeParams([['REQUEST_METHOD', 'GET'], ['PATH_INFO', '/hello'], ['SCRIPT_NAME', ''], ['SERVER_NAME', 'x'], ['SERVER_PORT', '80'], ['SERVER_PROTOCOL', 'HTTP/1.1'], ['HTTP_X_PAD', 'p'.repeat(400)]])),
      encodeRecord(4, 1),
      encodeRecord(5, 1),
    ]),
  scgi: () => Buffer.from(encodeRequest([['CONTENT_LENGTH', '0'], ['SCGI', '1'], ['REQUEST_METHOD', 'GET'], ['PATH_INFO', '/hello'], ['HTTP_X_PAD', 'p'.repeat(400)]])),
  ajp: () => Buffer.from(encodeForwardRequest({ method: 'GET', requestUri: '/hello', headers: [['x-pad', 'p'.repeat(400)]] })),
};

/** Sends `bytes` whole on a fresh connection; resolves with what came back once it closes. */
function exchange(port: number, bytes: Buffer, endAfter: boolean, until?: (b: Buffer) => boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect(port, '127.0.0.1', () => (endAfter ? s.end(bytes) : s.write(bytes)));
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      if (until?.(Buffer.concat(chunks))) s.destroy();
    });
    s.on('close', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
}

describe.each(Object.keys(heads))('%s', (protocol) => {
  it('a request head trickling in a byte at a time is cut off at --header-timeout, while others are served', async () => {
    const srv = await serve(app('hello.mjs'), { args: ['--protocol', protocol, '--header-timeout', '1'] });
    const head = heads[protocol]!();
    const slow = net.connect(srv.port, '127.0.0.1');
    let sent = 0;
    let closedAt = 0;
    const started = Date.now();
    const closed = new Promise<void>((resolve) => slow.on('close', () => {
      closedAt = Date.now();
      resolve();
    }));
    slow.on('error', () => {});
    if (process.env.DEBUG_SLOW) slow.on('data', (d: Buffer) => console.log('slow got', Date.now() - started, JSON.stringify(d.toString('latin1').slice(0, 30))));
    const trickle = setInterval(() => {
      if (slow.destroyed || sent >= head.length - 1) return;
      slow.write(head.subarray(sent, sent + 1));
      sent++;
    }, 100);
    // Meanwhile, well-formed requests on other connections are answered.
    const answers: Buffer[] = [];
    for (let i = 0; i < 5; i++) {
      const ajpEnd = (b: Buffer) => b.includes(Buffer.from([0x41, 0x42, 0x00, 0x02, 0x05]));
      answers.push(await within(exchange(srv.port, heads[protocol]!(), protocol !== 'ajp', protocol === 'ajp' ? ajpEnd : undefined), 5000, `request ${i}`));
      await sleep(100);
    }
    await within(closed, 8000, 'the slow connection to be closed');
    clearInterval(trickle);
    for (const a of answers) expect(a.toString('latin1')).toContain('hello\n');
    // Cut off after about a second of not finishing its head (the sweeper ticks every 250 ms),
    // long before it could have sent it all.
    expect(closedAt - started).toBeGreaterThanOrEqual(900);
    expect(closedAt - started).toBeLessThan(4000);
    expect(sent).toBeLessThan(head.length - 1);
    // The log line is written asynchronously: give it a moment (bounded).
    for (let i = 0; i < 40 && !/TSGI_HEADER_TIMEOUT/.test(srv.stderrLines().join('\n')); i++) await sleep(50);
    expect(srv.stderrLines().join('\n')).toMatch(/TSGI_HEADER_TIMEOUT/);
  });
});
