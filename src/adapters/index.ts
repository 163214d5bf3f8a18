// The framework adapters, and how a module's export becomes a TSGI app: a TSGI function as it
// is, a Fetch handler through fromFetch, a Node listener (Express, Koa, Fastify) through
// fromNodeListener. The CLI decides by the export's shape unless --interface says.

import { UsageError } from '../errors.js';
import type { App } from '../types.js';
import { fromFetch, type FetchApp, type FetchHandler } from './fetch.js';
import { fromNodeListener, type NodeListener } from './node.js';

export { fromFetch, toRequest, type ExecutionContext, type FetchApp, type FetchHandler, type FromAdapterOptions } from './fetch.js';
export { fromNodeListener, type NodeListener } from './node.js';
export { toFetch, type ToFetchOptions } from './to-fetch.js';
export { toNodeListener, type ToNodeListenerOptions } from './to-node.js';

export const INTERFACES = ['tsgi', 'fetch', 'node'] as const;
export type AppInterface = (typeof INTERFACES)[number];

export interface AdaptedApp {
  app: App;
  interface: AppInterface;
  /** How the shape was told, for the start-up log: "default export has fetch()". */
  reason: string;
}

type Obj = Record<string, unknown>;
const fn = (v: unknown, k: string): boolean => typeof (v as Obj)[k] === 'function';

/** An Express or Connect app: a function with handle() and use(). */
const isConnectLike = (v: unknown): boolean => typeof v === 'function' && fn(v, 'handle') && fn(v, 'use');
/** A Koa app: callback() makes its (req, res) listener. */
const isKoaLike = (v: unknown): boolean => fn(v, 'callback') && fn(v, 'use');
/** A Fastify instance: routing(req, res) once ready(). */
const isFastifyLike = (v: unknown): boolean => fn(v, 'routing') && fn(v, 'ready');
/** A node:http server (not listening): its one 'request' listener. */
const isHttpServer = (v: unknown): boolean => fn(v, 'listeners') && fn(v, 'listen') && fn(v, 'close') && (v as { listeners(e: string): unknown[] }).listeners('request').length === 1;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'function') return `a function of ${v.length} parameter${v.length === 1 ? '' : 's'}`;
  if (typeof v === 'object') return `an object (${Object.keys(v).slice(0, 5).join(', ') || 'no own keys'})`;
  return typeof v;
}

/**
 * fromFetch as the CLI serves a Fetch handler: the process is the app's, so the global Response is
 * the lightweight one (no stream per response) unless TSGI_OVERRIDE_GLOBALS=0.
 */
function cliFromFetch(handler: FetchHandler | FetchApp): App {
  return fromFetch(handler, { overrideGlobalObjects: process.env.TSGI_OVERRIDE_GLOBALS !== '0' });
}

/**
 * Turns a module's export into a TSGI app. `iface` forces the interface; without it the shape
 * decides: an object with fetch() is a Fetch handler; an Express/Connect app, a Koa app or a
 * Fastify instance is a Node listener; a function of one parameter is a Fetch handler; any
 * other function is a TSGI app. `what` names the export in error messages.
 */
export async function adaptExport(value: unknown, iface: AppInterface | undefined, what: string): Promise<AdaptedApp> {
  if (iface === 'tsgi') {
    if (typeof value !== 'function') throw notFunction(what, value);
    return { app: value as App, interface: 'tsgi', reason: '--interface tsgi' };
  }
  if (iface === 'fetch') {
    if (typeof value === 'function') return { app: cliFromFetch(value as FetchHandler), interface: 'fetch', reason: '--interface fetch' };
    if (fn(value, 'fetch')) return { app: cliFromFetch(value as FetchApp), interface: 'fetch', reason: '--interface fetch (its fetch() method)' };
    throw new UsageError('TSGI_APP_BAD_INTERFACE', `${what} is ${describe(value)}: --interface fetch wants a function (request) => Response or an object with a fetch() method`);
  }
  if (iface === 'node') {
    const listener = await nodeListenerOf(value);
    if (listener) return { app: fromNodeListener(listener.fn), interface: 'node', reason: `--interface node (${listener.how})` };
    throw new UsageError(
      'TSGI_APP_BAD_INTERFACE',
      `${what} is ${describe(value)}: --interface node wants a (req, res) function, an Express app, a Koa app, a Fastify instance or a node:http server`,
    );
  }
  if (typeof value === 'object' && value !== null) {
    if (fn(value, 'fetch')) return { app: cliFromFetch(value as FetchApp), interface: 'fetch', reason: 'the export has a fetch() method' };
    const listener = await nodeListenerOf(value);
    if (listener) return { app: fromNodeListener(listener.fn), interface: 'node', reason: listener.how };
    throw notFunction(what, value, true);
  }
  if (typeof value !== 'function') throw notFunction(what, value);
  if (isConnectLike(value)) return { app: fromNodeListener(value as NodeListener), interface: 'node', reason: 'an Express/Connect app (handle() and use())' };
  if (value.length === 1) return { app: cliFromFetch(value as FetchHandler), interface: 'fetch', reason: 'a function of one parameter (request)' };
  return { app: value as App, interface: 'tsgi', reason: 'a function' };
}

async function nodeListenerOf(v: unknown): Promise<{ fn: NodeListener; how: string } | undefined> {
  if (typeof v === 'function' && !fn(v, 'routing')) return { fn: v as NodeListener, how: isConnectLike(v) ? 'an Express/Connect app' : 'a (req, res) function' };
  if (v === null || typeof v !== 'object' && typeof v !== 'function') return undefined;
  if (isFastifyLike(v)) {
    // Routes and plugins are registered once ready() resolves; routing() is Fastify's handler.
    await (v as { ready(): Promise<unknown> }).ready();
    return { fn: (v as { routing: NodeListener }).routing, how: 'a Fastify instance (its routing(), once ready())' };
  }
  if (isKoaLike(v)) return { fn: (v as { callback(): NodeListener }).callback(), how: 'a Koa app (its callback())' };
  if (isHttpServer(v)) return { fn: (v as { listeners(e: string): NodeListener[] }).listeners('request')[0]!, how: 'a node:http server (its request listener)' };
  return undefined;
}

function notFunction(what: string, value: unknown, object = false): UsageError {
  const got = value === null ? 'null' : typeof value;
  const hint = object ? '; nor an app object: no fetch() (Fetch handler), callback() (Koa), routing() (Fastify)' : '';
  return new UsageError('TSGI_APP_NOT_FUNCTION', `${what} is not a function (got ${got})${hint}`);
}
