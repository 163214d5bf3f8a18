// `tsgi serve APP`: load the app, listen, serve until SIGTERM/SIGINT, then drain and exit 0.

import cluster from 'node:cluster';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { UsageError } from '../errors.js';
import { loadApp, parseAppSpec } from '../load-app.js';
import { createLogger, flushLogs, type Logger } from '../log.js';
import {
  DEFAULT_HTTP_BIND,
  describeBind,
  listen,
  parseBind,
  removeStaleSocket,
  stdinIsListeningSocket,
  takeSystemdSockets,
  type BindSpec,
} from '../net/listen.js';
import { PROTOCOLS, type ProtocolOptions, type ProtocolServer } from '../net/protocols.js';
import { DRAIN_GRACE_MS } from '../net/stream-server.js';
import { singleProcessReport, statusApp, type ServerInfo, type StatusReport } from '../net/status.js';
import { Gateway, type Limits } from '../runner/gateway.js';
import { validator } from '../runner/validate.js';
import type { App, Protocol } from '../types.js';

export interface ServeOptions {
  protocol?: string;
  bind?: string;
  workers: string;
  lint: boolean;
  debug: boolean;
  logLevel?: string;
  accessLog?: boolean;
  socketMode: string;
  gracefulTimeout: string;
  maxHeaderSize?: string;
  maxBodySize?: string;
  maxRequestsPerConn?: string;
  maxConnections?: string;
  idleTimeout?: string;
  headerTimeout?: string;
  ajpSecret?: string;
  ajpPacketSize?: string;
  ajpAllowedAttributes?: string;
  ajpAllowShutdown?: boolean;
  fcgiStderr?: boolean;
  /** --max-requests: a worker is replaced after this many requests (runs a main process). */
  maxRequests?: string;
  maxRequestsJitter?: string;
  /** --timeout: seconds a response may take (504 or aborted past it). */
  timeout?: string;
  /** --status-path: the status page's path, answered before the app. */
  statusPath?: string;
  /** --slow-request: seconds past which a request counts as slow. */
  slowRequest?: string;
  /** Builds the app instead of loading APP (--config: the file's app and pipeline; src/config). */
  loadApp?: () => Promise<App>;
}

interface Plan {
  protocol: string;
  bind: BindSpec;
  /** fd 0 chosen with no --protocol and no --bind (falls back to HTTP if it cannot listen). */
  implicitFd0?: boolean;
  /** Sockets from systemd socket activation (the first is served). */
  systemd?: { fds: number[]; names: string[] };
}

/** How workers are told the main process's plan (it may rest on LISTEN_PID, which only it matches). */
const PLAN_ENV = 'TSGI_WORKER_PLAN';

export function plan(o: ServeOptions): Plan {
  if (o.protocol !== undefined && !(o.protocol in PROTOCOLS)) {
    throw new UsageError('TSGI_BAD_PROTOCOL', `unknown protocol '${o.protocol}' (one of: ${Object.keys(PROTOCOLS).join(', ')})`);
  }
  const planned = cluster.isWorker ? process.env[PLAN_ENV] : undefined;
  if (planned) {
    const w = JSON.parse(planned) as { protocol: string; bind: string; implicitFd0?: boolean };
    return { protocol: w.protocol, bind: parseBind(w.bind), implicitFd0: w.implicitFd0 };
  }
  const systemd = takeSystemdSockets();
  if (o.bind !== undefined) return { protocol: o.protocol ?? 'http', bind: parseBind(o.bind) };
  // systemd socket activation: LISTEN_FDS sockets from fd 3, for the protocol given (default http).
  if (systemd) return { protocol: o.protocol ?? 'http', bind: { kind: 'fd', fd: systemd.fds[0]! }, systemd };
  const fd0 = stdinIsListeningSocket();
  // mod_fcgid and spawn-fcgi hand the program a listening socket on fd 0.
  if (fd0 && (o.protocol === undefined || o.protocol === 'fastcgi') && 'fastcgi' in PROTOCOLS) {
    return { protocol: 'fastcgi', bind: { kind: 'fd', fd: 0 }, implicitFd0: o.protocol === undefined };
  }
  const protocol = o.protocol ?? 'http';
  if (protocol === 'http') return { protocol, bind: DEFAULT_HTTP_BIND };
  return { protocol, bind: { kind: 'tcp', host: '127.0.0.1', port: PROTOCOLS[protocol]!.defaultPort } };
}

function int(name: string, v: string | undefined, min = 0): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError('TSGI_BAD_OPTION', `${name} wants a whole number >= ${min}, got '${v}'`);
  return n;
}

/** Sizes accept k/m/g suffixes (powers of 1024). */
function size(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const m = /^([0-9]+)([kmg]?)i?b?$/i.exec(v.trim());
  if (!m) throw new UsageError('TSGI_BAD_OPTION', `${name} wants a size such as 65536, 64k or 10m, got '${v}'`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase()]!;
  return Number(m[1]) * mult;
}

function seconds(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new UsageError('TSGI_BAD_OPTION', `${name} wants seconds >= 0, got '${v}'`);
  return Math.round(n * 1000);
}

export function limitsFrom(o: ServeOptions): Partial<Limits> {
  const l: Partial<Limits> = {};
  const set = <K extends keyof Limits>(k: K, v: number | undefined) => {
    if (v !== undefined) l[k] = v;
  };
  set('maxHeaderBytes', size('--max-header-size', o.maxHeaderSize));
  set('maxBodyBytes', size('--max-body-size', o.maxBodySize));
  set('maxRequestsPerConnection', int('--max-requests-per-conn', o.maxRequestsPerConn, 1));
  set('maxConnections', int('--max-connections', o.maxConnections, 1));
  set('idleTimeoutMs', seconds('--idle-timeout', o.idleTimeout));
  set('headerTimeoutMs', seconds('--header-timeout', o.headerTimeout));
  set('requestTimeoutMs', seconds('--timeout', o.timeout));
  return l;
}

function protocolOptions(o: ServeOptions): ProtocolOptions {
  let allowed: RegExp | undefined;
  if (o.ajpAllowedAttributes !== undefined) {
    try {
      allowed = new RegExp(`^(?:${o.ajpAllowedAttributes})$`);
    } catch (err) {
      throw new UsageError('TSGI_BAD_OPTION', `--ajp-allowed-attributes is not a valid regular expression: ${(err as Error).message}`);
    }
  }
  return {
    ajpSecret: o.ajpSecret ?? process.env.TSGI_AJP_SECRET,
    ajpPacketSize: int('--ajp-packet-size', o.ajpPacketSize, 1024),
    ajpAllowedAttributes: allowed,
    ajpAllowShutdown: o.ajpAllowShutdown,
    fcgiStderr: o.fcgiStderr,
  };
}

function workerCount(v: string): number {
  if (v === 'auto') return os.availableParallelism();
  return int('--workers', v, 1)!;
}

export async function serve(appSpec: string, o: ServeOptions): Promise<void> {
  const log = createLogger({ level: o.logLevel });
  const p = plan(o);
  const workers = workerCount(o.workers);
  const limits = limitsFrom(o);
  const socketMode = parseInt(o.socketMode, 8);
  if (!Number.isInteger(socketMode) || socketMode < 0 || socketMode > 0o777) {
    throw new UsageError('TSGI_BAD_OPTION', `--socket-mode wants an octal mode such as 660, got '${o.socketMode}'`);
  }
  const graceMs = seconds('--graceful-timeout', o.gracefulTimeout)!;
  const maxRequests = int('--max-requests', o.maxRequests, 0) ?? 0;
  const maxRequestsJitter = int('--max-requests-jitter', o.maxRequestsJitter, 0) ?? 0;
  const slowRequestMs = seconds('--slow-request', o.slowRequest) ?? 0;
  const statusPath = o.statusPath;
  if (statusPath !== undefined && !statusPath.startsWith('/')) {
    throw new UsageError('TSGI_BAD_OPTION', `--status-path wants a path that starts with /, got '${statusPath}'`);
  }
  if (p.systemd && p.systemd.fds.length > 1) {
    log.warn({ fds: p.systemd.fds, names: p.systemd.names }, `systemd passed ${p.systemd.fds.length} sockets; serving the first (fd ${p.systemd.fds[0]}) only`);
  }
  const info: ServerInfo = {
    pid: process.pid,
    protocol: p.protocol,
    bind: describeBind(p.bind),
    startedAt: new Date().toISOString(),
    slowRequestMs,
    timeoutMs: limits.requestTimeoutMs ?? 0,
    maxRequests: maxRequests || undefined,
  };
  // --max-requests recycles workers, which takes a main process even for one worker (as gunicorn).
  if ((workers > 1 || maxRequests > 0) && cluster.isPrimary) {
    if (!o.loadApp) checkAppFile(appSpec);
    return runPrimaryFor(log, p, workers, socketMode, graceMs, appSpec, info);
  }

  let app = o.loadApp ? await o.loadApp() : await loadApp(appSpec);
  if (o.lint) app = validator(app, log);
  const gw = new Gateway({
    app,
    log,
    protocol: p.protocol as Protocol,
    multiprocess: workers > 1,
    multithread: false,
    debug: o.debug,
    accessLog: o.accessLog ?? false,
    limits,
    worker: cluster.isWorker ? cluster.worker?.id : undefined,
    slowRequestMs,
    track: statusPath !== undefined,
    status: statusPath === undefined ? undefined : { path: statusPath, app: statusApp(() => collectStatus()) },
  });
  const generation = cluster.isWorker ? Number(process.env.TSGI_WORKER_GENERATION) || undefined : undefined;
  const workerSide = cluster.isWorker
    ? (await import('../net/workers.js')).attachWorker(gw, { log, maxRequests, maxRequestsJitter, generation })
    : undefined;
  const collectStatus = (): Promise<StatusReport> => {
    const alone = () => singleProcessReport(gw, { ...info, protocol: p.protocol, bind: describeBind(p.bind) });
    return workerSide ? workerSide.collect(alone) : Promise.resolve(alone());
  };
  // An error nothing caught ends the process, told as a log line; with workers, the main process
  // hears why and starts another.
  process.once('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception; exiting');
    void (workerSide?.sayFatal(err instanceof Error ? `${err.name}: ${err.message}` : String(err)) ?? Promise.resolve()).then(() => exit(1));
  });
  let ps: ProtocolServer | undefined;
  // The signal handlers go in before the listener: a signal that came once the port accepts
  // connections, but before they were in, would end the process by its default action.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    // A signal before the listener is up: nothing is accepted or running yet.
    if (ps === undefined) return exit(0);
    const server = ps;
    log.info({ signal, inFlight: gw.active }, 'stopping: no new connections, finishing requests in flight');
    // net.Server's close: stop accepting, keep the connections (http.Server's own close() would
    // also drop idle ones at once, a request on its way included); drain() ends them, and the
    // callback runs when the last one is closed, its answer written out.
    const closed = new Promise<void>((resolve) => net.Server.prototype.close.call(server.server, () => resolve()));
    server.drain();
    let left = false;
    const leave = () => {
      if (left) return;
      left = true;
      void (workerSide?.sayGoodbye() ?? Promise.resolve()).then(() => exit(0));
    };
    const timer = setTimeout(() => {
      log.warn({ inFlight: gw.active }, 'graceful timeout reached; exiting with requests still in flight');
      leave();
    }, graceMs);
    timer.unref();
    // Done when no request runs and every connection is closed. A web server may keep an idle
    // pooled connection open after our FIN (it reads it only when it next uses it): once the
    // grace for idle connections is over and the last answer had a moment to be written out,
    // such connections do not hold the exit.
    const graceOver = Date.now() + DRAIN_GRACE_MS + 250;
    void gw.whenIdle().then(() => Promise.race([closed, sleep(Math.max(graceOver - Date.now(), 250))])).then(leave);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  if (cluster.isWorker) {
    process.on('disconnect', () => stop('disconnect'));
    // Ctrl-C and SIGHUP reach the whole process group: stopping and reloading are the main
    // process's business (it sends SIGTERM to the workers it wants gone).
    process.on('SIGINT', () => {});
    process.on('SIGHUP', () => {});
  } else {
    process.on('SIGINT', () => stop('SIGINT'));
    // No main process: nothing can be reloaded, and SIGHUP's default would end the server.
    process.on('SIGHUP', () => log.warn({ signal: 'SIGHUP' }, 'SIGHUP ignored: reloading needs a main process (--workers 2 or more, or --max-requests)'));
  }
  ps = await PROTOCOLS[p.protocol]!.create(gw, protocolOptions(o));
  try {
    await listen(ps.server, p.bind, { socketMode });
  } catch (err) {
    // fd 0 was a socket but not a listening one (inetd style, or a socketpair for stdin): the
    // implicit choice falls back to the HTTP default, as the contract says.
    const implicit = p.implicitFd0 === true;
    if (!implicit || !(err instanceof UsageError) || !/EINVAL|ENOTSOCK|EOPNOTSUPP/.test(err.code)) throw err;
    log.info({ reason: err.message }, 'fd 0 is not a listening socket; serving HTTP instead');
    p.protocol = 'http';
    p.bind = DEFAULT_HTTP_BIND;
    gw.setProtocol('http');
    ps = await PROTOCOLS.http!.create(gw, protocolOptions(o));
    await listen(ps.server, p.bind, { socketMode });
  }
  log.info(
    { protocol: p.protocol, bind: describeBind(p.bind), app: appSpec, worker: cluster.isWorker ? cluster.worker?.id : undefined, generation, systemd: p.systemd ? true : undefined },
    `tsgi serving ${p.protocol} on ${describeBind(p.bind)}`,
  );
}

/** The main process does not load the app; a missing file is still told at once, not by each worker. */
function checkAppFile(appSpec: string): void {
  const { file } = parseAppSpec(appSpec);
  if (!fs.existsSync(file)) throw new UsageError('TSGI_APP_NOT_FOUND', `app file not found: ${file}`);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function exit(code: number): never {
  flushLogs();
  process.exit(code);
}

/** The main process of --workers N: see src/net/workers.ts. */
async function runPrimaryFor(log: Logger, p: Plan, n: number, socketMode: number, graceMs: number, appSpec: string, info: ServerInfo): Promise<void> {
  if (p.bind.kind === 'unix') {
    // Workers ask this process for the listening socket: create it with the right mode.
    await removeStaleSocket(p.bind.path);
    process.umask(0o777 & ~socketMode);
    const path = p.bind.path;
    cluster.once('listening', () => fs.chmodSync(path, socketMode));
  }
  const { runPrimary } = await import('../net/workers.js');
  const env = { [PLAN_ENV]: JSON.stringify({ protocol: p.protocol, bind: describeBind(p.bind), implicitFd0: p.implicitFd0 }) };
  runPrimary({ log, workers: n, graceMs, exit, info, env, inheritedSocket: p.bind.kind === 'fd' });
  log.info(
    { workers: n, app: appSpec, protocol: p.protocol, bind: describeBind(p.bind), systemd: p.systemd ? true : undefined },
    `tsgi main process: ${n} worker${n === 1 ? '' : 's'}`,
  );
}
