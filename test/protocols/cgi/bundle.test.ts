// dist/cgi.cjs, the CGI program's code in one CommonJS file with a V8 code cache (built by
// scripts/build-cgi.mjs in `npm run build`; docs/cgi.md, "Start-up time"): that it is what the
// current sources make (a stale build fails here), that its cache is taken, what a request loads
// (the start-up the bundle exists to save), and the ways an app is loaded through it.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { app, ROOT, TSGI } from '../../helpers/spawn.js';

const DIST = path.join(ROOT, 'dist');
const ENTRY = path.join(DIST, 'cgi.cjs');
const BUNDLE = path.join(DIST, 'cgi.bundle.cjs');
const HELLO = 'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsgi-cgi-bundle-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
}

const REQUEST = { GATEWAY_INTERFACE: 'CGI/1.1', REQUEST_METHOD: 'GET', SCRIPT_NAME: '/cgi-bin/app.cgi', PATH_INFO: '/', SERVER_PROTOCOL: 'HTTP/1.1' };

/** Runs node ARGS as a web server runs a CGI program: the request in a clean environment. */
function run(args: string[], o: { env?: Record<string, string>; input?: string } = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, args, {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...REQUEST, ...o.env },
    input: o.input ?? '',
    encoding: 'latin1',
    timeout: 15_000,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The built-in modules a `bin/tsgi cgi APP` process loaded (process.moduleLoadList at exit). */
function modulesLoaded(appFile: string): string[] {
  const out = path.join(dir, `modules-${path.basename(appFile)}.json`);
  const preload = file('record-modules.cjs', `process.on('exit', () => require('fs').writeFileSync(process.env.MODULES_OUT, JSON.stringify(process.moduleLoadList)));\n`);
  const r = run(['-r', preload, TSGI, 'cgi', appFile], { env: { MODULES_OUT: out } });
  expect(r.stdout).toBe(HELLO);
  return (JSON.parse(fs.readFileSync(out, 'utf8')) as string[]).filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice('NativeModule '.length));
}

const helloMjs = file('hello.mjs', "export default function hello(environ, startResponse) {\n  startResponse('200 OK', [['Content-Type', 'text/plain']]);\n  return ['hello\\n'];\n}\n");
const helloCjs = file('hello.cjs', "module.exports = function hello(environ, startResponse) {\n  startResponse('200 OK', [['Content-Type', 'text/plain']]);\n  return ['hello\\n'];\n};\n");

describe('the build', () => {
  it('dist/cgi.bundle.cjs is what scripts/build-cgi.mjs makes of the sources now (if not: npm run build)', async () => {
    const { buildCgiBundle } = (await import(pathToFileURL(path.join(ROOT, 'scripts/build-cgi.mjs')).href)) as { buildCgiBundle(): Promise<string> };
    const text = await buildCgiBundle();
    const id = createHash('sha256').update(text).digest('hex').slice(0, 16);
    expect(fs.readFileSync(BUNDLE, 'utf8') === `${text}// tsgi-cgi-bundle ${id}\n`, 'dist/cgi.bundle.cjs is stale: npm run build').toBe(true);
    expect(fs.readFileSync(ENTRY, 'utf8')).toContain(`const ID = '${id}';`);
    expect(fs.existsSync(path.join(DIST, `cgi.bundle.${id}.cache`))).toBe(true);
  });

  it('dist/cgi.cjs compiles the bundle with its code cache, and exports runCgi and runCgiCommand', () => {
    const r = run(['-e', `const c = require(${JSON.stringify(ENTRY)}); console.log(c.codeCache, typeof c.runCgi, typeof c.runCgiCommand)`]);
    expect(r.stdout.trim()).toBe('used function function');
  });

  it('tsgi/cgi: require() and import() give the bundle, with every export of the adapter (src/protocols/cgi/adapter.ts)', () => {
    const site = path.join(dir, 'site');
    fs.mkdirSync(path.join(site, 'node_modules'), { recursive: true });
    fs.symlinkSync(ROOT, path.join(site, 'node_modules/tsgi'), 'dir');
    const script = path.join(site, 'check.cjs');
    fs.writeFileSync(
      script,
      `(async () => {
  const viaImport = await import('tsgi/cgi');
  const viaRequire = require('tsgi/cgi');
  const adapter = await import(${JSON.stringify(pathToFileURL(path.join(DIST, 'protocols/cgi/adapter.js')).href)});
  console.log(JSON.stringify({ same: viaImport.runCgi === viaRequire.runCgi, bundle: require.resolve('tsgi/cgi'), names: Object.keys(viaImport).sort(), adapter: Object.keys(adapter).sort() }));
})();\n`,
    );
    const out = JSON.parse(run([script]).stdout) as { same: boolean; bundle: string; names: string[]; adapter: string[] };
    expect(out.same).toBe(true);
    expect(out.bundle).toBe(ENTRY);
    expect(out.names).toEqual(out.adapter);
  });
});

describe('what a hello-world request loads (the start-up the bundle saves)', () => {
  // What made `bin/tsgi cgi` 1.3 times a bare `node -e` (docs/cgi.md): node:crypto for the request
  // id prefix and the stream modules it pulls in, perf_hooks for a timer, fs/promises, a Console
  // and process.stdout for a response that fits one write(2), and the ES module loader.
  const NOT = ['crypto', 'stream', 'perf_hooks', 'fs/promises', 'console', 'internal/fs/promises', 'internal/modules/esm/load'];

  it('an ES module app: none of them (it is loaded with require(esm))', () => {
    const loaded = modulesLoaded(helloMjs);
    expect(loaded.filter((m) => NOT.includes(m))).toEqual([]);
  });

  it('a CommonJS app: not even the ES module loader', () => {
    const loaded = modulesLoaded(helloCjs);
    expect(loaded.filter((m) => NOT.includes(m) || ['internal/modules/esm/loader', 'internal/modules/esm/module_job', 'internal/modules/esm/translators'].includes(m))).toEqual([]);
  });
});

describe('loading the app', () => {
  it('an ES module and a CommonJS app answer the same', () => {
    expect(run([TSGI, 'cgi', helloMjs]).stdout).toBe(HELLO);
    expect(run([TSGI, 'cgi', helloCjs]).stdout).toBe(HELLO);
  });

  it('a Node without require(esm): bin/tsgi takes the ES modules (dist/protocols/cgi/entry.js), same answer', () => {
    const r = run(['--no-experimental-require-module', TSGI, 'cgi', helloMjs]);
    expect(r.stdout).toBe(HELLO);
    expect(r.stderr).toBe('');
  });

  it('top-level await (require(esm) refuses it): loaded with import()', () => {
    const f = file('tla.mjs', "const text = await Promise.resolve('awaited\\n');\nexport default (environ, startResponse) => {\n  startResponse('200 OK', [['Content-Type', 'text/plain']]);\n  return [text];\n};\n");
    const r = run([TSGI, 'cgi', f]);
    expect(r.stdout).toBe('Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\nawaited\n');
    expect(r.stderr).toBe('');
  });

  it('a named export of a CommonJS module: through loadApp, and the module runs once', () => {
    const f = file('named.cjs', "globalThis.runs = (globalThis.runs ?? 0) + 1;\nexports.application = (environ, startResponse) => {\n  startResponse('200 OK', [['Content-Type', 'text/plain']]);\n  return [`runs ${globalThis.runs}\\n`];\n};\n");
    expect(run([TSGI, 'cgi', `${f}:application`]).stdout).toMatch(/\r\n\r\nruns 1\n$/);
  });

  it('a Fetch handler object: the adapters are imported from dist/ (the bundle\'s import())', () => {
    const f = file('fetch.mjs', "export default { fetch: (request) => new Response(`fetch ${new URL(request.url).pathname}\\n`) };\n");
    const r = run([TSGI, 'cgi', f], { env: { PATH_INFO: '/x' } });
    expect(r.stdout).toMatch(/^Status: 200 OK\r\n[\s\S]*\r\n\r\nfetch \/x\n$/);
  });

  it('a (req, res) function: loadApp\'s warning, as before', () => {
    const f = file('listener.mjs', "export default function (req, res) {\n  return res;\n}\n");
    expect(run([TSGI, 'cgi', f]).stderr).toContain('TSGI_APP_LOOKS_LIKE_NODE');
  });

  it('a module that fails to load: TSGI_APP_LOAD_FAILED\'s message and a 500, exit 2', () => {
    const f = file('throws.cjs', "throw new Error('broken at load');\n");
    const r = run([TSGI, 'cgi', f]);
    expect(r.stderr).toBe(`tsgi: cannot load ${f}: broken at load\n`);
    expect(r.stdout).toMatch(/^Status: 500 Internal Server Error\r\n/);
    expect(r.code).toBe(2);
  });

  it('tsgi/middleware in the app and the bundled runner share RequestError: a short body is the runner\'s 400, not errorCatcher\'s 500', () => {
    const mw = pathToFileURL(path.join(DIST, 'middleware/index.js')).href;
    const f = file(
      'caught.mjs',
      `import { errorCatcher } from ${JSON.stringify(mw)};\nexport default errorCatcher(async (environ, startResponse) => {\n  await environ['wsgi.input'].read();\n  startResponse('200 OK', [['Content-Type', 'text/plain']]);\n  return ['read\\n'];\n});\n`,
    );
    const r = run([TSGI, 'cgi', f], { env: { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '100' }, input: 'short' });
    expect(r.stdout).toMatch(/^Status: 400 Bad Request\r\n[\s\S]*ended after 5 of 100 bytes/);
  });

  it('the request id: a random prefix per process (from /dev/urandom, not node:crypto), then a counter', () => {
    const ids = [0, 1].map(() => {
      const r = run([TSGI, 'cgi', app('environ-echo.mjs')]);
      return (JSON.parse(r.stdout.slice(r.stdout.indexOf('\r\n\r\n') + 4)) as Record<string, string>)['tsgi.request_id'];
    });
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_-]{8}-1$/);
    expect(ids[0]).not.toBe(ids[1]);
  });
});
