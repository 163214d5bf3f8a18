// Where a server listens: --bind HOST:PORT, --bind unix:PATH, or an inherited listening
// socket (fd 0 as mod_fcgid and spawn-fcgi pass it; LISTEN_FDS from systemd).

import cluster from 'node:cluster';
import fs from 'node:fs';
import net from 'node:net';
import { UsageError } from '../errors.js';

export type BindSpec =
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'unix'; path: string }
  | { kind: 'fd'; fd: number };

export const DEFAULT_HTTP_BIND: BindSpec = { kind: 'tcp', host: '127.0.0.1', port: 8000 };

export function parseBind(s: string): BindSpec {
  if (s.startsWith('unix:')) {
    const path = s.slice(5);
    if (!path) throw new UsageError('TSGI_BAD_BIND', `--bind ${s}: the socket path is empty`);
    return { kind: 'unix', path };
  }
  if (s.startsWith('fd:')) {
    const fd = Number(s.slice(3));
    if (!Number.isInteger(fd) || fd < 0) throw new UsageError('TSGI_BAD_BIND', `--bind ${s}: not a file descriptor number`);
    return { kind: 'fd', fd };
  }
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*)):([0-9]{1,5})$/.exec(s);
  if (!m) throw new UsageError('TSGI_BAD_BIND', `--bind ${s}: want HOST:PORT, [IPv6]:PORT or unix:PATH`);
  const port = Number(m[3]);
  if (port > 65535) throw new UsageError('TSGI_BAD_BIND', `--bind ${s}: port out of range`);
  return { kind: 'tcp', host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

export function describeBind(b: BindSpec): string {
  if (b.kind === 'unix') return `unix:${b.path}`;
  if (b.kind === 'fd') return `fd:${b.fd}`;
  return b.host.includes(':') ? `[${b.host}]:${b.port}` : `${b.host}:${b.port}`;
}

/**
 * The listen backlog asked for: the kernel caps it at net.core.somaxconn (4096 on Linux 5.4 and
 * later). Node's own default, 511, is too small for a web server's bursts on a Unix socket: there a
 * full backlog fails the connect at once (EAGAIN; nginx answers 502) instead of the client
 * retrying as with TCP: with 511, 379 of 1,000 requests sent at once through nginx failed so.
 */
export const DEFAULT_BACKLOG = 65535;

export interface ListenOptions {
  /** Permissions of a Unix socket (default 0o660, as PHP-FPM's listen.mode). */
  socketMode?: number;
  backlog?: number;
}

/** Starts `server` listening; rejects with a one-line UsageError (port in use, no permission...). */
export async function listen(server: net.Server, bind: BindSpec, opts: ListenOptions = {}): Promise<void> {
  const backlog = opts.backlog ?? DEFAULT_BACKLOG;
  // In a cluster worker the main process owns the socket file (made and chmod-ed there).
  const owner = bind.kind === 'unix' && !cluster.isWorker;
  if (owner) await removeStaleSocket(bind.path);
  const mode = opts.socketMode ?? 0o660;
  // The socket file is created with the process umask: narrow it so there is no window in which
  // the socket is more open than asked.
  const oldMask = owner ? process.umask(0o777 & ~mode) : undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        server.off('listening', onListening);
        reject(listenError(err, bind));
      };
      const onListening = () => {
        server.off('error', onError);
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      if (bind.kind === 'unix') server.listen({ path: bind.path, backlog });
      else if (bind.kind === 'fd') server.listen({ fd: bind.fd, backlog });
      else server.listen({ host: bind.host, port: bind.port, backlog });
    });
  } finally {
    if (oldMask !== undefined) process.umask(oldMask);
  }
  if (owner) fs.chmodSync(bind.path, mode);
}

function listenError(err: NodeJS.ErrnoException, bind: BindSpec): UsageError {
  const where = describeBind(bind);
  const why: Record<string, string> = {
    EADDRINUSE: 'address already in use',
    EACCES: 'permission denied',
    EADDRNOTAVAIL: 'address not available on this machine',
    ENOENT: 'directory does not exist',
    ENOTSOCK: 'not a socket',
    EINVAL: 'not a listening socket',
  };
  return new UsageError(`TSGI_LISTEN_${err.code ?? 'FAILED'}`, `cannot listen on ${where}: ${why[err.code ?? ''] ?? err.message}`);
}

/** A socket file left by a dead server is removed; one that still answers is in use. */
export async function removeStaleSocket(path: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.statSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new UsageError('TSGI_LISTEN_EEXIST', `cannot listen on unix:${path}: a file that is not a socket is in the way`);
  const alive = await new Promise<boolean>((resolve) => {
    const c = net.connect(path);
    const timer = setTimeout(() => {
      c.destroy();
      resolve(true);
    }, 1000);
    c.once('connect', () => {
      clearTimeout(timer);
      c.destroy();
      resolve(true);
    });
    c.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  if (alive) throw new UsageError('TSGI_LISTEN_EADDRINUSE', `cannot listen on unix:${path}: address already in use`);
  fs.unlinkSync(path);
}

/** The first file descriptor systemd passes (SD_LISTEN_FDS_START). */
export const SD_LISTEN_FDS_START = 3;

export interface SystemdSockets {
  /** The inherited sockets: 3, 4, ... */
  fds: number[];
  /** LISTEN_FDNAMES (FileDescriptorName= of the socket unit), one per fd when given. */
  names: string[];
}

/**
 * Sockets handed over by systemd socket activation (sd_listen_fds(3)): LISTEN_FDS sockets from
 * fd 3 on, meant for this process only if LISTEN_PID is its pid. The variables are removed from
 * the environment (as sd_listen_fds(1) does), so that programs the app starts do not take them.
 */
export function takeSystemdSockets(env: NodeJS.ProcessEnv = process.env, pid = process.pid): SystemdSockets | undefined {
  const count = Number(env.LISTEN_FDS);
  const forUs = env.LISTEN_PID !== undefined && Number(env.LISTEN_PID) === pid;
  const names = env.LISTEN_FDNAMES?.split(':') ?? [];
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  if (!forUs || !Number.isInteger(count) || count < 1) return undefined;
  return { fds: Array.from({ length: count }, (_, i) => SD_LISTEN_FDS_START + i), names };
}

/**
 * True when file descriptor 0 is a socket, as mod_fcgid and spawn-fcgi start a FastCGI program
 * (FastCGI spec 2.2, FCGI_LISTENSOCK_FILENO). A connected socket fails to listen with a clear error.
 */
export function stdinIsListeningSocket(): boolean {
  try {
    if (!fs.fstatSync(0).isSocket()) return false;
  } catch {
    return false;
  }
  return true;
}
