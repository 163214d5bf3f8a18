#!/usr/bin/env node
// Soak test (outside the test suite): steady mixed load on one tsgi server for a while, with
// RSS and open file descriptors sampled every few seconds and every response checked.
//
//   node scripts/soak.mjs [--minutes 10] [--protocol fastcgi|http] [--concurrency 16]
//
// fastcgi: nginx (started here, loopback, generated config, fastcgi_keep_conn on) in front of
// `bin/tsgi serve --protocol fastcgi` on a unix socket; http: clients talk to tsgi directly.
// The mix, per request: GET /hello, GET /big (1 MiB, sha256 checked), POST /upload (256 KiB
// random, its sha256 echoed back and checked), GET /error (must be a 500), GET /slow aborted by
// the client mid-response. Exit 1 on any mismatched response.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (n, d) => (args.includes(`--${n}`) ? args[args.indexOf(`--${n}`) + 1] : d);
const minutes = Number(opt('minutes', '10'));
const protocol = opt('protocol', 'fastcgi');
const concurrency = Number(opt('concurrency', '16'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsgi-soak-'));
fs.chmodSync(tmp, 0o755);

fs.writeFileSync(path.join(tmp, 'app.mjs'), `
import crypto from 'node:crypto';
const BIG = Buffer.alloc(1048576, 0x61);
export default async function app(environ, startResponse) {
  const p = environ.PATH_INFO;
  if (p === '/hello') { startResponse('200 OK', [['Content-Type', 'text/plain']]); return ['Hello, world!']; }
  if (p === '/big') { startResponse('200 OK', [['Content-Type', 'application/octet-stream']]); return (function* () { for (let i = 0; i < 16; i++) yield BIG.subarray(i * 65536, (i + 1) * 65536); })(); }
  if (p === '/upload') { const h = crypto.createHash('sha256'); for await (const c of environ['wsgi.input']) h.update(c); startResponse('200 OK', [['Content-Type', 'text/plain']]); return [h.digest('hex')]; }
  if (p === '/error') throw new Error('soak: expected failure');
  if (p === '/slow') { startResponse('200 OK', [['Content-Type', 'text/plain']]); return (async function* () { for (let i = 0; i < 50; i++) { if (environ['tsgi.signal'].aborted) return; yield 'x'.repeat(1024); await new Promise((r) => setTimeout(r, 20)); } })(); }
  startResponse('404 Not Found', [['Content-Type', 'text/plain']]); return ['no'];
}
`);
const BIG_SHA = crypto.createHash('sha256').update(Buffer.alloc(1048576, 0x61)).digest('hex');

const freePort = () => new Promise((r) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });
const port = await freePort();
const procs = [];
const sock = path.join(tmp, 'app.sock');
const tsgiArgs = protocol === 'fastcgi'
  ? ['serve', path.join(tmp, 'app.mjs'), '--protocol', 'fastcgi', '--bind', `unix:${sock}`, '--log-level', 'warn']
  : ['serve', path.join(tmp, 'app.mjs'), '--protocol', 'http', '--bind', `127.0.0.1:${port}`, '--log-level', 'warn'];
const tsgi = spawn(process.execPath, [path.join(root, 'bin/tsgi'), ...tsgiArgs], { stdio: ['ignore', 'ignore', fs.openSync(path.join(tmp, 'tsgi.log'), 'w')] });
procs.push(tsgi);
if (protocol === 'fastcgi') {
  fs.mkdirSync(path.join(tmp, 'ngx'));
  fs.writeFileSync(path.join(tmp, 'nginx.conf'), `
daemon off; worker_processes 1; user root; pid ${tmp}/nginx.pid; error_log ${tmp}/nginx-error.log warn;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path ${tmp}/ngx; fastcgi_temp_path ${tmp}/ngx; proxy_temp_path ${tmp}/ngx; scgi_temp_path ${tmp}/ngx; uwsgi_temp_path ${tmp}/ngx;
  client_max_body_size 0; client_body_buffer_size 1m;
  upstream tsgi { server unix:${sock}; keepalive 32; }
  server { listen 127.0.0.1:${port};
    location / { include /etc/nginx/fastcgi_params; fastcgi_param SCRIPT_NAME ""; fastcgi_param PATH_INFO $uri; fastcgi_keep_conn on; fastcgi_pass tsgi; fastcgi_buffering off; } } }
`);
}
for (let i = 0; i < 100 && !fs.existsSync(protocol === 'fastcgi' ? sock : '/nonexistent'); i++) {
  if (protocol !== 'fastcgi') break;
  await new Promise((r) => setTimeout(r, 100));
}
if (protocol === 'fastcgi') procs.push(spawn('nginx', ['-c', path.join(tmp, 'nginx.conf')], { stdio: 'ignore' }));
await new Promise((r) => setTimeout(r, 1500));

const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const stats = { ok: 0, mismatched: 0, aborted: 0, byKind: {} };
const request = (method, p, body, abortAfterBytes) => new Promise((resolve) => {
  const req = http.request({ host: '127.0.0.1', port, method, path: p, agent, headers: body ? { 'Content-Length': body.length } : {} }, (res) => {
    const chunks = [];
    let n = 0;
    res.on('data', (c) => { chunks.push(c); n += c.length; if (abortAfterBytes && n >= abortAfterBytes) { req.destroy(); resolve({ aborted: true }); } });
    res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
    res.on('error', () => resolve({ error: true }));
  });
  req.on('error', () => resolve({ error: true }));
  req.setTimeout(30_000, () => { req.destroy(); resolve({ error: true, timeout: true }); });
  req.end(body);
});
const kinds = ['hello', 'hello', 'hello', 'big', 'upload', 'error', 'abort'];
async function one() {
  const kind = kinds[Math.floor(Math.random() * kinds.length)];
  let ok = false;
  if (kind === 'hello') { const r = await request('GET', '/hello'); ok = r.status === 200 && r.body.toString() === 'Hello, world!'; }
  else if (kind === 'big') { const r = await request('GET', '/big'); ok = r.status === 200 && crypto.createHash('sha256').update(r.body).digest('hex') === BIG_SHA; }
  else if (kind === 'upload') { const b = crypto.randomBytes(262144); const r = await request('POST', '/upload', b); ok = r.status === 200 && r.body.toString() === crypto.createHash('sha256').update(b).digest('hex'); }
  else if (kind === 'error') { const r = await request('GET', '/error'); ok = r.status === 500; }
  else { const r = await request('GET', '/slow', null, 4096); ok = !!r.aborted; if (ok) stats.aborted++; }
  stats.byKind[kind] = (stats.byKind[kind] ?? 0) + 1;
  if (ok) stats.ok++; else { stats.mismatched++; }
}
const rss = () => { try { return Math.round(Number(fs.readFileSync(`/proc/${tsgi.pid}/statm`, 'utf8').split(' ')[1]) * 4096 / 1048576); } catch { return NaN; } };
const fds = () => { try { return fs.readdirSync(`/proc/${tsgi.pid}/fd`).length; } catch { return NaN; } };
const fdBase = fds();
const samples = [];
const until = Date.now() + minutes * 60_000;
const sampler = setInterval(() => { samples.push({ t: Math.round((Date.now() - (until - minutes * 60_000)) / 1000), rss: rss(), fds: fds(), done: stats.ok + stats.mismatched }); }, 5000);
await Promise.all(Array.from({ length: concurrency }, async () => { while (Date.now() < until) await one(); }));
clearInterval(sampler);
agent.destroy();
await new Promise((r) => setTimeout(r, 2000));
const fdEnd = fds();
const alive = tsgi.exitCode === null;
for (const p of procs.reverse()) p.kill('SIGTERM');
const first = samples.slice(0, Math.max(1, Math.floor(samples.length / 10)));
const last = samples.slice(-Math.max(1, Math.floor(samples.length / 10)));
const avg = (xs) => Math.round(xs.reduce((a, s) => a + s.rss, 0) / xs.length);
console.log(`soak ${protocol}: ${minutes} min, concurrency ${concurrency}: ${stats.ok + stats.mismatched} requests (${JSON.stringify(stats.byKind)}), ${stats.mismatched} mismatched, ${stats.aborted} aborted on purpose`);
console.log(`RSS MiB: first 10% of samples avg ${avg(first)}, last 10% avg ${avg(last)}, max ${Math.max(...samples.map((s) => s.rss))}; fds: ${fdBase} at start, ${fdEnd} after the load (idle); server ${alive ? 'alive' : 'DEAD'}`);
console.log('samples (s, RSS MiB, fds, requests): ' + samples.map((s) => `${s.t}:${s.rss}/${s.fds}/${s.done}`).join(' '));
await new Promise((r) => setTimeout(r, 500));
fs.rmSync(tmp, { recursive: true, force: true });
process.exit(stats.mismatched || !alive ? 1 : 0);
