// Fastify 5: a factory that builds the app, waits for its plugins (ready()), and returns its
// request handler, fastify.routing. tsgunicorn's own http.Server calls it for every request; the
// http.Server Fastify creates for itself is never listened on.
// Serve it with `npx tsgunicorn 'examples/fastify.mjs:createApp()'`.
import Fastify from 'fastify';

export async function createApp(options = {}) {
  const app = Fastify({ logger: false, ...options });

  // A string reply is sent as text/plain.
  app.get('/', async () => 'Hello from Fastify\n');

  app.get('/json', async () => ({ framework: 'fastify', worker: process.pid }));

  await app.ready();
  return app.routing;
}
