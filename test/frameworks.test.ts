// Each framework example in examples/ served by the real tsgunicorn with the real package from
// npm: a text route and a JSON route, answered by a worker of this master.

import test from 'ava';
import { get, freePort, start } from './helpers/daemon.js';

interface Case {
  readonly framework: string;
  readonly app: string;
  readonly hello: string;
}

const CASES: readonly Case[] = [
  { framework: 'express', app: 'examples/express.mjs', hello: 'Hello from Express\n' },
  { framework: 'koa', app: 'examples/koa.mjs:handler', hello: 'Hello from Koa\n' },
  { framework: 'fastify', app: 'examples/fastify.mjs:createApp()', hello: 'Hello from Fastify\n' },
  { framework: 'hono', app: 'examples/hono.mjs', hello: 'Hello from Hono\n' },
  { framework: 'nestjs', app: 'examples/nestjs.mjs:createApp()', hello: 'Hello from NestJS\n' },
];

for (const c of CASES) {
  test(`${c.framework}: tsgunicorn '${c.app}' serves text and JSON`, async (t) => {
    const port = await freePort();
    const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, c.app]);
    await d.waitReady(30000);
    const [worker] = await d.waitWorkers(1);

    const hello = await get(`http://127.0.0.1:${port}/`);
    t.is(hello.status, 200);
    t.regex(String(hello.headers['content-type']), /^text\/plain/);
    t.is(hello.body, c.hello);

    const json = await get(`http://127.0.0.1:${port}/json`);
    t.is(json.status, 200);
    t.regex(String(json.headers['content-type']), /^application\/json/);
    t.deepEqual(JSON.parse(json.body), { framework: c.framework, worker });

    const missing = await get(`http://127.0.0.1:${port}/no-such-route`);
    t.is(missing.status, 404);

    d.signal('SIGTERM');
    t.is((await d.exited).code, 0);
  });
}
