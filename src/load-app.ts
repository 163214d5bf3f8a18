// Loads the app named on the command line: `path` or `path:exportName`, .js/.mjs/.cjs directly,
// .ts/.mts/.cts through tsx (loaded only then, so a .js app pays nothing for it).

import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { UsageError } from './errors.js';
import type { App } from './types.js';

export interface AppSpec {
  file: string;
  exportName: string;
}

export function parseAppSpec(spec: string): AppSpec {
  // `app.mjs:application`; a colon followed by something that is not an identifier is part of
  // the path.
  const m = /^(.*):([A-Za-z_$][\w$]*)$/.exec(spec);
  if (m && m[1]) return { file: m[1], exportName: m[2]! };
  return { file: spec, exportName: 'default' };
}

export async function loadModule(spec: string): Promise<{ value: unknown; spec: AppSpec; where: string }> {
  const s = parseAppSpec(spec);
  const file = path.resolve(s.file);
  if (!fs.existsSync(file)) throw new UsageError('TSGI_APP_NOT_FOUND', `app file not found: ${s.file}`);
  if (fs.statSync(file).isDirectory()) throw new UsageError('TSGI_APP_NOT_FOUND', `app path is a directory, not a module: ${s.file}`);
  if (/\.[mc]?ts$/.test(file)) {
    const { register } = await import('tsx/esm/api');
    register();
  }
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    const e = err as Error;
    throw new UsageError('TSGI_APP_LOAD_FAILED', `cannot load ${s.file}: ${e.message}`, );
  }
  const where = `${s.file}${s.exportName === 'default' ? '' : ':' + s.exportName}`;
  if (!(s.exportName in mod)) {
    throw new UsageError(
      'TSGI_APP_NO_EXPORT',
      s.exportName === 'default'
        ? `${s.file} has no default export (name one: ${s.file}:NAME)`
        : `${s.file} has no export named '${s.exportName}'`,
    );
  }
  return { value: mod[s.exportName], spec: s, where };
}

export type AppInterface = 'tsgi' | 'fetch' | 'node';

export interface LoadAppOptions {
  /**
   * The export's interface: a TSGI app, a Fetch handler or a Node (req, res) listener. Default:
   * TSGI_INTERFACE from the environment (set by `--interface`), else told by the export's shape.
   */
  interface?: string;
}

/**
 * Loads the module and makes its export a TSGI app: a TSGI function as it is; a Fetch handler
 * (an object with fetch(), Hono) or a Node listener (Express, Koa, Fastify) through the adapters.
 */
export async function loadApp(spec: string, opts: LoadAppOptions = {}): Promise<App> {
  return (await loadAdaptedApp(spec, opts)).app;
}

/** loadApp, also telling which interface was taken and why (for the start-up log). */
export async function loadAdaptedApp(spec: string, opts: LoadAppOptions = {}): Promise<{ app: App; interface: AppInterface; reason: string }> {
  const iface = checkInterface(opts.interface ?? (process.env.TSGI_INTERFACE || undefined));
  const { value, spec: s, where } = await loadModule(spec);
  const what = `export '${s.exportName}' of ${where.split(':')[0]}`;
  // A plain TSGI function needs none of the adapters (CGI start-up pays for every import).
  if (typeof value === 'function' && (iface === 'tsgi' || (iface === undefined && value.length !== 1 && !isConnectLike(value)))) {
    if (iface === undefined) await warnIfListener(value, what);
    return { app: value as App, interface: 'tsgi', reason: iface ? '--interface tsgi' : 'a function' };
  }
  const { adaptExport } = await import('./adapters/index.js');
  return adaptExport(value, iface, what);
}

function checkInterface(v: string | undefined): AppInterface | undefined {
  if (v === undefined) return undefined;
  if (v === 'tsgi' || v === 'fetch' || v === 'node') return v;
  throw new UsageError('TSGI_BAD_OPTION', `--interface wants tsgi, fetch or node, got '${v}'`);
}

function isConnectLike(v: unknown): boolean {
  const o = v as { handle?: unknown; use?: unknown };
  return typeof o.handle === 'function' && typeof o.use === 'function';
}

/** A two-parameter function spelled (req, res) is TSGI by default: say how to serve it as Node's. */
async function warnIfListener(value: unknown, what: string): Promise<void> {
  if (typeof value !== 'function' || value.length !== 2) return;
  if (!/^\s*(?:async\s+)?(?:function\b[^(]*)?\(\s*(?:req|request|incoming)\b[^,]*,\s*(?:res|response|reply|outgoing)\b/.test(Function.prototype.toString.call(value))) return;
  const { createLineLogger } = await import('./log-line.js');
  createLineLogger().warn(
    { code: 'TSGI_APP_LOOKS_LIKE_NODE' },
    `${what} takes (req, res): served as a TSGI app (environ, startResponse); if it is a Node request listener, pass --interface node`,
  );
}
