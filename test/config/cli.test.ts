// `bin/tsgi serve --config FILE`: the file's settings and pipeline are used, flags given on the
// command line win over the file, the APP argument is optional, and a bad file stops start-up
// with one line naming the file and the line.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { applyConfig } from '../../src/config/index.js';
import { request } from '../helpers/http.js';
import { freePort, ROOT, run, stopAll, waitListening } from '../helpers/spawn.js';

afterAll(() => stopAll());

const DIR = path.join(ROOT, 'test/fixtures/config');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsgi-config-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function writeConfig(name: string, text: string): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, text);
  return f;
}

describe('applyConfig: the command line wins', () => {
  it('fills in what the flags did not give, keeps what they did', () => {
    const f = writeConfig('merge.toml', `app = "${path.join(DIR, 'app.mjs')}"\nprotocol = "fastcgi"\nbind = "127.0.0.1:9999"\nworkers = 3\ndebug = true\n[limits]\nmax-body-size = "2m"\nmax-requests-per-conn = 7\n`);
    const cli = { workers: '1', socketMode: '660', debug: false, bind: '127.0.0.1:1234', lint: false };
    const given = new Set(['bind']);
    const { appSpec, options } = applyConfig(f, undefined, cli, (k) => given.has(k));
    expect(options).toMatchObject({ protocol: 'fastcgi', bind: '127.0.0.1:1234', workers: '3', debug: true, maxBodySize: '2m', maxRequestsPerConn: '7', socketMode: '660', lint: false });
    expect(typeof options.loadApp).toBe('function');
    expect(appSpec).toContain('app.mjs');
  });

  it('an APP argument cannot replace [[mount]]s', () => {
    const f = writeConfig('mounts.toml', `[[mount]]\npath = "/"\napp = "${path.join(DIR, 'app.mjs')}"\n`);
    expect(() => applyConfig(f, 'x.mjs', {}, () => false)).toThrow(/APP argument cannot replace/);
    const g = writeConfig('noapp.toml', `workers = 1\n`);
    expect(() => applyConfig(g, undefined, {}, () => false)).toThrow(/names no app/);
    expect(applyConfig(g, path.join(DIR, 'app.mjs'), {}, () => false).appSpec).toContain('app.mjs');
  });
});

describe('bin/tsgi serve --config', () => {
  it('serves the file\'s app through its pipeline; --bind on the command line wins over the file', async () => {
    const f = writeConfig(
      'http.toml',
      `app = "${path.join(DIR, 'app.mjs')}"
protocol = "http"
bind = "127.0.0.1:1"   # overridden by --bind

[[pipeline]]
use = "request-id"

[[pipeline]]
use = "compression"
min-size = 100
`,
    );
    const port = await freePort();
    const p = run(['serve', '--config', f, '--bind', `127.0.0.1:${port}`]);
    await waitListening(p, port);
    const r = await request(port, { path: '/x?pad=1000', headers: { 'Accept-Encoding': 'gzip', 'X-Request-Id': 'cli-test-1' } });
    expect(r.status).toBe(200);
    expect(r.header('content-encoding')).toEqual(['gzip']);
    expect(r.header('x-request-id')).toEqual(['cli-test-1']);
    expect(JSON.parse(zlib.gunzipSync(r.body).toString())).toMatchObject({ PATH_INFO: '/x', 'tsgi.request_id': 'cli-test-1' });
    expect(await p.stop()).toBe(0);
  });

  it('an APP argument replaces the file\'s app, the pipeline stays', async () => {
    const f = writeConfig('replace.toml', `app = "${path.join(DIR, 'app.mjs')}"\nprotocol = "http"\n[[pipeline]]\nuse = "timing"\nheader = "x-response-time"\n`);
    const port = await freePort();
    const p = run(['serve', path.join(DIR, 'api/app.mjs'), '--config', f, '--bind', `127.0.0.1:${port}`]);
    await waitListening(p, port);
    const r = await request(port, { path: '/a' });
    expect(JSON.parse(r.body.toString())).toMatchObject({ api: true, path: '/a' });
    expect(r.header('x-response-time')[0]).toMatch(/ms$/);
    await p.stop();
  });

  it('workers from the file: the main process forks them, each builds the pipeline', async () => {
    const port = await freePort();
    const f = writeConfig('workers.toml', `app = "${path.join(DIR, 'app.mjs')}"\nprotocol = "http"\nbind = "127.0.0.1:${port}"\nworkers = 2\n[[pipeline]]\nuse = "request-id"\n`);
    const p = run(['serve', '--config', f]);
    await waitListening(p, port, '127.0.0.1', 20_000);
    const r = await request(port, { path: '/w' });
    expect(r.status).toBe(200);
    expect(r.header('x-request-id')).toHaveLength(1);
    await p.waitForStderr(/2 workers/);
    expect(await p.stop()).toBe(0);
  });

  it('a bad file: exit 2, one line with file:line, nothing served', async () => {
    const f = writeConfig('bad.toml', `app = "${path.join(DIR, 'app.mjs')}"\n\n[[pipeline]]\nuse = "compression"\nminsize = 10\n`);
    const p = run(['serve', '--config', f, '--bind', '127.0.0.1:0']);
    const exit = await p.waitExit();
    expect(exit.code).toBe(2);
    expect(p.stderrLines()).toEqual([`tsgi: ${f}:5: unknown key 'minsize' in pipeline[0] (compression) (did you mean 'min-size'?) (known: encodings, min-size, gzip-level, brotli-quality, types, flush)`]);
  });

  it('no APP and no --config: exit 2 with a usage line', async () => {
    const p = run(['serve', '--bind', '127.0.0.1:0']);
    const exit = await p.waitExit();
    expect(exit.code).toBe(2);
    expect(p.stderrLines()).toEqual(['tsgi: serve needs an APP argument or --config FILE']);
  });

  it('a missing config file: exit 2', async () => {
    const p = run(['serve', '--config', path.join(tmp, 'none.toml')]);
    expect((await p.waitExit()).code).toBe(2);
    expect(p.stderrLines()[0]).toMatch(/cannot read config file .*none.toml: not found/);
  });
});
