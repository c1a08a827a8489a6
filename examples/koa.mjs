// Koa 3: serve the request listener that app.callback() returns.
// Serve it with `npx tsgunicorn examples/koa.mjs:handler`.
import Koa from 'koa';

const app = new Koa();

app.use((ctx) => {
  if (ctx.path === '/json') {
    ctx.body = { framework: 'koa', worker: process.pid };
  } else if (ctx.path === '/') {
    ctx.type = 'text/plain';
    ctx.body = 'Hello from Koa\n';
  }
  // Anything else: Koa answers 404 Not Found.
});

export const handler = app.callback();
