// bin/tsgi as the backend of a real web server: `serve APP --protocol P --bind ...` on a free
// loopback port or a Unix socket, ready once it accepts, stopped by pid (tracked by daemon.ts).

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Daemon, type Endpoint, freePort, startDaemon } from './daemon.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const APPS_DIR = 'test/fixtures/apps';

export interface TsgiOptions {
  /** Checkout root holding bin/tsgi (default: this one; a copy when www-data must read it). */
  root?: string;
  /** App path relative to root, e.g. test/fixtures/apps/fcgi-routes.mjs. */
  app: string;
  protocol: string;
  /** Unix socket path; a free TCP port on 127.0.0.1 otherwise. */
  socket?: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
}

export interface Tsgi {
  daemon: Daemon;
  endpoint: Endpoint;
  /** The --bind argument it was given. */
  bind: string;
  /** JSON log records on its standard error so far. */
  logRecords(): Array<Record<string, unknown>>;
}

export async function startTsgi(o: TsgiOptions): Promise<Tsgi> {
  const root = o.root ?? ROOT;
  const endpoint: Endpoint = o.socket ? { path: o.socket } : { port: await freePort() };
  const bind = 'path' in endpoint ? `unix:${endpoint.path}` : `127.0.0.1:${endpoint.port}`;
  const daemon = await startDaemon({
    name: `tsgi ${o.protocol} ${path.basename(o.app)} on ${bind}`,
    command: process.execPath,
    args: [path.join(root, 'bin/tsgi'), 'serve', path.join(root, o.app), '--protocol', o.protocol, '--bind', bind, ...(o.args ?? [])],
    cwd: root,
    env: { ...process.env, ...o.env },
    ready: [endpoint],
  });
  return {
    daemon,
    endpoint,
    bind,
    logRecords() {
      const recs: Array<Record<string, unknown>> = [];
      for (const line of daemon.output().split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          recs.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // a partial line
        }
      }
      return recs;
    },
  };
}
