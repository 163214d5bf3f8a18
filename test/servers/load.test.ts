// A thousand client connections at once through a real front end to one bin/tsgi process: nginx
// to tsgi over FastCGI (fastcgi_pass to a Unix socket) and over SCGI (scgi_pass over TCP), and
// Apache httpd's mod_proxy_ajp to tsgi over AJP13. Every request is distinct (its id in the path,
// the query and a header; every 40th a POST with a body of its own) and every answer is checked
// byte for byte (test/fixtures/apps/load.mjs echoes the id, the body's length and sha256, then a
// payload derived from the id). The app holds each answer until all 1,000 requests are in it at
// the same time (bounded), so "1,000 of 1,000 held" shows the front end had them all under way
// to tsgi at once; the client also checks that its 1,000 sockets were all connected before the
// first byte of any answer. Then tsgi must answer one more request and have logged no error.
//
// Front-end sizing for 1,000 at once (generated configs): nginx worker_connections 4096 (each
// request holds a client and an upstream connection), worker_rlimit_nofile 4096, listen
// backlog=4096; Apache event MPM with 1,280 worker threads (10 x 128) started up front,
// ListenBacklog 4096; net.core.somaxconn (the kernel's cap on every backlog) at least 1,000.
// The open-file limit of this process (inherited by everything it starts) is raised to 4096 with
// prlimit when lower (node itself already raises the soft limit to the hard one).

import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { apacheBinary, apacheCompiledIn, apacheModuleCandidates, startApache } from './helpers/apache.js';
import { freePorts, stopAllDaemons, within } from './helpers/daemon.js';
import { currentUser, isRoot, lookupUser, makeTempDir, removeTempDirs } from './helpers/fs-access.js';
import { startNginx, type WebServer } from './helpers/nginx.js';
import { describeWith, Requirements, which } from './helpers/require.js';
import { startTsgi, type Tsgi } from './helpers/tsgi.js';

const APP = 'test/fixtures/apps/load.mjs';
const N = 1000;
/** Every POST_EVERY-th request is a POST with a body of its own. */
const POST_EVERY = 40;
/** How long the app holds an answer waiting for all N to be in it (ms). */
const HOLD_MS = 15_000;
/** Bound on each request, from the client's side (ms). */
const REQUEST_MS = 30_000;
/** Open files each process needs at most: the nginx worker holds about 2,000 (a client and an
 * upstream connection per request), this process and tsgi about 1,000 each. */
const NOFILE = 4096;

afterAll(async () => {
  // Safety net: each suite stops its own processes; anything left is stopped by pid here.
  await stopAllDaemons();
  removeTempDirs();
});

// ---------------------------------------------------------------------------------------------
// Open files: 1,000 client sockets here, 2,000 in the nginx worker, 1,000 in tsgi.

/** The soft and hard RLIMIT_NOFILE of this process, from /proc/self/limits. */
function nofile(): { soft: number; hard: number } | undefined {
  try {
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    if (!m) return undefined;
    const n = (s: string) => (s === 'unlimited' ? Infinity : Number(s));
    return { soft: n(m[1]!), hard: n(m[2]!) };
  } catch {
    return undefined;
  }
}

/** Raises this process's open-file limit to `min` (prlimit on our own pid) when it is lower:
 * undefined when fine, else why not. Children started afterwards inherit it. */
function ensureNofile(min: number): string | undefined {
  const before = nofile();
  if (!before) return 'cannot read /proc/self/limits to check the open-file limit';
  if (before.soft >= min) return undefined;
  if (!which('prlimit')) return `ulimit -n is ${before.soft} (< ${min}) and prlimit is not installed (util-linux) to raise it`;
  const hard = before.hard >= min ? before.hard : min;
  const r = spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${min}:${hard === Infinity ? 'unlimited' : hard}`], { encoding: 'utf8', timeout: 10_000 });
  const after = nofile();
  if (!after || after.soft < min) return `ulimit -n is ${before.soft} (< ${min}) and prlimit could not raise it: ${r.stderr || r.error?.message || `exit ${r.status}`}`;
  process.stderr.write(`[load] open-file limit raised from ${before.soft} to ${after.soft} (prlimit)\n`);
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// The thousand requests, and the check of each answer.

interface Spec {
  id: number;
  method: 'GET' | 'POST';
  path: string;
  query: string;
  body?: Buffer;
}

function specs(): Spec[] {
  return Array.from({ length: N }, (_, id) => {
    const query = `id=${id}&hold=${N}&holdMs=${HOLD_MS}`;
    const post = id % POST_EVERY === 7;
    // POST bodies from 1 KiB to 64 KiB, random, each its own.
    return { id, method: post ? 'POST' : 'GET', path: `/load/${id}`, query, body: post ? randomBytes(1024 + ((id * 7919) % (63 * 1024))) : undefined };
  });
}

const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

/** The payload load.mjs sends after its JSON line (same formula). */
const payload = (id: number): string => sha256(`tsgi-load:${id}`).repeat(1 + (id % 64)) + '\n';

/** The whole answer load.mjs gives to `s` when the hold was reached. */
function expected(s: Spec): string {
  const body = s.body ?? Buffer.alloc(0);
  const line = JSON.stringify({
    id: String(s.id),
    header: String(s.id),
    method: s.method,
    pathInfo: s.path,
    query: s.query,
    length: body.length,
    sha256: sha256(body),
    held: true,
  });
  return `${line}\n${payload(s.id)}`;
}

interface Outcome {
  spec: Spec;
  status?: number;
  body?: string;
  error?: string;
  /** performance.now() when the socket connected, and when the first byte of the answer came. */
  connectedAt?: number;
  firstByteAt?: number;
}

function send(agent: http.Agent, port: number, s: Spec): Promise<Outcome> {
  const out: Outcome = { spec: s };
  let req: http.ClientRequest | undefined;
  const p = new Promise<Outcome>((resolve) => {
    req = http.request(
      {
        agent,
        host: '127.0.0.1',
        port,
        method: s.method,
        path: `${s.path}?${s.query}`,
        headers: { 'X-Load-Id': String(s.id), ...(s.body ? { 'Content-Type': 'application/octet-stream', 'Content-Length': String(s.body.length) } : {}) },
      },
      (res) => {
        out.status = res.statusCode;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => {
          out.firstByteAt ??= performance.now();
          chunks.push(c);
        });
        res.on('end', () => {
          out.body = Buffer.concat(chunks).toString('utf8');
          resolve(out);
        });
        res.on('error', (e) => {
          out.error = `response: ${e.message}`;
          resolve(out);
        });
      },
    );
    req.on('socket', (sock: net.Socket) => {
      if (!sock.connecting) out.connectedAt ??= performance.now();
      else sock.once('connect', () => (out.connectedAt ??= performance.now()));
    });
    req.on('error', (e) => {
      out.error = `request: ${e.message}`;
      resolve(out);
    });
    req.end(s.body);
  });
  return within(p, REQUEST_MS, `${s.method} ${s.path}`).catch((e: unknown) => {
    req?.destroy();
    return { ...out, error: (e as Error).message };
  });
}

/** Sends all N at once on N sockets of their own and checks every answer. */
async function thousandAtOnce(label: string, port: number, tsgi: Tsgi, diagnostics: () => string): Promise<void> {
  const all = specs();
  // One socket per request, all at once: no reuse (keepAlive off), no queueing in the agent.
  const agent = new http.Agent({ keepAlive: false, maxSockets: N, maxTotalSockets: N });
  const started = performance.now();
  const outcomes = await Promise.all(all.map((s) => send(agent, port, s)));
  const ms = performance.now() - started;
  agent.destroy();

  const wrong = outcomes.filter((o) => o.error !== undefined || o.status !== 200 || o.body !== expected(o.spec));
  const describeWrong = wrong
    .slice(0, 5)
    .map((o) => `#${o.spec.id} ${o.spec.method}: ${o.error ?? `status ${o.status}, body ${JSON.stringify((o.body ?? '').slice(0, 240))}`}`)
    .join('\n');
  const notHeld = outcomes.filter((o) => o.body?.includes('"held":false')).length;
  // What the wrong ones got: "502" x 379, "200 held false" x 621, ...
  const kinds: Record<string, number> = {};
  for (const o of wrong) {
    const k = o.error ?? (o.status === 200 && o.body?.includes('"held":false') ? '200 held false' : `status ${o.status}`);
    kinds[k] = (kinds[k] ?? 0) + 1;
  }
  console.log(
    `[load] ${label}: ${N - wrong.length}/${N} correct in ${Math.round(ms)} ms` +
      ` (${all.filter((s) => s.method === 'POST').length} POSTs; ${notHeld} answered without all ${N} in the app at once)`,
  );
  expect(wrong.length, `${wrong.length} of ${N} wrong (${JSON.stringify(kinds)}); first ones:\n${describeWrong}\n${wrong.length ? diagnostics().slice(-6000) : ''}`).toBe(0);

  // All N sockets were connected before the first byte of any answer came back.
  const lastConnect = Math.max(...outcomes.map((o) => o.connectedAt!));
  const firstByte = Math.min(...outcomes.map((o) => o.firstByteAt!));
  expect(lastConnect).toBeLessThan(firstByte);

  // tsgi still answers, and saw all N at once.
  const after = await send(new http.Agent({ keepAlive: false }), port, { id: N, method: 'GET', path: `/load/${N}`, query: `id=${N}` });
  expect(after.status, after.error).toBe(200);
  expect(after.body).toBe(`${JSON.stringify({ id: String(N), header: String(N), method: 'GET', pathInfo: `/load/${N}`, query: `id=${N}`, length: 0, sha256: sha256(''), held: false })}\n${payload(N)}`);
  expect(tsgi.daemon.hasExited()).toBe(false);
  const errors = tsgi.logRecords().filter((r) => typeof r.level === 'number' && r.level >= 50);
  expect(errors, JSON.stringify(errors.slice(0, 3))).toEqual([]);
}

/** Lines of a web server's error log matching `pattern`, from byte `from` on. */
function errorLines(file: string, pattern: RegExp, from = 0): string[] {
  let text = '';
  try {
    text = fs.readFileSync(file).subarray(from).toString('utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter((l) => pattern.test(l));
}

const fileSize = (file: string): number => {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
};

// =============================================================================================
// nginx: FastCGI over a Unix socket, SCGI over TCP

const nofileProblem = ensureNofile(NOFILE);
/** net.core.somaxconn caps every listen backlog (nginx's, Apache's, tsgi's): N must fit. */
function somaxconnProblem(): string | undefined {
  let v = 0;
  try {
    v = Number(fs.readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
  } catch {
    return 'cannot read /proc/sys/net/core/somaxconn';
  }
  return v >= N ? undefined : `net.core.somaxconn is ${v} (< ${N}): listen backlogs cannot hold ${N} connections (sysctl -w net.core.somaxconn=4096)`;
}
const backlogProblem = somaxconnProblem();
const nginxReq = new Requirements().binary('nginx', 'apt-get install nginx-light').check(nofileProblem).check(backlogProblem);

describeWith(`load: ${N} connections at once, nginx → tsgi FastCGI and SCGI`, nginxReq, () => {
  const ctx = {} as { dir: string; fcgi: Tsgi; scgi: Tsgi; nginx: WebServer; ports: { fcgi: number; scgi: number } };

  beforeAll(async () => {
    ctx.dir = makeTempDir('load-nginx');
    ctx.fcgi = await startTsgi({ app: APP, protocol: 'fastcgi', socket: path.join(ctx.dir, 'tsgi.sock') });
    ctx.scgi = await startTsgi({ app: APP, protocol: 'scgi' });
    const [fcgi, scgi] = await freePorts(2);
    ctx.ports = { fcgi: fcgi!, scgi: scgi! };
    const sock = (ctx.fcgi.endpoint as { path: string }).path;
    const scgiPort = (ctx.scgi.endpoint as { port: number }).port;
    const http = `
  # ${N} clients at once: a backlog that holds them all while the worker accepts.
  server {
    listen 127.0.0.1:${ctx.ports.fcgi} backlog=4096;
    location / {
      fastcgi_param REQUEST_METHOD  $request_method;
      fastcgi_param QUERY_STRING    $query_string;
      fastcgi_param CONTENT_TYPE    $content_type;
      fastcgi_param CONTENT_LENGTH  $content_length;
      fastcgi_param REQUEST_URI     $request_uri;
      fastcgi_param SERVER_PROTOCOL $server_protocol;
      fastcgi_param SERVER_NAME     $host;
      fastcgi_param SERVER_PORT     $server_port;
      fastcgi_param REMOTE_ADDR     $remote_addr;
      fastcgi_param SCRIPT_NAME     "";
      fastcgi_param PATH_INFO       $uri;
      fastcgi_pass unix:${sock};
    }
  }
  server {
    listen 127.0.0.1:${ctx.ports.scgi} backlog=4096;
    location / {
      scgi_param REQUEST_METHOD  $request_method;
      scgi_param QUERY_STRING    $query_string;
      scgi_param CONTENT_TYPE    $content_type;
      scgi_param REQUEST_URI     $request_uri;
      scgi_param SERVER_PROTOCOL $server_protocol;
      scgi_param SERVER_NAME     $host;
      scgi_param SERVER_PORT     $server_port;
      scgi_param REMOTE_ADDR     $remote_addr;
      scgi_param SCGI            1;
      scgi_param SCRIPT_NAME     "";
      scgi_param PATH_INFO       $uri;
      scgi_pass 127.0.0.1:${scgiPort};
    }
  }
`;
    ctx.nginx = await startNginx({ dir: ctx.dir, http, ports: Object.values(ctx.ports), workerConnections: 4096, workerRlimitNofile: NOFILE });
  });

  afterAll(async () => {
    await ctx.nginx?.daemon.stop();
    for (const t of [ctx.fcgi, ctx.scgi]) await t?.daemon.stop();
  });

  // nginx's error log lines at error level or worse since `from` (one log for both tests).
  const nginxErrors = (from: number) => errorLines(ctx.nginx.errorLog, /\[(error|crit|alert|emerg)\]/, from);

  it(`FastCGI (fastcgi_pass unix:): ${N} of ${N} answered correctly at once, then the next one`, async () => {
    const from = fileSize(ctx.nginx.errorLog);
    await thousandAtOnce('nginx → FastCGI (unix socket)', ctx.ports.fcgi, ctx.fcgi, () => `${ctx.fcgi.daemon.diagnostics()}\n${ctx.nginx.daemon.diagnostics()}`);
    expect(nginxErrors(from)).toEqual([]);
  });

  it(`SCGI (scgi_pass over TCP): ${N} of ${N} answered correctly at once, then the next one`, async () => {
    const from = fileSize(ctx.nginx.errorLog);
    await thousandAtOnce('nginx → SCGI (TCP)', ctx.ports.scgi, ctx.scgi, () => `${ctx.scgi.daemon.diagnostics()}\n${ctx.nginx.daemon.diagnostics()}`);
    expect(nginxErrors(from)).toEqual([]);
  });
});

// =============================================================================================
// Apache httpd mod_proxy_ajp

const apacheBin = apacheBinary();
const apacheReq = new Requirements().check(apacheBin ? undefined : 'apache2 (or httpd) not found on PATH (apt-get install apache2)').check(nofileProblem).check(backlogProblem);
if (apacheBin) {
  const compiled = apacheCompiledIn(apacheBin);
  for (const m of ['proxy', 'proxy_ajp', 'mpm_event', 'authz_core', 'unixd']) {
    if (!compiled.includes(`mod_${m}.c`)) apacheReq.file(`mod_${m}`, apacheModuleCandidates(m), 'apt-get install apache2');
  }
}
if (isRoot()) apacheReq.check(lookupUser('www-data') ? undefined : 'user www-data does not exist (Apache drops to it when started as root)');

describeWith(`load: ${N} connections at once, Apache httpd mod_proxy_ajp → tsgi AJP13`, apacheReq, () => {
  const ctx = {} as { dir: string; ajp: Tsgi; apache: WebServer; port: number };

  beforeAll(async () => {
    ctx.dir = makeTempDir('load-apache');
    ctx.ajp = await startTsgi({ app: APP, protocol: 'ajp' });
    [ctx.port] = (await freePorts(1)) as [number];
    const mpm = `# ${N} requests at once, each holding a worker thread while it waits for tsgi: 10 x 128
# threads, all started up front (no spawning under the burst) with more than MinSpareThreads to
# spare at the peak, and a listen backlog that holds every client while the listener accepts.
ListenBacklog 4096
<IfModule mpm_event_module>
  ServerLimit 10
  ThreadLimit 128
  ThreadsPerChild 128
  StartServers 10
  MaxRequestWorkers 1280
  MinSpareThreads 128
  MaxSpareThreads 1280
</IfModule>`;
    const body = `
# One connection to tsgi per request under way (the pool of each child holds ThreadsPerChild).
ProxyPass "/" "ajp://127.0.0.1:${(ctx.ajp.endpoint as { port: number }).port}/"
`;
    ctx.apache = await startApache({
      bin: apacheBin!,
      dir: ctx.dir,
      ports: [ctx.port],
      modules: ['proxy', 'proxy_ajp'],
      user: isRoot() ? lookupUser('www-data')! : currentUser(),
      body,
      mpm,
    });
  });

  afterAll(async () => {
    await ctx.apache?.daemon.stop();
    await ctx.ajp?.daemon.stop();
  });

  it(`AJP13 (ProxyPass ajp://): ${N} of ${N} answered correctly at once, then the next one`, async () => {
    await thousandAtOnce('Apache mod_proxy_ajp → AJP13', ctx.port, ctx.ajp, () => `${ctx.ajp.daemon.diagnostics()}\n${ctx.apache.daemon.diagnostics()}`);
    expect(errorLines(ctx.apache.errorLog, /:(error|crit|alert|emerg)\]/)).toEqual([]);
  });
});
