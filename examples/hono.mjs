// Hono 4: the app has fetch(request), so export it as it is; tsgunicorn serves Web-standard
// handlers through @hono/node-server.
// Serve it with `npx tsgunicorn examples/hono.mjs`.
import { Hono } from 'hono';

const app = new Hono();

app.get('/', (c) => c.text('Hello from Hono\n'));

app.get('/json', (c) => c.json({ framework: 'hono', worker: process.pid }));

export default app;
