// The adapters as functions: a TSGI app that routes /api to a Hono app and the rest to Express,
// each through its adapter (fromFetch, fromNodeListener); and the TSGI app back out as a Fetch
// handler (toFetch) or a node:http listener (toNodeListener).
//   bin/tsgi serve examples/frameworks/mixed.mjs
import express from 'express';
import { Hono } from 'hono';
import { fromFetch, fromNodeListener } from 'tsgi';

const api = new Hono().get('/api/time', (c) => c.json({ now: 0 }));
const site = express().get('/', (req, res) => res.send('site\n'));

const apiApp = fromFetch(api);
const siteApp = fromNodeListener(site);

export default function app(environ, startResponse) {
  const target = environ.PATH_INFO.startsWith('/api/') ? apiApp : siteApp;
  return target(environ, startResponse);
}
