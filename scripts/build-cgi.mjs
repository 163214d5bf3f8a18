// Builds the CGI program's code as one CommonJS file, with a V8 code cache for it (part of
// `npm run build`, after tsc). A CGI program starts for every request (docs/cgi.md, "Start-up
// time"); what this saves, measured with bench/cgi-startup.sh:
//
// - Node's ES module loader: bin/tsgi (CommonJS, bin/package.json) require()s one file instead
//   of import()ing a dozen modules, each resolved and read through the thread pool.
// - node:crypto (and the stream modules it loads): src/protocols/cgi/random-bytes.ts stands in
//   for it; the runner only takes a random request-id prefix from it.
// - Compiling: the functions a request runs come compiled from the code cache.
//
// The files, in dist/:
//   cgi.cjs                 the entry (bin/tsgi, `require('tsgi/cgi')`): compiles the bundle with
//                           the code cache (node:vm) and exports what it exports
//   cgi.mjs                 `import('tsgi/cgi')`: the same, as an ES module (the CGI adapter's
//                           ES module where Node has no require(esm))
//   cgi.bundle.cjs          esbuild's bundle of src/protocols/cgi/bundle.ts; its import()s call
//                           the entry's (code compiled by node:vm cannot import() by itself)
//   cgi.bundle.ID.cache     V8's code cache, made by running one request through the entry;
//                           ID is the bundle's hash, which the entry checks (a cache made for
//                           other code must never be used). A cache V8 rejects (another Node, other
//                           flags) only costs the compile it would have saved.
//
// Not bundled, so that there is one copy of each: src/errors.ts (dist/errors.js, see
// sharedErrorsModule), the adapters (imported only for a Fetch or Node app, by load-app), and
// packages (tsx, for a .ts app).
//
// test/protocols/cgi/bundle.test.ts fails when the bundle is not what this script makes of the
// current sources (a build is due) or its cache is not used, and checks what a request loads.
//
//   node scripts/build-cgi.mjs       writes the files (writeCgiBuild)
//   await buildCgiBundle()           the bundle's text, nothing written

import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const SRC = path.join(ROOT, 'src');
const DIST = path.join(ROOT, 'dist');
export const CGI_ENTRY = path.join(DIST, 'cgi.cjs');
export const CGI_BUNDLE = path.join(DIST, 'cgi.bundle.cjs');
export const CGI_ESM_ENTRY = path.join(DIST, 'cgi.mjs');
const ERRORS = path.join(SRC, 'errors.ts');

/**
 * src/errors.ts, as the bundle sees it: the classes of dist/errors.js, the ES module every other
 * part of tsgi (middleware, adapters) uses, so that `instanceof RequestError` holds across them.
 * Loaded on first use, which a request that goes well never makes: loading an ES module starts
 * Node's ES module loader, which a CommonJS app would not otherwise need. A Node without
 * require(esm) gets a copy bundled here (bin/tsgi does not use the bundle there; a CGI script
 * that requires `tsgi/cgi` may).
 */
function sharedErrorsModule(names) {
  return [
    'let m;',
    'function errors() {',
    '  if (m === undefined) {',
    '    try {',
    "      m = require('./errors.js');",
    '    } catch (err) {',
    "      if (err?.code !== 'ERR_REQUIRE_ESM') throw err;",
    "      m = require('tsgi:bundled-errors');",
    '    }',
    '  }',
    '  return m;',
    '}',
    `module.exports = { ${names.map((n) => `get ${n}() { return errors().${n}; }`).join(', ')} };`,
  ].join('\n');
}

/** The names src/errors.ts exports (classes only: a getter stands for each). */
function errorNames() {
  const text = fs.readFileSync(ERRORS, 'utf8');
  const names = [...text.matchAll(/^export class (\w+)/gm)].map((m) => m[1]);
  if (names.length !== [...text.matchAll(/^export\b/gm)].length) {
    throw new Error(`${ERRORS} exports more than classes: scripts/build-cgi.mjs handles classes only`);
  }
  return names;
}

/** Imports that stay imports: src path (without extension) -> the specifier from dist/. */
const KEEP = new Map([[path.join(SRC, 'adapters/index'), './adapters/index.js']]);

function shared(names) {
  return {
    name: 'tsgi-shared',
    setup(build) {
      build.onResolve({ filter: /^\.\.?\// }, (args) => {
        if (args.namespace === 'tsgi-errors') return { path: args.path, external: true };
        const target = path.resolve(args.resolveDir, args.path).replace(/\.js$/, '');
        if (target === ERRORS.replace(/\.ts$/, '')) return { path: 'errors', namespace: 'tsgi-errors' };
        const spec = KEEP.get(target);
        return spec ? { path: spec, external: true } : undefined;
      });
      build.onResolve({ filter: /^tsgi:bundled-errors$/ }, () => ({ path: ERRORS }));
      build.onLoad({ filter: /.*/, namespace: 'tsgi-errors' }, () => ({ contents: sharedErrorsModule(names), loader: 'js', resolveDir: SRC }));
    },
  };
}

/** The bundle's text: esbuild's output, its import()s turned into calls of the entry's `__import`. */
export async function buildCgiBundle() {
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: [path.join(SRC, 'protocols/cgi/bundle.ts')],
    outfile: CGI_BUNDLE,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    packages: 'external',
    alias: { 'node:crypto': path.join(SRC, 'protocols/cgi/random-bytes.ts') },
    plugins: [shared(errorNames())],
    banner: { js: '// Generated by scripts/build-cgi.mjs from src/ (npm run build), loaded by dist/cgi.cjs: do not edit.' },
    legalComments: 'none',
    logLevel: 'warning',
    write: false,
  });
  const text = result.outputFiles[0].text;
  // Every import( in esbuild's output is a dynamic import (a string holding one would only see
  // its text change); `__import(` is the entry's function, with the same meaning.
  const out = text.replace(/(?<![\w$.])import\(/g, '__import(');
  if (/\bimport\s*\(/.test(out.replace(/__import\(/g, ''))) throw new Error('scripts/build-cgi.mjs: an import( was left in the bundle');
  return out;
}

/** The entry, dist/cgi.cjs: compiles the bundle with its code cache, and is its module. */
function entrySource(id) {
  return `// Generated by scripts/build-cgi.mjs (npm run build): do not edit.
// The CGI program's code (bin/tsgi cgi APP, require('tsgi/cgi')): cgi.bundle.cjs, compiled with
// V8's code cache from the build, so that the functions a request runs need no compiling.
'use strict';
const { readFileSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { Script } = require('node:vm');

const ID = '${id}';
const BUNDLE = join(__dirname, 'cgi.bundle.cjs');
const CACHE = join(__dirname, 'cgi.bundle.' + ID + '.cache');
const source = readFileSync(BUNDLE, 'utf8');
// The build's warm-up request writes the cache; otherwise it is read, for this bundle only.
const making = process.env.TSGI_BUILD_CGI_CACHE === CACHE;
let cachedData;
if (!making && source.endsWith('\\n// tsgi-cgi-bundle ' + ID + '\\n')) {
  try {
    cachedData = readFileSync(CACHE);
  } catch {
    // no cache: compiled as it runs
  }
}
// Line 1 of the bundle stays line 1: stack traces point into cgi.bundle.cjs.
const script = new Script('(function (exports, require, module, __filename, __dirname, __import) {' + source + '\\n})', { filename: BUNDLE, cachedData });
script.runInThisContext()(module.exports, require, module, BUNDLE, __dirname, (specifier) => import(specifier));
Object.defineProperty(module.exports, 'codeCache', { value: cachedData === undefined ? 'none' : script.cachedDataRejected ? 'rejected' : 'used' });
if (making) process.once('exit', () => writeFileSync(CACHE, script.createCachedData()));
`;
}

/**
 * dist/cgi.mjs, for import('tsgi/cgi'): the bundle too (through require(esm)'s Node, where the
 * bundle shares dist/errors.js), else the adapter's ES module as before. `names`: what
 * dist/protocols/cgi/adapter.js exports, the public API of tsgi/cgi.
 */
function esmEntrySource(names) {
  return `// Generated by scripts/build-cgi.mjs (npm run build): do not edit.
// import('tsgi/cgi'): the CGI code from the one CommonJS file that require('tsgi/cgi') and
// bin/tsgi use (dist/cgi.cjs, quicker to start than a dozen ES modules), where Node can require
// ES modules (tsgi's error classes are shared through dist/errors.js); else the ES modules.
import { createRequire } from 'node:module';

const cgi = process.features.require_module ? createRequire(import.meta.url)('./cgi.cjs') : await import('./protocols/cgi/adapter.js');
export const { ${names.join(', ')} } = cgi;
`;
}

/** Runs one hello-world request through the entry, which then writes the cache. */
function makeCache(cacheFile) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsgi-build-cgi-'));
  try {
    const app = path.join(dir, 'hello.mjs');
    fs.writeFileSync(app, "export default (environ, startResponse) => {\n  startResponse('200 OK', [['Content-Type', 'text/plain']]);\n  return ['hello\\n'];\n};\n");
    const { NODE_OPTIONS: _flags, ...env } = process.env; // V8 rejects a cache made with other flags
    const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(CGI_ENTRY)}).runCgiCommand(${JSON.stringify(app)})`], {
      cwd: dir,
      env: { ...env, TSGI_BUILD_CGI_CACHE: cacheFile, GATEWAY_INTERFACE: 'CGI/1.1', REQUEST_METHOD: 'GET', SCRIPT_NAME: '/hello.cgi', PATH_INFO: '/', SERVER_PROTOCOL: 'HTTP/1.1' },
      encoding: 'latin1',
    });
    if (r.status !== 0 || !r.stdout.endsWith('\r\n\r\nhello\n') || !fs.existsSync(cacheFile)) {
      throw new Error(`scripts/build-cgi.mjs: the warm-up request failed (exit ${r.status}): ${r.stdout}${r.stderr}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes dist/cgi.cjs, dist/cgi.bundle.cjs and the cache (removing caches of older bundles). */
export async function writeCgiBuild() {
  const bundle = await buildCgiBundle();
  const id = createHash('sha256').update(bundle).digest('hex').slice(0, 16);
  fs.mkdirSync(DIST, { recursive: true });
  for (const f of fs.readdirSync(DIST)) if (/^cgi\.bundle\.[0-9a-f]+\.cache$/.test(f)) fs.rmSync(path.join(DIST, f));
  fs.writeFileSync(CGI_BUNDLE, `${bundle}// tsgi-cgi-bundle ${id}\n`);
  fs.writeFileSync(CGI_ENTRY, entrySource(id));
  makeCache(path.join(DIST, `cgi.bundle.${id}.cache`));
  // The adapter's exports (tsc's output, built before this script): all of them are the bundle's.
  const names = Object.keys(await import(pathToFileURL(path.join(DIST, 'protocols/cgi/adapter.js')).href));
  const missing = names.filter((n) => !(n in require(CGI_ENTRY)));
  if (missing.length) throw new Error(`scripts/build-cgi.mjs: dist/cgi.cjs does not export ${missing.join(', ')}`);
  fs.writeFileSync(CGI_ESM_ENTRY, esmEntrySource(names));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await writeCgiBuild();
