// The app of a CGI program, loaded the short way when it can be: with require(), which loads a
// .js, .mjs or .cjs module synchronously (ES modules too: require(esm), on by default since Node
// 20.19), instead of import(), whose loader reads files through the thread pool and costs a CGI
// program (which starts for every request) a few milliseconds more. Anything the short way does
// not settle plainly goes to loadApp() (src/load-app.ts), which stays the one authority: it
// finds the module already loaded, and adapts, warns and explains as for every other protocol.

import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { isModuleNamespaceObject } from 'node:util/types';
import { UsageError } from '../../errors.js';
import { type LoadAppOptions, loadApp, parseAppSpec } from '../../load-app.js';
import type { App } from '../../types.js';

/** require() failures that import() does not share: the module is loaded with import() instead. */
const IMPORT_INSTEAD = new Set([
  'ERR_REQUIRE_ESM', // a Node without require(esm)
  'ERR_REQUIRE_ASYNC_MODULE', // top-level await
  'ERR_REQUIRE_CYCLE_MODULE',
]);

/** loadApp(), with a plain TSGI function from a .js/.mjs/.cjs module taken the short way. */
export async function loadCgiApp(spec: string, opts: LoadAppOptions = {}): Promise<App> {
  return plainTsgiApp(spec, opts) ?? loadApp(spec, opts);
}

/**
 * The app when the module loads with require() and its export is what loadApp() would serve as
 * it is: a function that is not a Fetch handler (one parameter), a Connect-style app or a
 * (req, res) listener (the same tests as loadAdaptedApp's). Otherwise undefined: loadApp() then
 * decides. Load errors are loadApp's (TSGI_APP_LOAD_FAILED, same message).
 */
function plainTsgiApp(spec: string, opts: LoadAppOptions): App | undefined {
  const iface = opts.interface ?? (process.env.TSGI_INTERFACE || undefined);
  if (iface !== undefined && iface !== 'tsgi') return undefined;
  const s = parseAppSpec(spec);
  if (!/\.[cm]?js$/.test(s.file)) return undefined;
  const file = resolve(s.file);
  try {
    if (!statSync(file).isFile()) return undefined;
  } catch {
    return undefined;
  }
  // CommonJS's require: this module is bundled into dist/cgi.cjs for bin/tsgi's short path. As the
  // ES module tsc makes of it (`tsgi cgi --nph APP`, a Node without require(esm)), there is none.
  if (typeof require !== 'function') return undefined;
  let mod: unknown;
  try {
    mod = require(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e && IMPORT_INSTEAD.has(e.code!)) return undefined;
    throw new UsageError('TSGI_APP_LOAD_FAILED', `cannot load ${s.file}: ${e?.message}`);
  }
  let value: unknown;
  if (isModuleNamespaceObject(mod)) {
    if (!(s.exportName in (mod as object))) return undefined;
    value = (mod as Record<string, unknown>)[s.exportName];
  } else {
    // CommonJS: import() makes module.exports the default export, and the named ones what Node's
    // static analysis finds; only the default is taken here.
    if (s.exportName !== 'default') return undefined;
    value = mod;
  }
  if (typeof value !== 'function') return undefined;
  if (iface === 'tsgi') return value as App;
  if (value.length === 1 || isConnectLike(value) || looksLikeListener(value)) return undefined;
  return value as App;
}

function isConnectLike(v: unknown): boolean {
  const o = v as { handle?: unknown; use?: unknown };
  return typeof o.handle === 'function' && typeof o.use === 'function';
}

/** What loadApp() warns about (a TSGI app spelled (req, res)): left to it. */
function looksLikeListener(value: Function): boolean {
  return value.length === 2 && /^\s*(?:async\s+)?(?:function\b[^(]*)?\(\s*(?:req|request|incoming)\b/.test(Function.prototype.toString.call(value));
}
