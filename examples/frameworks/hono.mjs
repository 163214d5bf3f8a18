// Hono, unchanged: tsgi serves the default export through its fetch() (docs/frameworks.md).
//   bin/tsgi serve examples/frameworks/hono.mjs && curl http://127.0.0.1:8000/users/7
import { Hono } from 'hono';

const app = new Hono();
app.get('/', (c) => c.text('Hello from Hono\n'));
app.get('/users/:id', (c) => c.json({ id: c.req.param('id'), client: c.env.REMOTE_ADDR }));
app.post('/echo', async (c) => c.json(await c.req.json()));

export default app;
