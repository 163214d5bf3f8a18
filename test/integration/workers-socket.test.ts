// Inherited listening sockets, from the supervisor's side: systemd socket activation (LISTEN_FDS
// and LISTEN_PID, the socket at fd 3) and the fd-0 socket of spawn-fcgi / mod_fcgid, each with
// one process and with --workers. The test holds the socket as systemd does and hands it over
// through a real exec: `sh -c 'LISTEN_PID=$$ LISTEN_FDS=1 exec node bin/tsgi ...'`, so that
// LISTEN_PID is the pid of the process tsgi runs in. systemd-socket-activate (Debian's systemd
// package) is used too when it is installed.

import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FcgiClient } from '../helpers/fcgi-client.js';
import { request } from '../helpers/http.js';
import { app, freePort, ROOT, sleep, TSGI, within } from '../helpers/spawn.js';
import { until } from '../helpers/workers.js';
import { which } from '../servers/helpers/require.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsgi-sockets-'));
const started = new Set<Launched>();
afterAll(async () => {
  for (const l of started) await l.stop('SIGKILL').catch(() => {});
  fs.rmSync(tmp, { recursive: true, force: true });
});

interface Launched {
  pid: number;
  child: ChildProcess;
  records(): Array<Record<string, unknown>>;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Runs `command args` with `socket` as file descriptor `fd` (3: systemd; 0: spawn-fcgi). */
function launch(command: string, args: string[], socket?: net.Server, fd: 0 | 3 = 3, env: NodeJS.ProcessEnv = {}): Launched {
  // The listening socket's descriptor number (node has no public getter; _handle.fd on Unix).
  const sfd = socket ? (socket as unknown as { _handle: { fd: number } })._handle.fd : -1;
  const stdio: Array<'ignore' | 'pipe' | number> = !socket ? ['ignore', 'pipe', 'pipe'] : fd === 3 ? ['ignore', 'pipe', 'pipe', sfd] : [sfd, 'pipe', 'pipe'];
  const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: stdio as never });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stdout!.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const l: Launched = {
    pid: child.pid!,
    child,
    exited,
    stderr: () => err,
    records() {
      const out: Array<Record<string, unknown>> = [];
      for (const line of err.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          out.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // partial line
        }
      }
      return out;
    },
    async stop(signal = 'SIGTERM') {
      started.delete(l);
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return (await within(exited, 10_000, `pid ${child.pid} to exit after ${signal}`)).code;
    },
  };
  started.add(l);
  return l;
}

/** `sh -c 'LISTEN_PID=$$ LISTEN_FDS=1 exec node bin/tsgi serve ARGS'`: sd_listen_fds's hand-over. */
function socketActivate(socket: net.Server, args: string[], env: NodeJS.ProcessEnv = {}): Launched {
  return launch('sh', ['-c', 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"', 'sh', process.execPath, TSGI, 'serve', ...args], socket, 3, env);
}

/** A listening TCP socket on a free loopback port, not accepting in this process once handed over. */
async function tcpSocket(): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, resolve);
  });
  return { server, port: (server.address() as net.AddressInfo).port };
}

/** Closes the test's own copy after the hand-over, so that only the child accepts. */
const release = (server: net.Server) => new Promise<void>((r) => server.close(() => r()));

const pidOf = async (port: number, p = '/pid') => JSON.parse((await request(port, { path: p })).body.toString()).pid as number;

describe('systemd socket activation (LISTEN_FDS, LISTEN_PID): a launcher that execs tsgi with the socket at fd 3', () => {
  it('one process serves the socket it was given; LISTEN_* are not passed on to the app', async () => {
    const { server, port } = await tcpSocket();
    const p = socketActivate(server, [app('prod-app.mjs'), '--protocol', 'http']);
    await release(server);
    const res = await request(port, { path: '/pid' });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toMatchObject({ pid: p.pid, listenFds: null });
    expect(p.records().find((r) => r.msg === 'tsgi serving http on fd:3')).toMatchObject({ pid: p.pid, systemd: true });
    expect(await p.stop()).toBe(0);
  });

  it('LISTEN_PID of another process: the sockets are not for us (the default bind is used)', async () => {
    const { server } = await tcpSocket();
    const port = await freePort();
    const p = launch('sh', ['-c', 'LISTEN_PID=1 LISTEN_FDS=1 exec "$@"', 'sh', process.execPath, TSGI, 'serve', app('hello.mjs'), '--bind', `127.0.0.1:${port}`], server, 3);
    await release(server);
    await until(() => p.records().some((r) => r.msg === `tsgi serving http on 127.0.0.1:${port}`), 'the --bind address to be served');
    expect(await p.stop()).toBe(0);
  });

  it('--workers 2: the main process shares the inherited socket with its workers; reload keeps accepting', async () => {
    const { server, port } = await tcpSocket();
    const p = socketActivate(server, [app('prod-app.mjs'), '--workers', '2']);
    await release(server);
    await until(() => p.records().filter((r) => r.msg === 'tsgi serving http on fd:3').length === 2, 'two workers');
    const pids = new Set<number>();
    for (let i = 0; i < 10; i++) pids.add(await pidOf(port));
    expect(pids.size).toBe(2);
    expect(pids.has(p.pid)).toBe(false);
    expect(p.records().find((r) => r.msg === 'tsgi main process: 2 workers')).toMatchObject({ pid: p.pid, bind: 'fd:3', systemd: true });
    p.child.kill('SIGHUP');
    await until(() => p.records().filter((r) => r.msg === 'tsgi serving http on fd:3').length === 4, 'the new generation');
    await until(() => p.records().filter((r) => String(r.msg).startsWith('stopping: no new connections')).length === 2, 'the old one to stop');
    const after = new Set<number>();
    for (let i = 0; i < 10; i++) after.add(await pidOf(port));
    expect(after.size).toBe(2);
    for (const x of after) expect(pids.has(x)).toBe(false);
    expect(await p.stop()).toBe(0);
  });

  it('--workers 2: when every worker is gone the inherited socket is lost with them; the main process exits 1 for systemd to restart it', async () => {
    const { server, port } = await tcpSocket();
    const p = socketActivate(server, [app('prod-app.mjs'), '--workers', '2']);
    await release(server);
    await until(() => p.records().filter((r) => r.msg === 'tsgi serving http on fd:3').length === 2, 'two workers');
    const pids = new Set<number>();
    for (let i = 0; i < 10; i++) pids.add(await pidOf(port));
    for (const w of pids) process.kill(w, 'SIGKILL');
    const exit = await within(p.exited, 10_000, 'the main process to exit');
    expect(exit.code).toBe(1);
    expect(p.records().some((r) => r.code === 'TSGI_LISTEN_SOCKET_LOST' && r.level === 'fatal')).toBe(true);
    started.delete(p);
  });

  it('a restart under the same socket refuses nothing: a connection made while no tsgi runs waits and is served', async () => {
    // The shell holds fd 3 across two runs of tsgi, as systemd holds a .socket unit's socket.
    const { server, port } = await tcpSocket();
    const script = [
      'run() { sh -c \'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"\' sh "$@"; }',
      'run "$0" "$1" serve "$2" --protocol http',
      'sleep 1',
      'run "$0" "$1" serve "$2" --protocol http',
    ].join('\n');
    const p = launch('sh', ['-c', script, process.execPath, TSGI, app('prod-app.mjs')], server, 3);
    await release(server);
    const first = await pidOf(port);
    process.kill(first, 'SIGTERM');
    await until(() => p.records().some((r) => r.pid === first && String(r.msg).startsWith('stopping')), 'the first run to stop');
    await sleep(200);
    // Nobody accepts now; the kernel queues the connection on the socket the shell keeps.
    const t0 = Date.now();
    const res = await request(port, { path: '/pid', timeoutMs: 10_000 });
    expect(res.status).toBe(200);
    const second = JSON.parse(res.body.toString()).pid as number;
    expect(second).not.toBe(first);
    expect(Date.now() - t0).toBeGreaterThan(300);
    process.kill(second, 'SIGTERM');
    expect((await within(p.exited, 10_000, 'the launcher to exit')).code).toBe(0);
    started.delete(p);
  });

  it('a Unix socket (ListenStream=/path) is served the same way', async () => {
    const sock = path.join(tmp, 'activated.sock');
    const alias = path.join(tmp, 'activated-alias.sock');
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(sock, r));
    // Closing our copy unlinks the path (libuv): a second name for the socket survives it.
    fs.linkSync(sock, alias);
    const p = socketActivate(server, [app('prod-app.mjs'), '--workers', '2']);
    await release(server);
    await until(() => p.records().filter((r) => r.msg === 'tsgi serving http on fd:3').length === 2, 'two workers');
    const pids = new Set<number>();
    for (let i = 0; i < 8; i++) pids.add(JSON.parse((await request(0, { socketPath: alias, path: '/pid' })).body.toString()).pid as number);
    expect(pids.size).toBe(2);
    expect(await p.stop()).toBe(0);
  });
});

const ssa = which('systemd-socket-activate');
describe.skipIf(!ssa)('systemd-socket-activate (Debian systemd package) as the launcher', () => {
  it('TCP: tsgi is exec-ed on the first connection and answers it', async () => {
    const port = await freePort();
    const p = launch(ssa!, ['-l', `127.0.0.1:${port}`, process.execPath, TSGI, 'serve', app('prod-app.mjs'), '--workers', '2']);
    await until(() => p.stderr().includes('Listening on'), 'systemd-socket-activate to listen');
    // The first connection starts tsgi (and its workers): a longer wait for that one.
    const first = await request(port, { path: '/pid', timeoutMs: 20_000 });
    const pids = new Set<number>([JSON.parse(first.body.toString()).pid as number]);
    await until(() => p.records().filter((r) => r.msg === 'tsgi serving http on fd:3').length === 2, 'two workers');
    for (let i = 0; i < 8; i++) pids.add(await pidOf(port));
    expect(pids.size).toBe(2);
    expect(p.records().find((r) => r.msg === 'tsgi main process: 2 workers')).toMatchObject({ pid: p.pid, systemd: true });
    expect(await p.stop()).toBe(0);
  });

  it('a Unix socket', async () => {
    const sock = path.join(tmp, 'ssa.sock');
    const p = launch(ssa!, ['-l', sock, process.execPath, TSGI, 'serve', app('prod-app.mjs')]);
    await until(() => p.stderr().includes('Listening on'), 'systemd-socket-activate to listen');
    const res = await request(0, { socketPath: sock, path: '/pid' });
    expect(JSON.parse(res.body.toString()).pid).toBe(p.pid);
    expect(await p.stop()).toBe(0);
  });
});
if (!ssa) process.stderr.write('[integration] skipping systemd-socket-activate tests: not installed (Debian package systemd); the launcher tests above cover the hand-over\n');

describe('fd 0 (spawn-fcgi, mod_fcgid) with --workers', () => {
  it('FastCGI on the inherited fd 0, shared by two workers', async () => {
    const { server, port } = await tcpSocket();
    const p = launch(process.execPath, [TSGI, 'serve', app('prod-app.mjs'), '--workers', '2'], server, 0);
    await release(server);
    await until(() => p.records().filter((r) => r.msg === 'tsgi serving fastcgi on fd:0').length === 2, 'two workers');
    const pids = new Set<number>();
    for (let i = 1; i <= 8; i++) {
      const c = await FcgiClient.connect({ port });
      await c.request(1, { params: { REQUEST_METHOD: 'GET', SCRIPT_NAME: '', PATH_INFO: '/pid', QUERY_STRING: '' } });
      pids.add(JSON.parse((await c.waitEnd(1)).response().body.toString()).pid as number);
      c.socket.destroy();
    }
    expect(pids.size).toBe(2);
    expect(await p.stop()).toBe(0);
  });
});
