// Starts `bin/tsgi` as a child process for integration tests, from the test's side: a free
// loopback port, a bounded wait until it accepts, stop by pid with a bounded wait for the exit.

import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const TSGI = path.join(ROOT, 'bin/tsgi');
export const APPS = path.join(ROOT, 'test/fixtures/apps');

/** The fixture app `name` (a file in test/fixtures/apps), as an absolute path. */
export const app = (name: string): string => path.join(APPS, name);

/** Rejects with `timeout: what` when `p` has not settled within `ms`: a hang fails as an assertion. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout: ${what} (after ${ms} ms)`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen({ host, port: 0, exclusive: true }, resolve);
  });
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** True when something accepts TCP connections on host:port within `ms`. */
export function canConnect(port: number, host = '127.0.0.1', ms = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), ms);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running (or finished) `bin/tsgi` process. */
export interface Proc {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Standard error so far, split into lines (the last one may be partial). */
  stderrLines(): string[];
  /** Standard error lines that parse as JSON (the log records). */
  logRecords(): Array<Record<string, unknown>>;
  stdout(): string;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<Exit>;
  /** The exit, or a `timeout` rejection after `ms`. */
  waitExit(ms?: number): Promise<Exit>;
  /** Resolves once a stderr line matches (rejects on exit or after `ms`). */
  waitForStderr(re: RegExp, ms?: number): Promise<string>;
  /** Sends `signal` to the pid (unless it already exited) and waits for the exit (bounded). */
  stop(signal?: NodeJS.Signals, ms?: number): Promise<number | null>;
}

export interface Server extends Proc {
  readonly host: string;
  readonly port: number;
  readonly url: string;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /**
   * Standard input: 'ignore' (/dev/null) by default. Note that 'pipe' is a socketpair under
   * libuv, which fd-0 socket detection sees as a socket.
   */
  stdin?: 'ignore' | 'pipe';
}

const live = new Set<Proc>();

/** Runs `bin/tsgi ARGS...`; the process is tracked so that `stopAll()` ends it. */
export function run(args: string[], o: RunOptions = {}): Proc {
  const child = spawn(process.execPath, [TSGI, ...args], {
    cwd: o.cwd ?? ROOT,
    env: { ...process.env, ...o.env },
    stdio: [o.stdin ?? 'ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not spawn ${TSGI}`);
  const pid = child.pid;
  let err = '';
  let out = '';
  const watchers = new Set<() => void>();
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
    for (const w of watchers) w();
  });
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      // Let the pipe drain so stderr is complete (bounded: a grandchild may hold it open).
      const done = () => resolve({ code, signal });
      if (child.stderr!.closed) return done();
      child.stderr!.once('close', done);
      setTimeout(done, 500).unref();
    });
  });
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
    live.delete(proc);
    for (const w of watchers) w();
  });
  const lines = () => (err === '' ? [] : err.replace(/\n$/, '').split('\n'));
  const proc: Proc = {
    pid,
    child,
    exited,
    stderrLines: lines,
    logRecords() {
      const recs: Array<Record<string, unknown>> = [];
      for (const l of lines()) {
        try {
          const v: unknown = JSON.parse(l);
          if (v && typeof v === 'object') recs.push(v as Record<string, unknown>);
        } catch {
          // not a log record
        }
      }
      return recs;
    },
    stdout: () => out,
    waitExit: (ms = 10_000) => within(exited, ms, `tsgi pid ${pid} to exit`),
    waitForStderr(re, ms = 10_000) {
      let w: () => void = () => {};
      const p = new Promise<string>((resolve, reject) => {
        w = () => {
          const hit = lines().find((l) => re.test(l));
          if (hit !== undefined) resolve(hit);
          else if (hasExited) reject(new Error(`tsgi pid ${pid} exited before stderr matched ${re}; stderr:\n${err}`));
        };
        watchers.add(w);
        w();
      });
      return within(p, ms, `stderr of pid ${pid} to match ${re}`).finally(() => watchers.delete(w));
    },
    async stop(signal = 'SIGTERM', ms = 10_000) {
      if (!hasExited) {
        try {
          process.kill(pid, signal);
        } catch {
          // already gone
        }
      }
      try {
        return (await within(exited, ms, `tsgi pid ${pid} to exit after ${signal}`)).code;
      } catch (e) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
        await within(exited, 5_000, `tsgi pid ${pid} to exit after SIGKILL`).catch(() => {});
        throw e;
      }
    },
  };
  live.add(proc);
  return proc;
}

/** Resolves once host:port accepts a connection; rejects when `proc` exits first or after `ms`. */
export async function waitListening(proc: Proc, port: number, host = '127.0.0.1', ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  let gone = false;
  void proc.exited.then(() => (gone = true));
  while (Date.now() < deadline) {
    if (gone) throw new Error(`tsgi pid ${proc.pid} exited before listening on ${host}:${port}; stderr:\n${proc.stderrLines().join('\n')}`);
    if (await canConnect(port, host, 500)) return;
    await sleep(50);
  }
  throw new Error(`timeout: tsgi pid ${proc.pid} not listening on ${host}:${port} after ${ms} ms; stderr:\n${proc.stderrLines().join('\n')}`);
}

export interface ServeOptions extends RunOptions {
  /** Extra arguments after `serve APP --bind ...`. */
  args?: string[];
  host?: string;
  /** A fixed port (default: a free one). */
  port?: number;
  /** Bounded wait for the port to accept (ms). */
  timeoutMs?: number;
}

/**
 * `bin/tsgi serve APP --bind 127.0.0.1:PORT` on a free port, resolved once the port accepts.
 * The readiness check is the port, not the "tsgi serving" log line, which the logger may
 * still hold in its buffer.
 */
export async function serve(appSpec: string, o: ServeOptions = {}): Promise<Server> {
  const host = o.host ?? '127.0.0.1';
  for (let attempt = 1; ; attempt++) {
    const port = o.port ?? (await freePort(host));
    const proc = run(['serve', appSpec, '--bind', `${host}:${port}`, ...(o.args ?? [])], o);
    try {
      await waitListening(proc, port, host, o.timeoutMs ?? 10_000);
    } catch (e) {
      const exit = await within(proc.exited, 200, 'exit').catch(() => undefined);
      // Someone took the free port between our check and the bind: try another one.
      if (exit && o.port === undefined && attempt < 3 && proc.stderrLines().some((l) => /address already in use/.test(l))) continue;
      await proc.stop('SIGKILL').catch(() => {});
      throw e;
    }
    return Object.assign(proc, { host, port, url: `http://${host}:${port}` });
  }
}

/** Stops every process started here that is still running (SIGTERM, then SIGKILL); for afterAll. */
export async function stopAll(ms = 10_000): Promise<void> {
  const procs = [...live];
  await Promise.all(procs.map((p) => p.stop('SIGTERM', ms).catch(() => undefined)));
}
