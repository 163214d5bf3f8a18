// Shared by the workers*.test.ts files: waiting for N workers, a client loop that keeps requests
// going while the test reloads, recycles or kills, and the log lines of the main process.

import http from 'node:http';
import { request, type Response } from './http.js';
import { type Proc, sleep, within } from './spawn.js';

/** Log records whose msg starts with `prefix`. */
export function records(p: Proc, prefix: string): Array<Record<string, unknown>> {
  return p.logRecords().filter((r) => typeof r.msg === 'string' && r.msg.startsWith(prefix));
}

/** Resolves once `check()` holds (polled every 50 ms); rejects with `timeout: what` after `ms`. */
export async function until(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timeout: ${what} (after ${ms} ms)`);
    await sleep(50);
  }
}

/** Waits until `n` "tsgi serving" lines were logged in all (workers listening, replacements included). */
export function servingLines(p: Proc, n: number, ms = 15_000): Promise<void> {
  return until(() => records(p, 'tsgi serving').length >= n, `${n} "tsgi serving" lines from pid ${p.pid}; stderr:\n${p.stderrLines().join('\n')}`, ms);
}

export interface LoadResult {
  ok: number;
  failures: string[];
  /** JSON bodies of the successful answers (prod-app.mjs /pid), in order. */
  bodies: Array<Record<string, unknown>>;
}

/**
 * `concurrency` clients each doing one request after the other until `stop()` is called. Fresh
 * connections by default (every request goes through accept); `keepAlive` reuses one connection
 * per client, as a browser or a proxy does.
 */
export function loadLoop(port: number, o: { path?: string; concurrency?: number; keepAlive?: boolean; pauseMs?: number } = {}) {
  const result: LoadResult = { ok: 0, failures: [], bodies: [] };
  let stopped = false;
  const agents: http.Agent[] = [];
  const client = async () => {
    const agent = o.keepAlive ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : undefined;
    if (agent) agents.push(agent);
    while (!stopped) {
      let res: Response;
      try {
        res = await request(port, { path: o.path ?? '/pid', agent, timeoutMs: 10_000 });
      } catch (e) {
        result.failures.push(`request failed: ${(e as Error).message}`);
        continue;
      }
      if (res.status !== 200 || !res.complete) {
        result.failures.push(`status ${res.status}, complete ${res.complete}: ${res.body.subarray(0, 200).toString()}`);
        continue;
      }
      result.ok++;
      try {
        result.bodies.push(JSON.parse(res.body.toString()) as Record<string, unknown>);
      } catch {
        result.failures.push(`not JSON: ${res.body.subarray(0, 200).toString()}`);
      }
      if (o.pauseMs) await sleep(o.pauseMs);
    }
  };
  const running = Promise.all(Array.from({ length: o.concurrency ?? 4 }, client));
  return {
    result,
    async stop(): Promise<LoadResult> {
      stopped = true;
      await within(running, 15_000, 'the client loops to finish');
      for (const a of agents) a.destroy();
      return result;
    },
  };
}

/** Distinct values of `key` among the bodies. */
export function distinct(bodies: Array<Record<string, unknown>>, key: string): Set<unknown> {
  return new Set(bodies.map((b) => b[key]));
}
