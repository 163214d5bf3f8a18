// Past one machine: several tsgi instances behind the front end's own load balancing, on loopback.
// nginx `upstream` with three `fastcgi_pass` servers and three `scgi_pass` servers; Apache
// mod_proxy_balancer with three AJP members and their routes (sticky sessions). Each instance
// answers with its name and pid, so the tests see the spread; killing one (SIGKILL, by pid) in
// the middle of a steady stream of GETs shows the front end failing over without losing one.
// Every process is stopped by pid in afterAll; every wait is bounded. docs/deployment.md shows
// the same configs.

import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apacheBinary, apacheCompiledIn, apacheModuleCandidates, startApache } from './helpers/apache.js';
import { sleep, stopAllDaemons, freePorts, within } from './helpers/daemon.js';
import { currentUser, isRoot, lookupUser, makeTempDir, removeTempDirs } from './helpers/fs-access.js';
import { get } from './helpers/http-stream.js';
import { startNginx, type WebServer } from './helpers/nginx.js';
import { describeWith, Requirements } from './helpers/require.js';
import { startTsgi, type Tsgi } from './helpers/tsgi.js';

const APP = 'test/fixtures/apps/prod-balanced.mjs';

afterAll(async () => {
  await stopAllDaemons();
  removeTempDirs();
});

interface Answer {
  instance: string;
  pid: number;
  session?: string;
  ajpRoute?: string | null;
}

/** `n` instances of the app over `protocol`, named by TSGI_ROUTE (`prefix`1, 2, 3). */
function startInstances(protocol: string, prefix: string, n = 3): Promise<Tsgi[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => startTsgi({ app: APP, protocol, env: { TSGI_ROUTE: `${prefix}${i + 1}` } })));
}

const portOf = (t: Tsgi) => (t.endpoint as { port: number }).port;

async function ask(url: string, headers?: Record<string, string>): Promise<Answer & { setCookie?: string[] }> {
  const r = await get(url, { headers });
  expect(r.status, r.body.toString()).toBe(200);
  return { ...(JSON.parse(r.body.toString()) as Answer), setCookie: r.headers['set-cookie'] };
}

/** Counts of answers per instance over `n` sequential requests. */
async function spread(url: string, n: number): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const a = await ask(url);
    seen.set(a.instance, (seen.get(a.instance) ?? 0) + 1);
  }
  return seen;
}

interface Timed {
  /** When the GET was sent and when it was answered. */
  sent: number;
  at: number;
  answer: Answer;
}

interface Failure {
  sent: number;
  at: number;
  what: string;
}

/** `concurrency` clients doing GETs one after the other, each on a fresh connection, until stopped. */
function steadyLoad(url: string, concurrency: number) {
  const ok: Timed[] = [];
  const failures: Failure[] = [];
  let stopped = false;
  const client = async () => {
    while (!stopped) {
      const sent = Date.now();
      try {
        const r = await get(url, { ms: 15_000 });
        if (r.status !== 200 || !r.complete) failures.push({ sent, at: Date.now(), what: `status ${r.status}: ${r.body.subarray(0, 120).toString()}` });
        else ok.push({ sent, at: Date.now(), answer: JSON.parse(r.body.toString()) as Answer });
      } catch (e) {
        failures.push({ sent, at: Date.now(), what: (e as Error).message });
      }
    }
  };
  const running = Promise.all(Array.from({ length: concurrency }, client));
  return {
    ok,
    failures,
    async stop() {
      stopped = true;
      await within(running, 20_000, 'the client loops to finish');
    },
  };
}

interface FailoverCase {
  url: string;
  /** The instances serving before the stop, the victim among them. */
  serving: Tsgi[];
  victim: Tsgi;
  /** SIGTERM: a graceful stop (a deploy); SIGKILL: a crash, requests in flight there die with it. */
  signal: 'SIGTERM' | 'SIGKILL';
  label: string;
  errorLog: string;
  /**
   * The front end does not resend a request that died in flight (Apache mod_proxy_ajp): those may
   * fail, and only those (sent before the kill). nginx resends an idempotent one to the next server.
   */
  inFlightLost?: boolean;
}

/**
 * Keeps GETs going on 6 clients, stops the victim (by pid) after a second, goes on for two more:
 * the victim answers nothing after it is gone, the others share the rest, and no GET fails
 * (or, with `inFlightLost`, only ones that were in flight at the victim when it died).
 */
async function failover(c: FailoverCase): Promise<void> {
  const load = steadyLoad(c.url, 6);
  await sleep(1000);
  const before = load.ok.length;
  await c.victim.daemon.stop(c.signal);
  const goneAt = Date.now();
  await sleep(2000);
  await load.stop();
  const after = load.ok.filter((t) => t.sent > goneAt);
  const count = (xs: Timed[]) => {
    const m = new Map<string, number>();
    for (const t of xs) m.set(t.answer.instance, (m.get(t.answer.instance) ?? 0) + 1);
    return JSON.stringify(Object.fromEntries([...m].sort()));
  };
  console.log(
    `[balancer] ${c.label}, ${c.signal} to ${routes.get(c.victim)} (pid ${c.victim.daemon.pid}): ${load.ok.length + load.failures.length} GETs, ` +
      `${load.failures.length} failed${load.failures.length ? ` (${load.failures.map((f) => f.what.split('\n')[0]).join('; ')})` : ''}; ` +
      `per instance before ${count(load.ok.slice(0, before))}, sent after it was gone ${count(after)}`,
  );
  const log = () => `front end's error log:\n${fs.readFileSync(c.errorLog, 'utf8').slice(-3000)}`;
  if (c.inFlightLost) {
    // In flight: sent before the victim was gone (its exit seen by the test).
    for (const f of load.failures) expect(f.sent, `${f.what}\n${log()}`).toBeLessThanOrEqual(goneAt);
    expect(load.failures.length).toBeLessThanOrEqual(6);
  } else {
    expect(load.failures.map((f) => f.what), log()).toEqual([]);
  }
  expect(before).toBeGreaterThan(20);
  expect(after.length).toBeGreaterThan(20);
  expect(new Set(load.ok.slice(0, before).map((t) => t.answer.instance)).size).toBe(c.serving.length);
  expect(after.some((t) => t.answer.instance === routes.get(c.victim))).toBe(false);
  expect(new Set(after.map((t) => t.answer.instance)).size).toBe(c.serving.length - 1);
}

/** The route (TSGI_ROUTE) each instance was started with. */
const routes = new Map<Tsgi, string>();

function named(ts: Tsgi[], prefix: string): Tsgi[] {
  ts.forEach((t, i) => routes.set(t, `${prefix}${i + 1}`));
  return ts;
}

// ---------------------------------------------------------------------------------------------

const nginxReq = new Requirements().binary('nginx', 'apt-get install nginx-light');

/** What nginx sends to tsgi (docs/fastcgi.md, docs/scgi.md). */
const FCGI_PARAMS = `fastcgi_param REQUEST_METHOD    $request_method;
    fastcgi_param QUERY_STRING      $query_string;
    fastcgi_param CONTENT_TYPE      $content_type;
    fastcgi_param CONTENT_LENGTH    $content_length;
    fastcgi_param REQUEST_URI       $request_uri;
    fastcgi_param SERVER_PROTOCOL   $server_protocol;
    fastcgi_param SERVER_NAME       $host;
    fastcgi_param SERVER_PORT       $server_port;
    fastcgi_param REMOTE_ADDR       $remote_addr;
    fastcgi_param SCRIPT_NAME       "";
    fastcgi_param PATH_INFO         $uri;`;
const SCGI_PARAMS = `scgi_param REQUEST_METHOD    $request_method;
    scgi_param QUERY_STRING      $query_string;
    scgi_param CONTENT_TYPE      $content_type;
    scgi_param REQUEST_URI       $request_uri;
    scgi_param SERVER_PROTOCOL   $server_protocol;
    scgi_param SERVER_NAME       $host;
    scgi_param SERVER_PORT       $server_port;
    scgi_param REMOTE_ADDR       $remote_addr;
    scgi_param SCGI              1;
    scgi_param SCRIPT_NAME       "";
    scgi_param PATH_INFO         $uri;`;

/** The nginx config of the test (and of docs/deployment.md): two upstreams of three servers. */
export function nginxBalancerConfig(fcgi: number[], scgi: number[], ports: { fcgi: number; scgi: number }): string {
  const servers = (ps: number[]) => ps.map((p) => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=10s;`).join('\n');
  return `
  upstream tsgi_fastcgi {
${servers(fcgi)}
    keepalive 16;
  }
  upstream tsgi_scgi {
${servers(scgi)}
  }
  server {
    listen 127.0.0.1:${ports.fcgi};
    location / {
    ${FCGI_PARAMS}
      fastcgi_keep_conn on;
      # The default, spelled out: a request that fails on one server (refused, reset before the
      # response head) is passed to the next; never a non-idempotent one (POST) once sent.
      fastcgi_next_upstream error timeout;
      fastcgi_pass tsgi_fastcgi;
    }
  }
  server {
    listen 127.0.0.1:${ports.scgi};
    location / {
    ${SCGI_PARAMS}
      scgi_next_upstream error timeout;
      scgi_pass tsgi_scgi;
    }
  }
`;
}

describeWith('nginx upstream: three tsgi instances over FastCGI, three over SCGI', nginxReq, () => {
  const ctx = {} as { fcgi: Tsgi[]; scgi: Tsgi[]; nginx: WebServer; ports: { fcgi: number; scgi: number } };

  beforeAll(async () => {
    const dir = makeTempDir('balancer-nginx');
    [ctx.fcgi, ctx.scgi] = await Promise.all([startInstances('fastcgi', 'f'), startInstances('scgi', 's')]);
    named(ctx.fcgi, 'f');
    named(ctx.scgi, 's');
    const [fcgi, scgi] = await freePorts(2);
    ctx.ports = { fcgi: fcgi!, scgi: scgi! };
    ctx.nginx = await startNginx({ dir, http: nginxBalancerConfig(ctx.fcgi.map(portOf), ctx.scgi.map(portOf), ctx.ports), ports: [fcgi!, scgi!] });
  });

  afterAll(async () => {
    await ctx.nginx?.daemon.stop();
    for (const t of [...(ctx.fcgi ?? []), ...(ctx.scgi ?? [])]) await t.daemon.stop();
  });

  for (const proto of ['fcgi', 'scgi'] as const) {
    const label = proto === 'fcgi' ? 'fastcgi_pass' : 'scgi_pass';
    const url = (p: string) => `http://127.0.0.1:${ctx.ports[proto]}${p}`;
    describe(label, () => {
      it('spreads requests over the three instances (round robin), each its own process', async () => {
        const seen = await spread(url('/who'), 30);
        console.log(`[balancer] nginx ${label}: 30 requests, per instance ${JSON.stringify(Object.fromEntries([...seen].sort()))}`);
        expect([...seen.keys()].sort()).toEqual(proto === 'fcgi' ? ['f1', 'f2', 'f3'] : ['s1', 's2', 's3']);
        for (const [, n] of seen) expect(n).toBeGreaterThanOrEqual(5);
        const pids = new Set<number>();
        for (let i = 0; i < 9; i++) pids.add((await ask(url('/who'))).pid);
        expect(pids).toEqual(new Set(ctx[proto].map((t) => t.daemon.pid)));
      });

      it('one instance stopped (SIGTERM) in the middle of a steady stream of GETs: nothing is lost', async () => {
        const [a, b, c] = ctx[proto];
        await failover({ url: url('/who?ms=20'), serving: [a!, b!, c!], victim: b!, signal: 'SIGTERM', label: `nginx ${label}`, errorLog: ctx.nginx.errorLog });
      });

      it('another one killed (SIGKILL) mid-request: nginx passes the GETs it had in flight to the next server, none is lost', async () => {
        const [a, , c] = ctx[proto];
        await failover({ url: url('/who?ms=20'), serving: [a!, c!], victim: c!, signal: 'SIGKILL', label: `nginx ${label}`, errorLog: ctx.nginx.errorLog });
        // nginx's error log names what it saw of the dead server before passing the request on.
        expect(fs.readFileSync(ctx.nginx.errorLog, 'utf8')).toMatch(/Connection refused|upstream prematurely closed|Connection reset by peer/);
      });
    });
  }
});

// ---------------------------------------------------------------------------------------------

const apacheBin = apacheBinary();
const APACHE_MODULES = ['proxy', 'proxy_ajp', 'proxy_balancer', 'lbmethod_byrequests', 'slotmem_shm'];
const apacheReq = new Requirements().check(apacheBin ? undefined : 'apache2 (or httpd) not found on PATH (apt-get install apache2)');
if (apacheBin) {
  const compiled = apacheCompiledIn(apacheBin);
  for (const m of [...APACHE_MODULES, 'mpm_event', 'authz_core', 'unixd']) {
    if (!compiled.includes(`mod_${m}.c`)) apacheReq.file(`mod_${m}`, apacheModuleCandidates(m), 'apt-get install apache2');
  }
}
if (isRoot()) apacheReq.check(lookupUser('www-data') ? undefined : 'user www-data does not exist (Apache drops to it when started as root)');

/** The Apache config of the test (and of docs/deployment.md): a balancer of three AJP members with routes. */
export function apacheBalancerConfig(members: Array<{ port: number; route: string }>, listen: number): string {
  return `
<Proxy "balancer://tsgi">
${members.map((m) => `  BalancerMember "ajp://127.0.0.1:${m.port}" route=${m.route} retry=10 ping=1`).join('\n')}
  # Sticky by the route after the dot of JSESSIONID (<id>.<route>), as servlet containers do;
  # a member that fails is skipped (its sessions move) and retried after retry= seconds.
  # ping=1: a CPING (answered by tsgi with CPONG within 1 s) before a request goes on a pooled
  # connection, so that one to a member that died is not used.
  ProxySet stickysession=JSESSIONID|jsessionid lbmethod=byrequests
</Proxy>
<VirtualHost 127.0.0.1:${listen}>
  ProxyPass "/" "balancer://tsgi/"
</VirtualHost>
`;
}

describeWith('Apache mod_proxy_balancer: three tsgi instances over AJP, with routes', apacheReq, () => {
  const ctx = {} as { ajp: Tsgi[]; apache: WebServer; port: number };
  const url = (p: string) => `http://127.0.0.1:${ctx.port}${p}`;

  beforeAll(async () => {
    const dir = makeTempDir('balancer-apache');
    ctx.ajp = named(await startInstances('ajp', 'a'), 'a');
    [ctx.port] = (await freePorts(1)) as [number];
    const body = apacheBalancerConfig(
      ctx.ajp.map((t, i) => ({ port: portOf(t), route: `a${i + 1}` })),
      ctx.port,
    );
    ctx.apache = await startApache({
      bin: apacheBin!,
      dir,
      ports: [ctx.port],
      modules: APACHE_MODULES,
      user: isRoot() ? lookupUser('www-data')! : currentUser(),
      body,
    });
  });

  afterAll(async () => {
    await ctx.apache?.daemon.stop();
    for (const t of ctx.ajp ?? []) await t.daemon.stop();
  });

  it('spreads requests over the three members (byrequests), each its own process', async () => {
    const seen = await spread(url('/who'), 30);
    console.log(`[balancer] Apache balancer:// (AJP): 30 requests, per member ${JSON.stringify(Object.fromEntries([...seen].sort()))}`);
    expect([...seen.keys()].sort()).toEqual(['a1', 'a2', 'a3']);
    for (const [, n] of seen) expect(n).toBeGreaterThanOrEqual(5);
  });

  it('sticky sessions: a JSESSIONID ending in .<route> keeps going to that member, and AJP_ROUTE names it', async () => {
    const pinned = new Map<string, string>();
    for (let i = 0; i < 9 && pinned.size < 3; i++) {
      const a = await ask(url('/session'));
      expect(a.setCookie?.[0]).toMatch(new RegExp(`^JSESSIONID=[^;]+\\.${a.instance};`));
      pinned.set(a.instance, a.setCookie![0]!.split(';')[0]!);
    }
    expect([...pinned.keys()].sort()).toEqual(['a1', 'a2', 'a3']);
    for (const [instance, cookie] of pinned) {
      for (let i = 0; i < 5; i++) expect(await ask(url('/session'), { Cookie: cookie })).toMatchObject({ instance, ajpRoute: instance });
    }
  });

  it('one member stopped (SIGTERM) in the middle of a steady stream of GETs: nothing is lost; its sessions move', async () => {
    const [a, b, c] = ctx.ajp;
    expect((await ask(url('/session'), { Cookie: 'JSESSIONID=sticky.a2' })).instance).toBe('a2');
    await failover({ url: url('/who?ms=20'), serving: [a!, b!, c!], victim: b!, signal: 'SIGTERM', label: 'Apache balancer:// (AJP)', errorLog: ctx.apache.errorLog });
    // A session pinned to the stopped member is served by another one (its route is not usable).
    const moved = await ask(url('/session'), { Cookie: 'JSESSIONID=sticky.a2' });
    expect(['a1', 'a3']).toContain(moved.instance);
  });

  it('another one killed (SIGKILL) mid-request: every GET sent after it died succeeds; one in flight there is lost (mod_proxy_ajp does not resend)', async () => {
    const [a, , c] = ctx.ajp;
    await failover({ url: url('/who?ms=20'), serving: [a!, c!], victim: c!, signal: 'SIGKILL', label: 'Apache balancer:// (AJP)', errorLog: ctx.apache.errorLog, inFlightLost: true });
  });
});

// ---------------------------------------------------------------------------------------------
// A reload (SIGHUP to the main process of --workers 2) behind each front end, under load: the
// front ends keep pooled connections to the old workers, which the reload must not fail.

/** GETs from 6 clients; SIGHUP after a second; on until the old workers are gone, plus a second. */
async function reloadUnderLoad(url: string, t: Tsgi, label: string, errorLog: string): Promise<void> {
  const pidsOf = (xs: Timed[]) => new Set(xs.map((x) => x.answer.pid));
  const load = steadyLoad(url, 6);
  await sleep(1000);
  const before = load.ok.length;
  const hupAt = Date.now();
  process.kill(t.daemon.pid, 'SIGHUP');
  const stopped = () => t.logRecords().filter((r) => String(r.msg).startsWith('stopping: no new connections')).length;
  const deadline = Date.now() + 15_000;
  while (stopped() < 2 && Date.now() < deadline) await sleep(50);
  // A stopping worker gives an idle pooled connection up to 1 s (DRAIN_GRACE_MS) to bring one
  // more request; after that only the new workers answer.
  await sleep(1500);
  await load.stop();
  const old = pidsOf(load.ok.slice(0, before));
  const late = load.ok.filter((x) => x.sent > Date.now() - 400);
  console.log(
    `[balancer] ${label}: reload under load: ${load.ok.length + load.failures.length} GETs, ${load.ok.length - before} after SIGHUP, ` +
      `${load.failures.length} failed (${((Date.now() - hupAt) / 1000).toFixed(1)} s from SIGHUP to the end of the load)`,
  );
  expect(stopped()).toBe(2);
  expect(load.failures.map((f) => `${f.what.slice(0, 80)} (sent ${f.sent - hupAt} ms after SIGHUP)`), `front end's error log:\n${fs.readFileSync(errorLog, 'utf8').slice(-3000)}`).toEqual([]);
  expect(old.size).toBe(2);
  expect(late.length).toBeGreaterThan(10);
  for (const x of late) expect(old.has(x.answer.pid)).toBe(false);
}

describeWith('a reload behind nginx (FastCGI upstream with a keepalive pool)', nginxReq, () => {
  const ctx = {} as { t: Tsgi; nginx: WebServer; port: number };
  beforeAll(async () => {
    const dir = makeTempDir('balancer-reload-nginx');
    ctx.t = await startTsgi({ app: APP, protocol: 'fastcgi', args: ['--workers', '2'], env: { TSGI_ROUTE: 'r' } });
    [ctx.port] = (await freePorts(1)) as [number];
    const http = `
  upstream tsgi_workers {
    server 127.0.0.1:${portOf(ctx.t)};
    keepalive 16;
  }
  server {
    listen 127.0.0.1:${ctx.port};
    location / {
    ${FCGI_PARAMS}
      fastcgi_keep_conn on;
      fastcgi_pass tsgi_workers;
    }
  }
`;
    ctx.nginx = await startNginx({ dir, http, ports: [ctx.port] });
    await waitServing(ctx.t, 2);
  });
  afterAll(async () => {
    await ctx.nginx?.daemon.stop();
    await ctx.t?.daemon.stop();
  });

  it('SIGHUP under a steady stream of GETs: none fails, the new workers answer afterwards', async () => {
    await reloadUnderLoad(`http://127.0.0.1:${ctx.port}/who?ms=5`, ctx.t, 'nginx fastcgi_pass keepalive', ctx.nginx.errorLog);
  });
});

describeWith('a reload behind Apache (mod_proxy_ajp, ping=)', apacheReq, () => {
  const ctx = {} as { t: Tsgi; apache: WebServer; port: number };
  beforeAll(async () => {
    const dir = makeTempDir('balancer-reload-apache');
    ctx.t = await startTsgi({ app: APP, protocol: 'ajp', args: ['--workers', '2'], env: { TSGI_ROUTE: 'r' } });
    [ctx.port] = (await freePorts(1)) as [number];
    ctx.apache = await startApache({
      bin: apacheBin!,
      dir,
      ports: [ctx.port],
      modules: APACHE_MODULES,
      user: isRoot() ? lookupUser('www-data')! : currentUser(),
      body: `<VirtualHost 127.0.0.1:${ctx.port}>\n  ProxyPass "/" "ajp://127.0.0.1:${portOf(ctx.t)}/" ping=1\n</VirtualHost>\n`,
    });
    await waitServing(ctx.t, 2);
  });
  afterAll(async () => {
    await ctx.apache?.daemon.stop();
    await ctx.t?.daemon.stop();
  });

  it('SIGHUP under a steady stream of GETs: none fails, the new workers answer afterwards', async () => {
    await reloadUnderLoad(`http://127.0.0.1:${ctx.port}/who?ms=5`, ctx.t, 'Apache mod_proxy_ajp', ctx.apache.errorLog);
  });
});

async function waitServing(t: Tsgi, n: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (t.logRecords().filter((r) => String(r.msg).startsWith('tsgi serving')).length < n) {
    if (Date.now() > deadline) throw new Error(`timeout: ${n} workers of ${t.daemon.name}\n${t.daemon.diagnostics()}`);
    await sleep(50);
  }
}
