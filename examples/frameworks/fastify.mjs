// Fastify, unchanged: tsgi waits for ready(), then serves its routing() (docs/frameworks.md).
//   bin/tsgi serve examples/frameworks/fastify.mjs && curl http://127.0.0.1:8000/users/7
import Fastify from 'fastify';

const app = Fastify();
app.get('/', async () => 'Hello from Fastify\n');
app.get('/users/:id', async (req) => ({ id: req.params.id, client: req.ip }));
app.post('/echo', async (req) => req.body);

export default app;
