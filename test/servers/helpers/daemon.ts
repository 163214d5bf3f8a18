// Foreground server processes for real-server tests (nginx, Apache, lighttpd, bin/tsgi), from
// the test's side: spawn, a bounded wait until a TCP port or Unix socket accepts, and a stop by
// pid (TERM, bounded wait, then KILL). Every process started here is tracked for afterAll.

import { type ChildProcess, spawn, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Rejects with `timeout: what` when `p` has not settled within `ms`: a hang fails as an assertion. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout: ${what} (after ${ms} ms)`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Where a daemon is ready: a TCP port on a host, or a Unix socket path. */
export type Endpoint = { port: number; host?: string } | { path: string };

export function describeEndpoint(e: Endpoint): string {
  return 'path' in e ? `unix:${e.path}` : `${e.host ?? '127.0.0.1'}:${e.port}`;
}

/** True when `e` accepts a connection within `ms`. */
export function canConnect(e: Endpoint, ms = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = 'path' in e ? net.connect(e.path) : net.connect({ host: e.host ?? '127.0.0.1', port: e.port });
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

/** A TCP port on 127.0.0.1 that was free a moment ago. */
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

/** `n` distinct free ports. */
export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

export interface DaemonOptions {
  /** Name in messages: "nginx", "tsgi fastcgi". */
  name: string;
  command: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  uid?: number;
  gid?: number;
  /** Ready once these accept connections. */
  ready: Endpoint[];
  /** Bounded wait for readiness (ms). */
  timeoutMs?: number;
  /** Log files whose tail goes into error messages (the daemon's own error log). */
  logFiles?: string[];
}

export interface Daemon {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Standard output and error so far. */
  output(): string;
  /** Output plus the tail of each log file: for assertion messages. */
  diagnostics(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited(): boolean;
  /** Sends `signal` to the pid, waits (bounded) for the exit, then SIGKILL if needed. */
  stop(signal?: NodeJS.Signals, ms?: number): Promise<void>;
}

const live = new Set<Daemon>();

function tail(file: string, bytes = 4000): string {
  try {
    const buf = fs.readFileSync(file);
    return buf.subarray(Math.max(0, buf.length - bytes)).toString('utf8');
  } catch {
    return '(unreadable)';
  }
}

/** Spawns a daemon that stays in the foreground and waits until its endpoints accept. */
export async function startDaemon(o: DaemonOptions): Promise<Daemon> {
  const spawnOpts: SpawnOptions = {
    cwd: o.cwd,
    env: o.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  };
  if (o.uid !== undefined) spawnOpts.uid = o.uid;
  if (o.gid !== undefined) spawnOpts.gid = o.gid;
  const child = spawn(o.command, o.args, spawnOpts);
  if (child.pid === undefined) {
    const err = await new Promise<Error>((r) => child.once('error', r));
    throw new Error(`${o.name}: could not spawn ${o.command}: ${err.message}`);
  }
  const pid = child.pid;
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-200_000)));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-200_000)));
  let gone = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      gone = true;
      resolve({ code, signal });
    });
  });
  const diagnostics = () => {
    let s = `${o.name} (pid ${pid}) output:\n${out}`;
    for (const f of o.logFiles ?? []) s += `\n--- ${f}:\n${tail(f)}`;
    return s;
  };
  const d: Daemon = {
    name: o.name,
    pid,
    child,
    output: () => out,
    diagnostics,
    exited,
    hasExited: () => gone,
    async stop(signal = 'SIGTERM', ms = 10_000) {
      live.delete(d);
      if (gone) return;
      try {
        process.kill(pid, signal);
      } catch {
        return;
      }
      try {
        await within(exited, ms, `${o.name} pid ${pid} to exit after ${signal}`);
      } catch {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
        await within(exited, 5_000, `${o.name} pid ${pid} to exit after SIGKILL`).catch(() => {});
      }
    },
  };
  live.add(d);
  const deadline = Date.now() + (o.timeoutMs ?? 15_000);
  for (const e of o.ready) {
    for (;;) {
      if (gone) {
        await sleep(100); // let the last output arrive
        await d.stop();
        throw new Error(`${o.name} exited before ${describeEndpoint(e)} accepted connections\n${diagnostics()}`);
      }
      if (await canConnect(e, 500)) break;
      if (Date.now() > deadline) {
        await d.stop('SIGKILL');
        throw new Error(`timeout: ${o.name} not accepting on ${describeEndpoint(e)} after ${o.timeoutMs ?? 15_000} ms\n${diagnostics()}`);
      }
      await sleep(50);
    }
  }
  return d;
}

/** Stops every daemon started here that is still running; for afterAll. */
export async function stopAllDaemons(): Promise<void> {
  await Promise.all([...live].map((d) => d.stop().catch(() => undefined)));
}

/**
 * Pids of processes whose command line contains `needle` (from /proc). Prefer
 * `descendantsWithCommandLine` when the parent is known: other tests may run the same programs.
 */
export function pidsWithCommandLine(needle: string): number[] {
  const pids: number[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return pids;
  }
  for (const e of entries) {
    if (!/^[0-9]+$/.test(e)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${e}/cmdline`, 'latin1').replaceAll('\0', ' ');
      if (cmd.includes(needle)) pids.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return pids.filter((p) => p !== process.pid);
}

/** The parent pid of `pid` (from /proc), or undefined when it is gone. */
function parentOf(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/**
 * Pids of the live descendants of `ancestor` whose command line contains `needle` (from /proc):
 * the programs a web server spawned itself (mod_fcgid), which the test then stops by pid.
 */
export function descendantsWithCommandLine(ancestor: number, needle: string): number[] {
  const pids: number[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return pids;
  }
  for (const e of entries) {
    if (!/^[0-9]+$/.test(e)) continue;
    const pid = Number(e);
    let cmd: string;
    try {
      cmd = fs.readFileSync(`/proc/${e}/cmdline`, 'latin1').replaceAll('\0', ' ');
    } catch {
      continue; // gone meanwhile
    }
    if (!cmd.includes(needle)) continue;
    for (let p = parentOf(pid), hops = 0; p !== undefined && p > 1 && hops < 32; p = parentOf(p), hops++) {
      if (p === ancestor) {
        pids.push(pid);
        break;
      }
    }
  }
  return pids;
}

/** Sends SIGTERM to each pid, waits (bounded) for them to go, then SIGKILL the rest. */
export async function killPids(pids: number[], ms = 5_000): Promise<void> {
  const alive = (p: number) => {
    try {
      process.kill(p, 0);
    } catch {
      return false;
    }
    // A zombie (exited, not yet reaped by its new parent) counts as gone.
    try {
      return !/^[0-9]+ \(.*\) Z/.test(fs.readFileSync(`/proc/${p}/stat`, 'latin1'));
    } catch {
      return false;
    }
  };
  for (const p of pids) {
    try {
      process.kill(p, 'SIGTERM');
    } catch {
      // gone
    }
  }
  const deadline = Date.now() + ms;
  while (pids.some(alive) && Date.now() < deadline) await sleep(50);
  for (const p of pids.filter(alive)) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** Polls `check` every 50 ms until it returns true; rejects with `timeout: what` after `ms`. */
export async function waitUntil(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timeout: ${what} (after ${ms} ms)`);
    await sleep(50);
  }
}
