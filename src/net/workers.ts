// The process model of `--workers N` (node:cluster), from both sides. The main process forks the
// workers, replaces one that dies (backing off while replacements die at start-up), recycles a
// worker past --max-requests, reloads on SIGHUP by generations, stops them all on SIGTERM/SIGINT,
// and gathers their figures for the status page. Each worker answers its part over IPC.
//
// The listening socket stays with the main process (cluster's round-robin handle): a worker that
// starts joins it, one that stops leaves it, and a new worker always joins before the one it
// replaces leaves, so accepting never stops during a reload or a recycle.

import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../log-line.js';
import type { Gateway } from '../runner/gateway.js';
import { buildReport, processSnapshot, type ProcessSnapshot, type Retired, type ServerInfo, type StatusReport, type WorkerReport } from './status.js';

export interface PrimaryOptions {
  log: Logger;
  workers: number;
  graceMs: number;
  /** Exits the process (logs flushed). */
  exit: (code: number) => never;
  /** What the status page says of the server. */
  info: ServerInfo;
  /** Environment given to every worker (the listening plan). */
  env?: Record<string, string>;
  /**
   * The socket was inherited (fd 0, systemd): node:cluster closes it once no worker listens on it
   * any more, and it cannot be opened again.
   */
  inheritedSocket?: boolean;
}

/** Messages between the main process and the workers. */
type Message =
  | { tsgi: 'snapshot'; seq: number; snapshot?: ProcessSnapshot }
  | { tsgi: 'status'; seq: number; report?: StatusReport }
  | { tsgi: 'recycle'; requests: number }
  | { tsgi: 'final'; seq: number; snapshot?: ProcessSnapshot }
  | { tsgi: 'bye' }
  | { tsgi: 'fatal'; message: string };

interface Proc {
  worker: Worker;
  slot: Slot;
  generation: number;
  startedAt: number;
  listening: boolean;
  retiring: boolean;
  snapshot?: ProcessSnapshot;
  /** What the worker said before dying (an uncaught exception). */
  fatal?: string;
}

/** One of the N places for a worker: the one serving, and the one starting to take over. */
interface Slot {
  current?: Proc;
  next?: Proc;
  /** Why `next` was started: a reload, --max-requests, a replacement. */
  nextReason?: string;
  backoffMs: number;
  timer?: NodeJS.Timeout;
}

const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;
/** A worker that died while serving is replaced after this pause. */
const RESTART_MS = 100;
/** How long the status page waits for each worker's figures. */
const SNAPSHOT_WAIT_MS = 1000;

const isMessage = (m: unknown): m is Message => typeof m === 'object' && m !== null && typeof (m as { tsgi?: unknown }).tsgi === 'string';

/** Sends without ever throwing: a worker may be gone by now. */
function send(w: Worker | NodeJS.Process, m: Message): void {
  try {
    if ('isConnected' in w ? w.isConnected() : w.connected) w.send!(m, undefined, {}, () => {});
  } catch {
    // the channel closed meanwhile
  }
}

export function runPrimary(o: PrimaryOptions): void {
  const { log } = o;
  const procs = new Map<number, Proc>();
  const slots: Slot[] = Array.from({ length: o.workers }, () => ({ backoffMs: 0 }));
  const retired: Retired = { requests: 0, slowRequests: 0, timeouts: 0 };
  let generation = 1;
  let reloads = 0;
  let restarts = 0;
  let stopping = false;
  let everListened = false;
  let seq = 0;
  const waiting = new Map<number, Map<number, (s: ProcessSnapshot) => void>>();

  const startNext = (slot: Slot, reason: string) => {
    if (stopping || slot.next) return;
    clearTimeout(slot.timer);
    slot.timer = undefined;
    const worker = cluster.fork({ ...o.env, TSGI_WORKER_GENERATION: String(generation) });
    const p: Proc = { worker, slot, generation, startedAt: Date.now(), listening: false, retiring: false };
    procs.set(worker.id, p);
    slot.next = p;
    slot.nextReason = reason;
  };

  const startLater = (slot: Slot, ms: number, reason: string) => {
    if (stopping || slot.timer || slot.next) return;
    // Not unref'd: with every worker gone, this timer is what the main process waits for.
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      startNext(slot, reason);
    }, ms);
  };

  const retire = (p: Proc, why: string) => {
    if (p.retiring) return;
    p.retiring = true;
    log.info({ worker: p.worker.id, workerPid: p.worker.process.pid, generation: p.generation }, why);
    // The worker stops accepting, finishes what it holds (--graceful-timeout) and exits.
    p.worker.process.kill('SIGTERM');
  };

  /** Workers in cluster's round-robin handle: node closes the listening socket when none is left. */
  const members = () => [...procs.values()].filter((p) => p.listening && !p.retiring).length;

  cluster.on('listening', (w) => {
    const p = procs.get(w.id);
    if (!p || p.listening) return;
    p.listening = true;
    everListened = true;
    const slot = p.slot;
    if (slot.next !== p) return;
    const old = slot.current;
    slot.current = p;
    slot.next = undefined;
    slot.backoffMs = 0;
    if (old) retire(old, `${slot.nextReason ?? 'replaced'}: the new worker ${w.id} (pid ${w.process.pid}) is listening; this one finishes its requests and exits`);
    // It was starting when a reload came: a worker of the new generation takes over from it.
    if (p.generation < generation) startNext(slot, 'reload');
  });

  cluster.on('exit', (w, code, signal) => {
    const p = procs.get(w.id);
    if (!p) return;
    procs.delete(w.id);
    for (const wait of waiting.values()) wait.delete(w.id);
    if (p.snapshot) {
      retired.requests += p.snapshot.requests;
      retired.slowRequests += p.snapshot.slowRequests;
      retired.timeouts += p.snapshot.timeouts;
    }
    const slot = p.slot;
    if (slot.current === p) slot.current = undefined;
    if (slot.next === p) slot.next = undefined;
    if (stopping) {
      if (procs.size === 0) o.exit(exitCode);
      return;
    }
    if (p.retiring) return;
    const reason = (signal ? `killed by ${signal}` : `exited with code ${code}`) + (p.fatal ? `: ${p.fatal}` : '');
    const where = { worker: w.id, workerPid: w.process.pid, generation: p.generation, code, signal, reason };
    if (!p.listening) {
      // It died before it could serve. At the very first start, a usage error (exit code 2: app
      // not found or failing to load, address in use; the worker printed why) ends the server.
      if (!everListened && code === 2) {
        log.error(where, 'worker could not start; stopping');
        stop('start-up failure', 2);
        return;
      }
      slot.backoffMs = Math.min(MAX_BACKOFF_MS, slot.backoffMs ? slot.backoffMs * 2 : FIRST_BACKOFF_MS);
      log.error(
        { ...where, restartInMs: slot.backoffMs, stillServing: slot.current ? slot.current.worker.id : undefined },
        slot.current ? 'new worker died while starting; the old one keeps serving; trying again after a pause' : 'worker died while starting; trying again after a pause',
      );
      startLater(slot, slot.backoffMs, slot.nextReason ?? 'replacement');
      return;
    }
    restarts++;
    log.error({ ...where, restartInMs: RESTART_MS }, 'worker died; starting a new one');
    if (members() === 0) {
      if (o.inheritedSocket) {
        // node:cluster has closed the inherited socket with its last listener: it cannot be
        // opened again. Exit, so that the supervisor (systemd, mod_fcgid) starts tsgi afresh.
        log.fatal({ code: 'TSGI_LISTEN_SOCKET_LOST' }, 'every worker is gone and the inherited listening socket closed with them; exiting 1 for the supervisor to restart tsgi');
        stop('listening socket lost', 1);
        return;
      }
      log.warn({ code: 'TSGI_NO_WORKER' }, 'no worker is listening: connections are refused until the next one starts');
    }
    if (!slot.next) startLater(slot, RESTART_MS, 'replacement of a worker that died');
  });

  cluster.on('message', (w, m: unknown) => {
    if (!isMessage(m)) return;
    const p = procs.get(w.id);
    if (!p) return;
    switch (m.tsgi) {
      case 'snapshot':
        if (m.snapshot) waiting.get(m.seq)?.get(w.id)?.(m.snapshot);
        break;
      case 'final':
        // The reply tells the worker that no connection is on its way to it any more (below).
        if (m.snapshot) p.snapshot = m.snapshot;
        send(w, { tsgi: 'final', seq: m.seq });
        break;
      case 'fatal':
        p.fatal = m.message;
        break;
      case 'recycle':
        if (stopping || p.retiring || p.slot.current !== p || p.slot.next) break;
        log.info({ worker: w.id, workerPid: w.process.pid, requests: m.requests }, 'worker reached --max-requests; starting its replacement');
        startNext(p.slot, 'max-requests');
        break;
      case 'status':
        void collect().then((report) => send(w, { tsgi: 'status', seq: m.seq, report }));
        break;
    }
  });

  /** Every worker's figures (those that answer within SNAPSHOT_WAIT_MS), and the main process's. */
  const collect = async (): Promise<StatusReport> => {
    const n = ++seq;
    const got = new Map<number, ProcessSnapshot>();
    const all = [...procs.values()];
    await new Promise<void>((resolve) => {
      const wait = new Map<number, (s: ProcessSnapshot) => void>();
      waiting.set(n, wait);
      const done = () => {
        clearTimeout(timer);
        waiting.delete(n);
        resolve();
      };
      const timer = setTimeout(done, SNAPSHOT_WAIT_MS);
      for (const p of all) {
        wait.set(p.worker.id, (s) => {
          got.set(p.worker.id, s);
          p.snapshot = s;
          wait.delete(p.worker.id);
          if (wait.size === 0) done();
        });
        send(p.worker, { tsgi: 'snapshot', seq: n });
      }
      if (all.length === 0) done();
    });
    const workers: WorkerReport[] = all.map((p) => {
      const s = got.get(p.worker.id) ?? p.snapshot ?? {
        pid: p.worker.process.pid ?? 0,
        worker: p.worker.id,
        generation: p.generation,
        startedAt: new Date(p.startedAt).toISOString(),
        requests: 0,
        inFlight: 0,
        slowRequests: 0,
        timeouts: 0,
        current: [],
      };
      return { ...s, state: p.retiring ? 'retiring' : p.listening ? 'serving' : 'starting', responded: got.has(p.worker.id) };
    });
    workers.sort((a, b) => (a.worker ?? 0) - (b.worker ?? 0));
    return buildReport({ info: o.info, mode: 'workers', generation, reloads, workerRestarts: restarts, workers, retired });
  };

  let exitCode = 0;
  const stop = (why: string, code = 0) => {
    if (stopping) return;
    stopping = true;
    exitCode = code;
    log.info({ signal: why, workers: procs.size }, 'stopping workers');
    for (const s of slots) clearTimeout(s.timer);
    for (const p of procs.values()) p.worker.process.kill('SIGTERM');
    setTimeout(() => o.exit(exitCode), o.graceMs + 2000).unref();
    if (procs.size === 0) o.exit(exitCode);
  };

  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    if (stopping) return;
    generation++;
    reloads++;
    log.info({ generation, workers: o.workers }, 'SIGHUP: reloading; new workers load the app afresh and take over as each one listens');
    for (const slot of slots) {
      // A worker still starting brings the code of before: it is replaced once it listens (see
      // 'listening'), not killed now, since it may already be taking connections (node:cluster
      // strands a connection handed to a worker that dies).
      slot.backoffMs = 0;
      startNext(slot, 'reload');
    }
  });

  for (const slot of slots) startNext(slot, 'start');
}

export interface WorkerSideOptions {
  log: Logger;
  /** --max-requests: ask to be replaced after this many requests (plus jitter); 0 = never. */
  maxRequests: number;
  maxRequestsJitter: number;
  generation?: number;
}

export interface WorkerSide {
  /** The whole server's status report, from the main process (this worker's alone if it does not answer). */
  collect(fallback: () => StatusReport): Promise<StatusReport>;
  /**
   * Before this worker exits (its server closed): hands the final figures to the main process and
   * makes sure no connection is still on its way to it (see below).
   */
  sayGoodbye(): Promise<void>;
  /** Tells the main process why this worker is about to die. */
  sayFatal(message: string): Promise<void>;
}

/** A worker's side of the IPC channel: figures on request, --max-requests, last words. */
export function attachWorker(gw: Gateway, o: WorkerSideOptions): WorkerSide {
  let seq = 0;
  const pending = new Map<number, (r: StatusReport) => void>();
  const finals = new Map<number, () => void>();
  process.on('message', (m: unknown) => {
    if (!isMessage(m)) return;
    if (m.tsgi === 'snapshot') send(process, { tsgi: 'snapshot', seq: m.seq, snapshot: processSnapshot(gw, o.generation) });
    else if (m.tsgi === 'status' && m.report) pending.get(m.seq)?.(m.report);
    else if (m.tsgi === 'final') finals.get(m.seq)?.();
  });
  if (o.maxRequests > 0) {
    const limit = o.maxRequests + Math.floor(Math.random() * (o.maxRequestsJitter + 1));
    let asked = false;
    gw.onRequestDone = () => {
      if (asked || gw.stats.requests < limit) return;
      asked = true;
      o.log.info({ requests: gw.stats.requests, limit }, 'reached --max-requests; asking the main process for a replacement');
      send(process, { tsgi: 'recycle', requests: gw.stats.requests });
    };
  }
  const sendAndWait = (m: Message) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 500);
      try {
        if (!process.connected || !process.send) throw new Error('no channel');
        process.send(m, undefined, {}, () => {
          clearTimeout(t);
          resolve();
        });
      } catch {
        clearTimeout(t);
        resolve();
      }
    });
  return {
    collect(fallback) {
      const n = ++seq;
      return new Promise<StatusReport>((resolve) => {
        const timer = setTimeout(() => {
          pending.delete(n);
          resolve({ ...fallback(), partial: true });
        }, SNAPSHOT_WAIT_MS * 3);
        pending.set(n, (r) => {
          clearTimeout(timer);
          pending.delete(n);
          resolve(r);
        });
        send(process, { tsgi: 'status', seq: n });
      });
    },
    // node:cluster's main process hands each connection to a worker and waits for its answer; a
    // worker that exits with one on the way strands it there (the client hangs). The channel keeps
    // order both ways: once the main process answers a message sent after server.close(), every
    // connection it sent before has arrived and been turned back; 'bye' is written after those
    // refusals, so when its write completes they are out too, and exiting loses nothing.
    async sayGoodbye() {
      const n = ++seq;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 1000);
        finals.set(n, () => {
          clearTimeout(t);
          resolve();
        });
        send(process, { tsgi: 'final', seq: n, snapshot: processSnapshot(gw, o.generation) });
      });
      finals.delete(n);
      await sendAndWait({ tsgi: 'bye' });
    },
    sayFatal: (message) => sendAndWait({ tsgi: 'fatal', message }),
  };
}
