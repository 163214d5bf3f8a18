// docs/frameworks.md's recipes are tested: each quoted file is the file in examples/frameworks/,
// and each example, loaded as bin/tsgi loads it, answers as the page says.

import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAdaptedApp } from '../../src/load-app.js';
import { makeRequest } from '../helpers/recording-sink.js';
import { ROOT } from '../helpers/spawn.js';

const DOC = fs.readFileSync(path.join(ROOT, 'docs/frameworks.md'), 'utf8');

/** `[`examples/frameworks/X.mjs`](...)` followed by a ```js block: [file, block]. */
function quoted(): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const re = /\[`(examples\/frameworks\/[\w-]+\.mjs)`\]\([^)]*\):?\n\n```js\n([\s\S]*?)```/g;
  for (let m = re.exec(DOC); m; m = re.exec(DOC)) out.push([m[1]!, m[2]!]);
  return out;
}

async function ask(file: string, o: { iface?: string; method?: string; path?: string; body?: string } = {}) {
  const { app, interface: iface } = await loadAdaptedApp(path.join(ROOT, file), { interface: o.iface });
  const vars: Record<string, string> = { REQUEST_METHOD: o.method ?? 'GET', PATH_INFO: o.path ?? '/', HTTP_HOST: 'example.test', REMOTE_ADDR: '127.0.0.1' };
  if (o.body !== undefined) vars.CONTENT_TYPE = 'application/json';
  const r = makeRequest(vars, o.body);
  await r.run(app);
  return { iface, status: r.sink.head.status, text: r.sink.text() };
}

describe('docs/frameworks.md', () => {
  it('quotes every example file as it is', () => {
    const q = quoted();
    expect(q.map(([f]) => f).sort()).toEqual(fs.readdirSync(path.join(ROOT, 'examples/frameworks')).map((f) => `examples/frameworks/${f}`).sort());
    for (const [file, block] of q) expect(block, file).toBe(fs.readFileSync(path.join(ROOT, file), 'utf8'));
  });

  for (const [name, iface, hello] of [
    ['hono', 'fetch', 'Hello from Hono\n'],
    ['express', 'node', 'Hello from Express\n'],
    ['koa', 'node', 'Hello from Koa\n'],
    ['fastify', 'node', 'Hello from Fastify\n'],
  ] as const) {
    it(`${name}: served as ${iface}, routes answer`, async () => {
      const file = `examples/frameworks/${name}.mjs`;
      const root = await ask(file);
      expect([root.iface, root.status, root.text]).toEqual([iface, '200 OK', hello]);
      expect(JSON.parse((await ask(file, { path: '/users/7' })).text)).toEqual({ id: '7', client: '127.0.0.1' });
      if (name !== 'koa') expect(JSON.parse((await ask(file, { method: 'POST', path: '/echo', body: '{"a":[1,2]}' })).text)).toEqual({ a: [1, 2] });
    });
  }

  it('the bare Fetch handler', async () => {
    expect(await ask('examples/frameworks/fetch-handler.mjs', { path: '/x' })).toMatchObject({ iface: 'fetch', text: 'Hello from a Fetch handler, /x\n' });
  });

  it('the node:http listener, with --interface node', async () => {
    expect(await ask('examples/frameworks/node-listener.mjs', { iface: 'node', path: '/y' })).toMatchObject({ iface: 'node', text: 'Hello from node:http, GET /y\n' });
  });

  it('the mixed app: /api to Hono, the rest to Express', async () => {
    expect(await ask('examples/frameworks/mixed.mjs', { path: '/api/time' })).toMatchObject({ iface: 'tsgi', text: '{"now":0}' });
    expect((await ask('examples/frameworks/mixed.mjs')).text).toBe('site\n');
  });
});
