// The status page (--status-path), in the spirit of PHP-FPM's: processes, requests in flight,
// totals, slow requests. Answered by the server before the app, on any protocol; with workers
// the main process gathers every worker's figures over the cluster IPC channel (net/workers.ts).

import type { CurrentRequest, Gateway } from '../runner/gateway.js';
import type { App, Environ } from '../types.js';

/** A request under way, as the report shows it. */
export interface InFlightRequest {
  id: string;
  method: string;
  path: string;
  /** How long it has been running. */
  seconds: number;
}

/** One serving process's own figures. */
export interface ProcessSnapshot {
  pid: number;
  /** The cluster worker id (--workers). */
  worker?: number;
  generation?: number;
  startedAt: string;
  requests: number;
  inFlight: number;
  slowRequests: number;
  timeouts: number;
  current: InFlightRequest[];
}

export type WorkerState = 'starting' | 'serving' | 'retiring';

export interface WorkerReport extends ProcessSnapshot {
  state: WorkerState;
  /** False when the worker did not answer the main process in time (figures from before, if any). */
  responded: boolean;
}

/** What the main process (or the only one) knows about itself. */
export interface ServerInfo {
  pid: number;
  protocol: string;
  bind: string;
  startedAt: string;
  slowRequestMs: number;
  timeoutMs: number;
  maxRequests?: number;
}

export interface StatusReport {
  server: 'tsgi';
  pid: number;
  protocol: string;
  bind: string;
  startedAt: string;
  uptimeS: number;
  /** `single`: one process serves (no main process); `workers`: a main process and its workers. */
  mode: 'single' | 'workers';
  generation: number;
  reloads: number;
  /** Workers that died and were replaced. */
  workerRestarts: number;
  slowRequestS: number | null;
  timeoutS: number | null;
  maxRequests: number | null;
  workersTotal: number;
  /** Workers serving a request now. */
  workersBusy: number;
  workersIdle: number;
  /** Requests finished since start (of workers still running, and of those that stopped cleanly). */
  requests: number;
  inFlight: number;
  slowRequests: number;
  timeouts: number;
  /** Requests in flight now that have been running longer than slowRequestS. */
  slow: Array<InFlightRequest & { pid: number; worker?: number }>;
  workers: WorkerReport[];
  /** Some workers did not answer in time. */
  partial?: true;
}

/** A worker's own figures (or the single process's). */
export function processSnapshot(gw: Gateway, generation?: number, startedAt = PROCESS_STARTED): ProcessSnapshot {
  const now = Date.now();
  const current: InFlightRequest[] = [];
  for (const r of gw.current?.values() ?? []) current.push(inFlight(r, now));
  return {
    pid: process.pid,
    worker: gw.worker,
    generation,
    startedAt,
    requests: gw.stats.requests,
    inFlight: gw.active,
    slowRequests: gw.stats.slow,
    timeouts: gw.stats.timeouts,
    current,
  };
}

const PROCESS_STARTED = new Date().toISOString();

function inFlight(r: CurrentRequest, now: number): InFlightRequest {
  return { id: r.id, method: r.method, path: r.path, seconds: Math.round(now - r.since) / 1000 };
}

/** Totals of workers no longer running. */
export interface Retired {
  requests: number;
  slowRequests: number;
  timeouts: number;
}

export interface ReportParts {
  info: ServerInfo;
  mode: StatusReport['mode'];
  generation: number;
  reloads: number;
  workerRestarts: number;
  workers: WorkerReport[];
  retired: Retired;
}

export function buildReport(p: ReportParts): StatusReport {
  const { info } = p;
  const slowS = info.slowRequestMs > 0 ? info.slowRequestMs / 1000 : null;
  const slow: StatusReport['slow'] = [];
  let requests = p.retired.requests;
  let slowRequests = p.retired.slowRequests;
  let timeouts = p.retired.timeouts;
  let inFlightNow = 0;
  let busy = 0;
  for (const w of p.workers) {
    requests += w.requests;
    slowRequests += w.slowRequests;
    timeouts += w.timeouts;
    inFlightNow += w.inFlight;
    if (w.inFlight > 0) busy++;
    if (slowS === null) continue;
    for (const r of w.current) if (r.seconds >= slowS) slow.push({ ...r, pid: w.pid, worker: w.worker });
  }
  slow.sort((a, b) => b.seconds - a.seconds);
  const report: StatusReport = {
    server: 'tsgi',
    pid: info.pid,
    protocol: info.protocol,
    bind: info.bind,
    startedAt: info.startedAt,
    uptimeS: Math.round((Date.now() - Date.parse(info.startedAt)) / 100) / 10,
    mode: p.mode,
    generation: p.generation,
    reloads: p.reloads,
    workerRestarts: p.workerRestarts,
    slowRequestS: slowS,
    timeoutS: info.timeoutMs > 0 ? info.timeoutMs / 1000 : null,
    maxRequests: info.maxRequests ?? null,
    workersTotal: p.workers.length,
    workersBusy: busy,
    workersIdle: p.workers.filter((w) => w.inFlight === 0 && w.state === 'serving').length,
    requests,
    inFlight: inFlightNow,
    slowRequests,
    timeouts,
    slow,
    workers: p.workers,
  };
  if (p.workers.some((w) => !w.responded)) report.partial = true;
  return report;
}

/** The report of a process that serves alone (no main process). */
export function singleProcessReport(gw: Gateway, info: ServerInfo): StatusReport {
  const self: WorkerReport = { ...processSnapshot(gw, undefined, info.startedAt), state: 'serving', responded: true };
  return buildReport({ info, mode: 'single', generation: 1, reloads: 0, workerRestarts: 0, workers: [self], retired: { requests: 0, slowRequests: 0, timeouts: 0 } });
}

/**
 * The status page as an app: JSON by default; plain text with `?text`, or when the client
 * accepts text/plain and not JSON (a person with curl -H 'Accept: text/plain').
 */
export function statusApp(collect: () => Promise<StatusReport>): App {
  return async (environ: Environ, startResponse) => {
    const report = await collect();
    const asText = wantsText(environ.QUERY_STRING ?? '', typeof environ.HTTP_ACCEPT === 'string' ? environ.HTTP_ACCEPT : '');
    const body = asText ? formatText(report) : JSON.stringify(report) + '\n';
    startResponse('200 OK', [
      ['Content-Type', asText ? 'text/plain; charset=utf-8' : 'application/json'],
      ['Cache-Control', 'no-store'],
    ]);
    return [body];
  };
}

function wantsText(query: string, accept: string): boolean {
  const flags = new Set(query.split('&').map((kv) => kv.split('=')[0]));
  if (flags.has('text')) return true;
  if (flags.has('json')) return false;
  return /\btext\/plain\b/i.test(accept) && !/\bapplication\/json\b/i.test(accept);
}

export function formatText(r: StatusReport): string {
  const line = (k: string, v: unknown) => `${(k + ':').padEnd(18)}${String(v)}\n`;
  let s = '';
  s += line('server', r.server);
  s += line('pid', r.pid);
  s += line('protocol', r.protocol);
  s += line('bind', r.bind);
  s += line('start time', r.startedAt);
  s += line('uptime', `${r.uptimeS} s`);
  s += line('mode', r.mode);
  s += line('generation', r.generation);
  s += line('reloads', r.reloads);
  s += line('worker restarts', r.workerRestarts);
  s += line('workers', `${r.workersTotal} (busy ${r.workersBusy}, idle ${r.workersIdle})`);
  s += line('requests', r.requests);
  s += line('in flight', r.inFlight);
  s += line('slow requests', r.slowRequestS === null ? `${r.slowRequests} (--slow-request off)` : `${r.slowRequests} (over ${r.slowRequestS} s)`);
  s += line('timeouts', r.timeoutS === null ? `${r.timeouts} (--timeout off)` : `${r.timeouts} (over ${r.timeoutS} s)`);
  s += line('max requests', r.maxRequests ?? 'off');
  if (r.partial) s += line('partial', 'some workers did not answer in time');
  s += '\nworker  pid      gen  state     requests  in flight  slow  timeouts  started\n';
  for (const w of r.workers) {
    s += `${String(w.worker ?? '-').padEnd(8)}${String(w.pid).padEnd(9)}${String(w.generation ?? '-').padEnd(5)}${w.state.padEnd(10)}`;
    s += `${String(w.requests).padEnd(10)}${String(w.inFlight).padEnd(11)}${String(w.slowRequests).padEnd(6)}${String(w.timeouts).padEnd(10)}${w.startedAt}`;
    s += w.responded ? '\n' : '  (did not answer)\n';
  }
  const running = r.workers.flatMap((w) => w.current.map((c) => ({ ...c, worker: w.worker, pid: w.pid })));
  if (running.length) {
    s += '\nin flight:\n';
    for (const c of running.sort((a, b) => b.seconds - a.seconds)) {
      const slow = r.slowRequestS !== null && c.seconds >= r.slowRequestS ? '  SLOW' : '';
      s += `  ${c.seconds.toFixed(3)} s  ${c.method} ${c.path}  id=${c.id}  pid=${c.pid}${c.worker === undefined ? '' : ` worker=${c.worker}`}${slow}\n`;
    }
  }
  return s;
}
