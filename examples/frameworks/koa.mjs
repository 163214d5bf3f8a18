// Koa, unchanged: tsgi serves a Koa app through its callback() (docs/frameworks.md).
//   bin/tsgi serve examples/frameworks/koa.mjs && curl http://127.0.0.1:8000/users/7
import Koa from 'koa';
import Router from '@koa/router';

const app = new Koa();
const router = new Router();
router.get('/', (ctx) => {
  ctx.body = 'Hello from Koa\n';
});
router.get('/users/:id', (ctx) => {
  ctx.body = { id: ctx.params.id, client: ctx.ip };
});
app.use(router.routes());

export default app;
