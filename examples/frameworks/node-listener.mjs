// A plain node:http listener: two parameters, like a TSGI app, so say which it is:
//   bin/tsgi serve examples/frameworks/node-listener.mjs --interface node
export default function listener(req, res) {
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end(`Hello from node:http, ${req.method} ${req.url}\n`);
}
