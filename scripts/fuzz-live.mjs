#!/usr/bin/env node
// Long fuzz of live tsgi servers over real sockets (outside the test suite).
//
//   node scripts/fuzz-live.mjs [--seconds 120] [--protocols fastcgi,scgi,ajp,http] [--seed N]
//
// For each protocol it starts `bin/tsgi serve` on loopback with an echo app, then loops: a
// well-formed request is mutated (bit flips, truncation, splices of random bytes, duplicated
// or huge length fields) and sent on a fresh connection; every few mutants a well-formed request
// goes on another fresh connection and must be answered correctly (status 200, echoed body).
// Prints, per protocol: mutants sent, checks passed/failed, server RSS at start and end, and
// whether the server was still alive. Exits 1 on any failed check or a dead server.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const seconds = Number(opt('seconds', '120'));
const protocols = opt('protocols', 'fastcgi,scgi,ajp,http').split(',');
let seed = Number(opt('seed', String(Date.now() % 1e9)));
const rand = () => {
  // mulberry32: reproducible with --seed
  seed |= 0;
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const randInt = (n) => Math.floor(rand() * n);

const fcgi = await import(path.join(root, 'dist/protocols/fastcgi/codec.js'));
const scgi = await import(path.join(root, 'dist/protocols/scgi/codec.js'));
const ajp = await import(path.join(root, 'dist/protocols/ajp/codec.js'));
const { parseCgiHead } = await import(path.join(root, 'dist/runner/cgi-head.js'));

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsgi-fuzz-'));
const appFile = path.join(tmp, 'echo.mjs');
fs.writeFileSync(
  appFile,
  `export default async function app(environ, startResponse) {
  const body = await environ['wsgi.input'].read();
  startResponse('200 OK', [['Content-Type', 'application/octet-stream'], ['X-Path', environ.PATH_INFO.replace(/[^\\x20-\\x7e]/g, '?')]]);
  return [body];
}
`,
);

/** A well-formed request carrying `body`, and how to check the answer to it. */
function wellFormed(protocol, body) {
  const p = '/fuzz';
  switch (protocol) {
    case 'fastcgi':
      return Buffer.concat([
        fcgi.encodeBeginRequest(1, 1, 0),
        fcgi.encodeRecord(4, 1, fcgi.encodeParams([['REQUEST_METHOD', 'POST'], ['PATH_INFO', p], ['SCRIPT_NAME', ''], ['CONTENT_LENGTH', String(body.length)], ['SERVER_NAME', 'x'], ['SERVER_PORT', '80'], ['SERVER_PROTOCOL', 'HTTP/1.1']])),
        fcgi.encodeRecord(4, 1),
        ...(body.length ? [fcgi.encodeRecord(5, 1, body)] : []),
        fcgi.encodeRecord(5, 1),
      ]);
    case 'scgi':
      return Buffer.from(scgi.encodeRequest([['CONTENT_LENGTH', String(body.length)], ['SCGI', '1'], ['REQUEST_METHOD', 'POST'], ['PATH_INFO', p], ['SERVER_NAME', 'x'], ['SERVER_PORT', '80'], ['SERVER_PROTOCOL', 'HTTP/1.1']], body));
    case 'ajp':
      return Buffer.concat([
        ajp.encodeForwardRequest({ method: 'POST', requestUri: p, headers: [['content-length', String(body.length)]] }),
        ...(body.length ? [ajp.encodeBodyPacket(body)] : []),
      ]);
    case 'http':
      return Buffer.concat([Buffer.from(`POST ${p} HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`), body]);
  }
}

/** The response body of a well-formed exchange, or null when it is not a correct 200. */
function answerOf(protocol, bytes) {
  try {
    if (protocol === 'fastcgi') {
      const out = [];
      let ended = false;
      new fcgi.RecordDecoder().push(bytes, (r) => {
        if (r.type === 6) out.push(Buffer.from(r.content));
        if (r.type === 3) ended = true;
      });
      if (!ended) return null;
      return cgiBody(Buffer.concat(out));
    }
    if (protocol === 'scgi') return cgiBody(bytes);
    if (protocol === 'ajp') {
      let status = 0;
      const out = [];
      let ended = false;
      new ajp.PacketDecoder({ magic: 'container' }).push(bytes, (payload) => {
        const p = ajp.decodeContainerPacket(payload);
        if (p.type === 'headers') status = p.status;
        if (p.type === 'body') out.push(Buffer.from(p.data));
        if (p.type === 'end') ended = true;
      });
      return ended && status === 200 ? Buffer.concat(out) : null;
    }
    const text = bytes.toString('latin1');
    const i = text.indexOf('\r\n\r\n');
    if (!text.startsWith('HTTP/1.1 200') || i < 0) return null;
    return bytes.subarray(i + 4);
  } catch {
    return null;
  }
}
function cgiBody(bytes) {
  const h = parseCgiHead(bytes);
  return h && h.status === 200 ? bytes.subarray(h.bodyOffset) : null;
}

function mutate(buf) {
  const b = Buffer.from(buf);
  switch (randInt(6)) {
    case 0: // bit flips
      for (let i = 0, n = 1 + randInt(8); i < n; i++) b[randInt(b.length)] ^= 1 << randInt(8);
      return b;
    case 1: // truncation
      return b.subarray(0, randInt(b.length));
    case 2: // random bytes spliced in
      return Buffer.concat([b.subarray(0, randInt(b.length)), crypto.randomBytes(1 + randInt(64)), b.subarray(randInt(b.length))]);
    case 3: // a length field made huge: 0xff over two bytes somewhere in the first 16
      if (b.length > 4) {
        const i = randInt(Math.min(16, b.length - 1));
        b[i] = 0xff;
        b[i + 1] = 0xff;
      }
      return b;
    case 4: // the request twice, the second one cut
      return Buffer.concat([b, b.subarray(0, randInt(b.length))]);
    default: // pure garbage
      return crypto.randomBytes(1 + randInt(512));
  }
}

/** Sends bytes on a fresh connection; resolves with what came back (bounded by `ms`). */
function exchange(port, bytes, ms, endAfter = false, complete = null) {
  return new Promise((resolve) => {
    const chunks = [];
    const s = net.connect(port, '127.0.0.1');
    const done = () => {
      clearTimeout(t);
      s.destroy();
      resolve(Buffer.concat(chunks));
    };
    const t = setTimeout(done, ms);
    s.on('data', (c) => {
      chunks.push(c);
      if (complete && complete(Buffer.concat(chunks))) done();
    });
    s.on('error', done);
    s.on('close', done);
    s.on('connect', () => {
      s.write(bytes);
      if (endAfter) s.end();
    });
  });
}

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}
const rss = (pid) => {
  try {
    return Math.round(Number(fs.readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * 4096 / 1048576);
  } catch {
    return NaN;
  }
};

let failed = false;
const perProtocol = Math.max(5, seconds / protocols.length);
console.log(`fuzz: ${protocols.join(', ')}, ${perProtocol.toFixed(0)} s each, seed ${seed}`);
for (const protocol of protocols) {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(root, 'bin/tsgi'), 'serve', appFile, '--protocol', protocol, '--bind', `127.0.0.1:${port}`, '--header-timeout', '2', '--log-level', 'error'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr = (stderr + c).slice(-4000)));
  for (let i = 0; i < 100; i++) {
    if ((await exchange(port, Buffer.alloc(0), 50)).length >= 0 && (await new Promise((r) => net.connect(port, '127.0.0.1').on('connect', function () { this.destroy(); r(true); }).on('error', () => r(false))))) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const rssStart = rss(child.pid);
  const stats = { mutants: 0, checks: 0, ok: 0, bad: 0 };
  const until = Date.now() + perProtocol * 1000;
  while (Date.now() < until) {
    const body = crypto.randomBytes(randInt(3000));
    const good = wellFormed(protocol, body);
    for (let k = 0; k < 20; k++) {
      await exchange(port, mutate(good), 150, true, protocol === 'ajp' ? (b) => b.includes(Buffer.from([0x41, 0x42, 0x00, 0x02, 0x05])) : null);
      stats.mutants++;
    }
    // AJP keeps the connection for the next request: the answer is complete at END_RESPONSE.
    const ajpEnd = (b) => b.includes(Buffer.from([0x41, 0x42, 0x00, 0x02, 0x05]));
    const answer = answerOf(protocol, await exchange(port, good, 3000, protocol === 'scgi' || protocol === 'http', protocol === 'ajp' ? ajpEnd : null));
    stats.checks++;
    if (answer && answer.equals(body)) stats.ok++;
    else stats.bad++;
  }
  const alive = child.exitCode === null;
  const rssEnd = rss(child.pid);
  child.kill('SIGTERM');
  await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
  console.log(`${protocol}: ${stats.mutants} mutants, ${stats.ok}/${stats.checks} well-formed requests answered correctly, ${stats.bad} wrong; RSS ${rssStart} -> ${rssEnd} MiB; server ${alive ? 'alive' : 'DEAD'}; exit ${child.exitCode}`);
  if (stats.bad || !alive) {
    failed = true;
    console.log(stderr.split('\n').slice(-10).join('\n'));
  }
}
fs.rmSync(tmp, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
