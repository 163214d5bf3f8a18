// PATH_INFO edge cases through a real nginx (the CVE-2019-11043 set-up): a PHP-style location
// that splits the path with `fastcgi_split_path_info ^(.+?\.php)(/.*)$;` and passes
// `$fastcgi_path_info` as PATH_INFO, with no check that the script exists, which is the
// configuration the PHP-FPM exploit (phuip-fpizdam) needs. A %0a in the URL makes the regex fail,
// so nginx sends an empty PATH_INFO and the whole path, newline included, as SCRIPT_NAME. Over
// FastCGI (fastcgi_pass to a Unix socket) and SCGI (the same split done with `if ($uri ~ ...)`,
// since nginx has no scgi_split_path_info). For every URL: the answer is the app's, its environ
// is what the table says and the same when the request is sent again, the next request is
// served, tsgi is still running, its log holds no error and stays one JSON record per line (it
// runs with --access-log, so the odd paths are logged). The unit-level table is in
// test/helpers/pathinfo-cases.ts; docs/security.md sums up both.

import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePorts, stopAllDaemons } from './helpers/daemon.js';
import { makeTempDir, removeTempDirs } from './helpers/fs-access.js';
import { get } from './helpers/http-stream.js';
import { startNginx, type WebServer } from './helpers/nginx.js';
import { describeWith, Requirements } from './helpers/require.js';
import { startTsgi, type Tsgi } from './helpers/tsgi.js';

const APP = 'test/fixtures/apps/environ-echo.mjs';

afterAll(async () => {
  await stopAllDaemons();
  removeTempDirs();
});

interface UrlCase {
  name: string;
  /** The request target as the client sends it (percent-escapes as they are on the wire). */
  target: string;
  headers?: Record<string, string>;
  /** nginx's answer when it refuses the request itself (tsgi never sees it). */
  nginxStatus?: number;
  /** What the app sees (the same over FastCGI and SCGI). */
  expect?: { SCRIPT_NAME: string; PATH_INFO: string; QUERY_STRING?: string };
}

const CVE_NAME = '/index.php/PHP\nis_the_shittiest_lang.php';
// The exploit tries query strings of 1500 to 1950 bytes to move PHP-FPM's path buffers about.
const cveCases: UrlCase[] = [1500, 1650, 1750, 1800, 1950].map((n) => ({
  name: `the CVE-2019-11043 request with a ${n}-byte query: PATH_INFO "", SCRIPT_NAME the path with its newline`,
  target: `/index.php/PHP%0Ais_the_shittiest_lang.php?${'Q'.repeat(n)}`,
  headers: { 'D-Pisos': '8=D', 'Ebut': 'mamku tvoyu' },
  expect: { SCRIPT_NAME: CVE_NAME, PATH_INFO: '', QUERY_STRING: 'Q'.repeat(n) },
}));

const CASES: UrlCase[] = [
  {
    name: 'a plain split: SCRIPT_NAME /index.php, PATH_INFO the rest',
    target: '/index.php/foo/bar?x=1',
    expect: { SCRIPT_NAME: '/index.php', PATH_INFO: '/foo/bar', QUERY_STRING: 'x=1' },
  },
  {
    name: 'the script alone (the split fails): PATH_INFO ""',
    target: '/index.php',
    expect: { SCRIPT_NAME: '/index.php', PATH_INFO: '' },
  },
  {
    name: 'the script and "/": PATH_INFO "/"',
    target: '/index.php/',
    expect: { SCRIPT_NAME: '/index.php', PATH_INFO: '/' },
  },
  {
    name: '"/" alone (location /): SCRIPT_NAME "", PATH_INFO "/"',
    target: '/',
    expect: { SCRIPT_NAME: '', PATH_INFO: '/' },
  },
  ...cveCases,
  {
    name: 'a %0a inside the path info: the split fails, PATH_INFO ""',
    target: '/index.php/a%0Ab',
    expect: { SCRIPT_NAME: '/index.php/a\nb', PATH_INFO: '' },
  },
  {
    name: 'a %0a at the very end: PCRE\'s $ matches before it, so the split works and the newline is lost',
    target: '/index.php/a%0A',
    expect: { SCRIPT_NAME: '/index.php', PATH_INFO: '/a' },
  },
  {
    name: 'a %0a before ".php": the split fails, PATH_INFO ""',
    target: '/x%0Aindex.php/y',
    expect: { SCRIPT_NAME: '/x\nindex.php/y', PATH_INFO: '' },
  },
  {
    name: 'a raw "%250a" (an escaped %): decoded once by nginx to "%0a", kept as such',
    target: '/index.php/a%250Ab',
    expect: { SCRIPT_NAME: '/index.php', PATH_INFO: '/a%0Ab' },
  },
  {
    name: 'invalid UTF-8 in the path info: one char per byte',
    target: '/index.php/%FF%FE/%C3%28/%ED%A0%80',
    expect: { SCRIPT_NAME: '/index.php', PATH_INFO: '/\xff\xfe/\xc3(/\xed\xa0\x80' },
  },
  {
    name: 'a path info of 6 000 bytes',
    target: `/index.php/${'p'.repeat(6000)}`,
    expect: { SCRIPT_NAME: '/index.php', PATH_INFO: `/${'p'.repeat(6000)}` },
  },
  {
    name: 'a %00 in the path: refused by nginx itself (400), never sent on',
    target: '/index.php/a%00b',
    nginxStatus: 400,
  },
];

const req = new Requirements().binary('nginx', 'apt-get install nginx-light');

describeWith('PATH_INFO edge cases through nginx (CVE-2019-11043 set-up)', req, () => {
  const ctx = {} as { dir: string; fcgi: Tsgi; scgi: Tsgi; nginx: WebServer; ports: { fcgi: number; scgi: number } };

  beforeAll(async () => {
    ctx.dir = makeTempDir('pathinfo-nginx');
    ctx.fcgi = await startTsgi({ app: APP, protocol: 'fastcgi', socket: path.join(ctx.dir, 'tsgi.sock'), args: ['--access-log'] });
    ctx.scgi = await startTsgi({ app: APP, protocol: 'scgi', args: ['--access-log'] });
    const [fcgi, scgi] = await freePorts(2);
    ctx.ports = { fcgi: fcgi!, scgi: scgi! };
    const sock = (ctx.fcgi.endpoint as { path: string }).path;
    const fcgiParams = `
      fastcgi_param REQUEST_METHOD  $request_method;
      fastcgi_param QUERY_STRING    $query_string;
      fastcgi_param CONTENT_TYPE    $content_type;
      fastcgi_param CONTENT_LENGTH  $content_length;
      fastcgi_param REQUEST_URI     $request_uri;
      fastcgi_param SERVER_PROTOCOL $server_protocol;
      fastcgi_param SERVER_NAME     $host;
      fastcgi_param SERVER_PORT     $server_port;
      fastcgi_param REMOTE_ADDR     $remote_addr;`;
    const scgiParams = `
      scgi_param REQUEST_METHOD  $request_method;
      scgi_param QUERY_STRING    $query_string;
      scgi_param CONTENT_TYPE    $content_type;
      scgi_param REQUEST_URI     $request_uri;
      scgi_param SERVER_PROTOCOL $server_protocol;
      scgi_param SERVER_NAME     $host;
      scgi_param SERVER_PORT     $server_port;
      scgi_param REMOTE_ADDR     $remote_addr;
      scgi_param SCGI            1;`;
    const http = `
  root ${ctx.dir}/htdocs;
  # FastCGI: the configuration of CVE-2019-11043 (PHP-FPM's advisory and phuip-fpizdam's README):
  # the split regex, PATH_INFO from it, and no try_files or -f check in front.
  server {
    listen 127.0.0.1:${ctx.ports.fcgi};
    location ~ [^/]\\.php(/|$) {
      fastcgi_split_path_info ^(.+?\\.php)(/.*)$;${fcgiParams}
      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
      fastcgi_param SCRIPT_NAME     $fastcgi_script_name;
      fastcgi_param PATH_INFO       $fastcgi_path_info;
      fastcgi_pass unix:${sock};
    }
    location / {${fcgiParams}
      fastcgi_param SCRIPT_NAME "";
      fastcgi_param PATH_INFO $uri;
      fastcgi_pass unix:${sock};
    }
  }
  # SCGI: the same split by hand (nginx has no scgi_split_path_info), with named captures: nginx
  # would re-escape numbered ones ($1, $2) copied by "set".
  server {
    listen 127.0.0.1:${ctx.ports.scgi};
    location ~ [^/]\\.php(/|$) {
      set $script_name $uri;
      set $path_info "";
      if ($uri ~ "^(?<split_script>.+?\\.php)(?<split_path>/.*)$") {
        set $script_name $split_script;
        set $path_info $split_path;
      }${scgiParams}
      scgi_param SCRIPT_FILENAME $document_root$script_name;
      scgi_param SCRIPT_NAME     $script_name;
      scgi_param PATH_INFO       $path_info;
      scgi_pass 127.0.0.1:${(ctx.scgi.endpoint as { port: number }).port};
    }
    location / {${scgiParams}
      scgi_param SCRIPT_NAME "";
      scgi_param PATH_INFO $uri;
      scgi_pass 127.0.0.1:${(ctx.scgi.endpoint as { port: number }).port};
    }
  }
`;
    fs.mkdirSync(path.join(ctx.dir, 'htdocs'), { recursive: true });
    ctx.nginx = await startNginx({ dir: ctx.dir, http, ports: Object.values(ctx.ports) });
  });

  afterAll(async () => {
    await ctx.nginx?.daemon.stop();
    for (const t of [ctx.fcgi, ctx.scgi]) await t?.daemon.stop();
  });

  for (const protocol of ['fcgi', 'scgi'] as const) {
    const label = protocol === 'fcgi' ? 'FastCGI' : 'SCGI';
    for (const c of CASES) {
      it(`${label}: ${c.name}`, async () => {
        const tsgi = ctx[protocol];
        const url = `http://127.0.0.1:${ctx.ports[protocol]}${c.target}`;
        const send = () => get(url, { headers: c.headers, ms: 10_000 });
        const first = await send();
        const second = await send();
        const want = { status: c.nginxStatus ?? 200, expect: c.expect };
        expect(first.status, first.body.toString('latin1').slice(0, 300)).toBe(want.status);
        expect(second.status).toBe(first.status);
        if (want.status === 200) {
          // The answer is the app's environ (environ-echo.mjs), as JSON.
          const env = JSON.parse(first.body.toString('utf8')) as Record<string, string>;
          const again = JSON.parse(second.body.toString('utf8')) as Record<string, string>;
          expect(env['tsgi.protocol']).toBe(protocol === 'fcgi' ? 'fastcgi' : 'scgi');
          expect({ SCRIPT_NAME: env.SCRIPT_NAME, PATH_INFO: env.PATH_INFO, ...(want.expect?.QUERY_STRING === undefined ? {} : { QUERY_STRING: env.QUERY_STRING }) }).toEqual(want.expect);
          expect(env.REQUEST_URI).toBe(c.target);
          // Deterministic: the same request again gives the same environ (but the per-request id).
          const { 'tsgi.request_id': _a, ...a } = env;
          const { 'tsgi.request_id': _b, ...b } = again;
          expect(b).toEqual(a);
        }
        // The next request is served, by the same process.
        const next = await get(`http://127.0.0.1:${ctx.ports[protocol]}/index.php/next`, { ms: 10_000 });
        expect(next.status).toBe(200);
        expect(JSON.parse(next.body.toString('utf8'))).toMatchObject({ SCRIPT_NAME: '/index.php', PATH_INFO: '/next' });
        expect(tsgi.daemon.hasExited()).toBe(false);
        // The log: one JSON record per line, none at error level or worse.
        const lines = tsgi.daemon.output().split('\n').filter((l) => l !== '');
        for (const l of lines) expect(() => JSON.parse(l), `not a JSON line: ${JSON.stringify(l.slice(0, 200))}`).not.toThrow();
        const errors = tsgi.logRecords().filter((r) => typeof r.level === 'number' && r.level >= 50);
        expect(errors, JSON.stringify(errors.slice(0, 3))).toEqual([]);
      });
    }
  }
});
