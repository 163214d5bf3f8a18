// The main process of `--workers N` (node:cluster): forks the workers, replaces one that dies
// (backing off when they die at start-up), reloads on SIGHUP without ever ceasing to accept,
// and stops them all on SIGTERM/SIGINT.

import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../log-line.js';

export interface PrimaryOptions {
  log: Logger;
  workers: number;
  graceMs: number;
  /** Called once everything is stopped; exits the process. */
  exit: (code: number) => never;
}

interface WorkerState {
  generation: number;
  startedAt: number;
  retiring: boolean;
  listening: boolean;
}

/** A worker that dies sooner than this after its start counts as a start-up failure. */
const STARTUP_MS = 3000;
const MAX_BACKOFF_MS = 30_000;

export function runPrimary(o: PrimaryOptions): void {
  const { log } = o;
  const state = new Map<number, WorkerState>();
  let generation = 1;
  let stopping = false;
  let backoff = 0;

  const fork = (gen: number): Worker => {
    const w = cluster.fork({ TSGI_WORKER_GENERATION: String(gen) });
    state.set(w.id, { generation: gen, startedAt: Date.now(), retiring: false, listening: false });
    return w;
  };
  const live = () => [...state.entries()].filter(([, s]) => !s.retiring);

  cluster.on('listening', (w) => {
    const s = state.get(w.id);
    if (!s) return;
    s.listening = true;
    backoff = 0;
    // A reload: each new worker that listens retires one worker of an older generation.
    if (s.generation === generation) {
      const old = live().find(([, t]) => t.generation < generation);
      if (old) retire(old[0], 'reload: replaced by a worker of the new generation');
    }
  });

  cluster.on('exit', (w, code, signal) => {
    const s = state.get(w.id);
    state.delete(w.id);
    if (stopping) {
      if (state.size === 0) o.exit(0);
      return;
    }
    if (!s || s.retiring) return;
    const early = Date.now() - s.startedAt < STARTUP_MS && !s.listening;
    if (early) backoff = Math.min(MAX_BACKOFF_MS, backoff ? backoff * 2 : 500);
    log.error(
      { worker: w.id, code, signal, startup: early, restartInMs: early ? backoff : 100 },
      early ? 'worker died while starting; starting a new one after a pause' : 'worker died; starting a new one',
    );
    // During a reload whose new workers fail, the old generation keeps serving.
    const gen = s.generation;
    setTimeout(() => {
      if (!stopping && live().filter(([, t]) => t.generation === gen).length < o.workers) fork(gen);
    }, early ? backoff : 100).unref();
  });

  const retire = (id: number, why: string) => {
    const s = state.get(id);
    const w = cluster.workers?.[id];
    if (!s || !w) return;
    s.retiring = true;
    log.info({ worker: id, generation: s.generation }, why);
    // The worker stops accepting, finishes what it holds (graceful timeout), and exits.
    w.process.kill('SIGTERM');
  };

  for (let i = 0; i < o.workers; i++) fork(generation);

  const stop = (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal: sig, workers: state.size }, 'stopping workers');
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    setTimeout(() => o.exit(0), o.graceMs + 2000).unref();
    if (state.size === 0) o.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    if (stopping) return;
    generation++;
    log.info({ generation, workers: o.workers }, 'SIGHUP: reloading; new workers load the app afresh');
    for (let i = 0; i < o.workers; i++) fork(generation);
  });
}
