// PATH_INFO edge cases (CVE-2019-11043 class) on the wire: the table of
// test/helpers/pathinfo-cases.ts sent as FastCGI PARAMS and as SCGI netstrings to servers started
// in this process, each case twice on fresh connections. The app sees exactly the table's
// SCRIPT_NAME and PATH_INFO, both answers are the same (the environ is deterministic), nothing is
// logged at error level, the access log stays one JSON line per request (a newline in the path
// cannot split or forge a line), and the server answers a plain request after every case.
// What cannot be said on a wire (a NUL in an SCGI value, a head past the limit) is checked too.

import { Buffer } from 'node:buffer';
import net from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProtocolServer } from '../../src/net/protocols.js';
import { createFastcgiServer } from '../../src/protocols/fastcgi/server.js';
import { createScgiServer } from '../../src/protocols/scgi/server.js';
import { Gateway } from '../../src/runner/gateway.js';
import type { App, Environ } from '../../src/types.js';
import { exchange, scgiRequest } from '../servers/helpers/scgi-wire.js';
import { FcgiClient, within } from '../helpers/fcgi-client.js';
import { PATH_INFO_CASES } from '../helpers/pathinfo-cases.js';

/** Every string in the environ except the per-request counter, as JSON. */
const echoApp: App = (environ: Environ, startResponse) => {
  const vars: Record<string, string> = {};
  for (const [k, v] of Object.entries(environ)) if (typeof v === 'string' && k !== 'tsgi.request_id') vars[k] = v;
  startResponse('200 OK', [['Content-Type', 'application/json']]);
  return [JSON.stringify(vars)];
};

const SERVER: Array<[string, string]> = [
  ['REQUEST_METHOD', 'GET'],
  ['SERVER_NAME', 'localhost'],
  ['SERVER_PORT', '80'],
  ['SERVER_PROTOCOL', 'HTTP/1.1'],
];

interface Served {
  target: { port: number };
  /** Every log line as pino wrote it (one string per record). */
  raw: string[];
  close(): Promise<void>;
}

async function serve(protocol: 'fastcgi' | 'scgi'): Promise<Served> {
  const raw: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void raw.push(s) });
  const gw = new Gateway({ app: echoApp, log, protocol, accessLog: true });
  const ps: ProtocolServer = protocol === 'fastcgi' ? createFastcgiServer(gw, {}) : createScgiServer(gw);
  const sockets = new Set<net.Socket>();
  ps.server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    ps.server.once('error', reject);
    ps.server.listen({ host: '127.0.0.1', port: 0 }, resolve);
  });
  const target = { port: (ps.server.address() as net.AddressInfo).port };
  return {
    target,
    raw,
    async close() {
      for (const s of sockets) s.destroy();
      await within(new Promise<void>((r) => ps.server.close(() => r())), 5000, 'server close').catch(() => {});
    },
  };
}

interface Answer {
  status: number;
  body: string;
}

async function fcgiGet(target: { port: number }, vars: Array<[string, string]>): Promise<Answer> {
  const c = await FcgiClient.connect(target);
  try {
    await c.request(1, { params: [...SERVER, ...vars] });
    const got = await c.waitEnd(1, 5000);
    expect(got.end).toEqual({ appStatus: 0, protocolStatus: 0 });
    const r = got.response();
    return { status: r.status, body: r.body.toString('utf8') };
  } finally {
    c.destroy();
  }
}

async function scgiGet(target: { port: number }, vars: Array<[string, string]> | Buffer): Promise<Answer & { end: string }> {
  const x = await exchange(target, { send: Buffer.isBuffer(vars) ? vars : scgiRequest([...SERVER, ...vars]), timeoutMs: 5000 });
  expect(x.head, x.bytes.subarray(0, 300).toString('latin1')).not.toBeNull();
  return { status: x.head!.status, body: x.body.toString('utf8'), end: x.end };
}

/** The log lines are whole JSON records, one line each; none at error level or above. */
function expectCleanLog(raw: string[]): Array<Record<string, unknown>> {
  return raw.map((s) => {
    expect(s.endsWith('\n') && s.indexOf('\n') === s.length - 1, `one line per record: ${JSON.stringify(s.slice(0, 200))}`).toBe(true);
    const rec = JSON.parse(s) as Record<string, unknown>;
    expect(rec.level as number, s.slice(0, 300)).toBeLessThan(50);
    return rec;
  });
}

for (const protocol of ['fastcgi', 'scgi'] as const) {
  describe(`PATH_INFO edge cases over ${protocol === 'fastcgi' ? 'FastCGI' : 'SCGI'}`, () => {
    let srv: Served;
    const get = (vars: Array<[string, string]>) => (protocol === 'fastcgi' ? fcgiGet(srv.target, vars) : scgiGet(srv.target, vars));

    beforeAll(async () => {
      delete process.env.FCGI_WEB_SERVER_ADDRS;
      srv = await serve(protocol);
    });
    afterAll(() => srv?.close());

    for (const c of PATH_INFO_CASES.filter((x) => protocol === 'fastcgi' || !x.fastcgiOnly)) {
      it(c.name, async () => {
        srv.raw.length = 0;
        const first = await get(c.vars);
        const second = await get(c.vars);
        expect(first.status, first.body.slice(0, 300)).toBe(200);
        const env = JSON.parse(first.body) as Record<string, string>;
        expect({ SCRIPT_NAME: env.SCRIPT_NAME, PATH_INFO: env.PATH_INFO }).toEqual(c.expect);
        for (const [k, v] of c.vars) expect(env[k], k).toBe(v);
        // Deterministic: the same request twice, the same environ.
        expect(second).toEqual(first);
        // Served after it.
        const next = JSON.parse((await get([['SCRIPT_NAME', ''], ['PATH_INFO', '/next']])).body) as Record<string, string>;
        expect(next.PATH_INFO).toBe('/next');
        // One access-log line per request, the path as the app saw it (a newline stays inside the
        // JSON string: the line cannot be split or forged).
        const access = expectCleanLog(srv.raw).filter((r) => r.msg === 'request');
        expect(access.map((r) => r.path)).toEqual([c.expect.SCRIPT_NAME + c.expect.PATH_INFO, c.expect.SCRIPT_NAME + c.expect.PATH_INFO, '/next']);
      });
    }

    it('a PATH_INFO past --max-header-size (200 000 bytes): 431, and the next request is served', async () => {
      const long = `/${'b'.repeat(200_000)}`;
      const r = await get([['SCRIPT_NAME', ''], ['PATH_INFO', long]]);
      expect(r.status).toBe(431);
      expect(r.body).not.toContain('bbbb');
      const next = JSON.parse((await get([['SCRIPT_NAME', ''], ['PATH_INFO', '/next']])).body) as Record<string, string>;
      expect(next.PATH_INFO).toBe('/next');
    });

    if (protocol === 'scgi') {
      it('Apache mod_proxy_scgi shape (SCRIPT_FILENAME proxy:scgi://..., no PATH_INFO) with a %0a: mount found, newline kept', async () => {
        const env = JSON.parse(
          (
            await get([
              ['SCRIPT_NAME', '/app/x\ny'],
              ['SCRIPT_FILENAME', 'proxy:scgi://127.0.0.1:4000/x%0Ay'],
              ['REQUEST_URI', '/app/x%0Ay'],
            ])
          ).body,
        ) as Record<string, string>;
        expect({ SCRIPT_NAME: env.SCRIPT_NAME, PATH_INFO: env.PATH_INFO }).toEqual({ SCRIPT_NAME: '/app', PATH_INFO: '/x\ny' });
      });

      it('Apache mod_proxy_scgi shape where the proxied path is not a suffix of SCRIPT_NAME: nothing moved', async () => {
        const vars: Array<[string, string]> = [
          ['SCRIPT_NAME', '/app/x'],
          ['SCRIPT_FILENAME', 'proxy:scgi://127.0.0.1:4000/zzz'],
          ['REQUEST_URI', '/app/x'],
        ];
        const first = await get(vars);
        expect(await get(vars)).toEqual(first);
        const env = JSON.parse(first.body) as Record<string, string>;
        // SCRIPT_NAME as sent; PATH_INFO from REQUEST_URI, SCRIPT_NAME stripped: empty.
        expect({ SCRIPT_NAME: env.SCRIPT_NAME, PATH_INFO: env.PATH_INFO }).toEqual({ SCRIPT_NAME: '/app/x', PATH_INFO: '' });
      });

      // A NUL ends an SCGI value (spec: name NUL value NUL): a front end cannot send one inside
      // PATH_INFO. What a NUL there does is fixed by the pairs that follow it.
      const rawHead = (pairs: string) => Buffer.from(`${pairs.length}:${pairs},`, 'latin1');
      it('a NUL inside PATH_INFO that leaves a name without a value: 400, the next request is served', async () => {
        const head = rawHead('CONTENT_LENGTH\x000\x00SCGI\x001\x00PATH_INFO\x00/a\x00b\x00REQUEST_METHOD\x00GET\x00');
        const first = await scgiGet(srv.target, head);
        expect(first.status).toBe(400);
        expect(await scgiGet(srv.target, head)).toEqual(first);
        const next = JSON.parse((await get([['SCRIPT_NAME', ''], ['PATH_INFO', '/next']])).body) as Record<string, string>;
        expect(next.PATH_INFO).toBe('/next');
      });
      it('a NUL inside PATH_INFO that splits it into pairs: PATH_INFO ends at the NUL, the rest is one more variable', async () => {
        const head = rawHead('CONTENT_LENGTH\x000\x00SCGI\x001\x00PATH_INFO\x00/a\x00b\x00c\x00');
        const first = await scgiGet(srv.target, head);
        expect(first.status).toBe(200);
        expect(await scgiGet(srv.target, head)).toEqual(first);
        const env = JSON.parse(first.body) as Record<string, string>;
        expect(env.PATH_INFO).toBe('/a');
        expect(env.b).toBe('c');
      });
    }
  });
}
