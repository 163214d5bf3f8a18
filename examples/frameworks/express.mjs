// Express, unchanged: an Express app is a Node (req, res) listener (docs/frameworks.md).
//   bin/tsgi serve examples/frameworks/express.mjs && curl http://127.0.0.1:8000/users/7
import express from 'express';

const app = express();
app.use(express.json());
app.get('/', (req, res) => res.type('text/plain').send('Hello from Express\n'));
app.get('/users/:id', (req, res) => res.json({ id: req.params.id, client: req.ip }));
app.post('/echo', (req, res) => res.json(req.body));

export default app;
