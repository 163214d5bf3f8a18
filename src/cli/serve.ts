// `tsgi serve APP`: load the app, listen, serve until SIGTERM/SIGINT, then drain and exit 0.

import cluster from 'node:cluster';
import fs from 'node:fs';
import os from 'node:os';
import { UsageError } from '../errors.js';
import { loadApp } from '../load-app.js';
import { createLogger, flushLogs, type Logger } from '../log.js';
import {
  DEFAULT_HTTP_BIND,
  describeBind,
  listen,
  parseBind,
  removeStaleSocket,
  stdinIsListeningSocket,
  type BindSpec,
} from '../net/listen.js';
import { PROTOCOLS, type ProtocolOptions } from '../net/protocols.js';
import { Gateway, type Limits } from '../runner/gateway.js';
import { validator } from '../runner/validate.js';
import type { Protocol } from '../types.js';

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
  maxRequests?: string;
  maxConnections?: string;
  idleTimeout?: string;
  headerTimeout?: string;
  ajpSecret?: string;
  ajpPacketSize?: string;
  ajpAllowedAttributes?: string;
  ajpAllowShutdown?: boolean;
  fcgiStderr?: boolean;
}

interface Plan {
  protocol: string;
  bind: BindSpec;
}

export function plan(o: ServeOptions): Plan {
  if (o.protocol !== undefined && !(o.protocol in PROTOCOLS)) {
    throw new UsageError('TSGI_BAD_PROTOCOL', `unknown protocol '${o.protocol}' (one of: ${Object.keys(PROTOCOLS).join(', ')})`);
  }
  if (o.bind !== undefined) return { protocol: o.protocol ?? 'http', bind: parseBind(o.bind) };
  const fd0 = stdinIsListeningSocket();
  // mod_fcgid and spawn-fcgi hand the program a listening socket on fd 0.
  if (fd0 && (o.protocol === undefined || o.protocol === 'fastcgi') && 'fastcgi' in PROTOCOLS) {
    return { protocol: 'fastcgi', bind: { kind: 'fd', fd: 0 } };
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
  set('maxRequestsPerConnection', int('--max-requests-per-conn', o.maxRequests, 1));
  set('maxConnections', int('--max-connections', o.maxConnections, 1));
  set('idleTimeoutMs', seconds('--idle-timeout', o.idleTimeout));
  set('headerTimeoutMs', seconds('--header-timeout', o.headerTimeout));
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
  if (workers > 1 && cluster.isPrimary) return runPrimaryFor(log, p, workers, socketMode, graceMs, appSpec);

  let app = await loadApp(appSpec);
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
  });
  let ps = await PROTOCOLS[p.protocol]!.create(gw, protocolOptions(o));
  try {
    await listen(ps.server, p.bind, { socketMode });
  } catch (err) {
    // fd 0 was a socket but not a listening one (inetd style, or a socketpair for stdin): the
    // implicit choice falls back to the HTTP default, as the contract says.
    const implicit = o.protocol === undefined && o.bind === undefined && p.bind.kind === 'fd';
    if (!implicit || !(err instanceof UsageError) || !/EINVAL|ENOTSOCK|EOPNOTSUPP/.test(err.code)) throw err;
    log.info({ reason: err.message }, 'fd 0 is not a listening socket; serving HTTP instead');
    p.protocol = 'http';
    p.bind = DEFAULT_HTTP_BIND;
    gw.setProtocol('http');
    ps = await PROTOCOLS.http!.create(gw, protocolOptions(o));
    await listen(ps.server, p.bind, { socketMode });
  }
  log.info({ protocol: p.protocol, bind: describeBind(p.bind), app: appSpec, worker: cluster.isWorker ? cluster.worker?.id : undefined }, `tsgi serving ${p.protocol} on ${describeBind(p.bind)}`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, inFlight: gw.active }, 'stopping: no new connections, finishing requests in flight');
    ps.server.close();
    ps.drain();
    const timer = setTimeout(() => {
      log.warn({ inFlight: gw.active }, 'graceful timeout reached; exiting with requests still in flight');
      exit(0);
    }, graceMs);
    timer.unref();
    void gw.whenIdle().then(() => exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (cluster.isWorker) process.on('disconnect', () => stop('disconnect'));
}

function exit(code: number): never {
  flushLogs();
  process.exit(code);
}

/** The main process of --workers N: see src/net/workers.ts. */
async function runPrimaryFor(log: Logger, p: Plan, n: number, socketMode: number, graceMs: number, appSpec: string): Promise<void> {
  if (p.bind.kind === 'unix') {
    // Workers ask this process for the listening socket: create it with the right mode.
    await removeStaleSocket(p.bind.path);
    process.umask(0o777 & ~socketMode);
    const path = p.bind.path;
    cluster.once('listening', () => fs.chmodSync(path, socketMode));
  }
  const { runPrimary } = await import('../net/workers.js');
  runPrimary({ log, workers: n, graceMs, exit });
  log.info({ workers: n, app: appSpec, bind: describeBind(p.bind) }, `tsgi main process: ${n} workers`);
}
