// A Hono app for the hello/big/upload scenarios, the same module for both ways of running it:
//   tsgi:  $TSGI_HOME/bin/tsgi serve bench/apps/hono.mjs --protocol fastcgi ...   (backend tsgi-hono)
//   node:  node bench/apps/hono-node.mjs --bind ...  (@hono/node-server, backend hono-node)
import { Hono } from 'hono';

const BIG = new Uint8Array(1048576).fill(0x78);
const app = new Hono();

app.get('/hello', (c) => c.text('Hello, world!'));
app.get('/big', (c) => c.body(BIG, 200, { 'Content-Type': 'application/octet-stream' }));
app.post('/upload', async (c) => {
  let n = 0;
  for await (const chunk of c.req.raw.body ?? []) n += chunk.length;
  return c.text(String(n));
});

export default app;
