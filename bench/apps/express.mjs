// An Express app for the hello/big/upload scenarios, the same module for both ways of running it:
//   tsgi:  $TSGI_HOME/bin/tsgi serve bench/apps/express.mjs --protocol fastcgi ...   (backend tsgi-express)
//   node:  node bench/apps/express-node.mjs --bind ...  (node:http, backend express-node)
import express from 'express';

const BIG = Buffer.alloc(1048576, 0x78);
const app = express();

app.get('/hello', (req, res) => {
  res.type('text/plain').send('Hello, world!');
});
app.get('/big', (req, res) => {
  res.type('application/octet-stream').send(BIG);
});
app.post('/upload', (req, res) => {
  let n = 0;
  req.on('data', (c) => (n += c.length));
  req.on('end', () => res.type('text/plain').send(String(n)));
});

export default app;
