// WebSockets with the `ws` package (examples/websocket.mjs): upgrades through a worker's
// http.Server, an echo round trip, and a reload (HUP) or stop (TERM) while a WebSocket is open:
// the app hears 'tsgunicorn:drain', the socket gets close code 1001 after graceful_timeout, and
// plain HTTP requests under keep-alive load meanwhile all succeed.

import test from 'ava';
import { WebSocket } from 'ws';
import { alive, freePort, get, sleep, start, waitUntil } from './helpers/daemon.js';
import { startLoad } from './helpers/load.js';

const APP = 'examples/websocket.mjs';

interface Client {
  readonly ws: WebSocket;
  readonly messages: string[];
  readonly closed: Promise<{ code: number; reason: string; at: number }>;
}

async function connect(url: string): Promise<Client> {
  const ws = new WebSocket(url);
  const messages: string[] = [];
  ws.on('message', (data) => messages.push(data.toString()));
  const closed = new Promise<{ code: number; reason: string; at: number }>((resolve) => {
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString(), at: Date.now() }));
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, messages, closed };
}

async function echo(c: Client, text: string): Promise<string> {
  const before = c.messages.length;
  c.ws.send(text);
  await waitUntil(`an echo of ${text}`, () => c.messages.length > before, 5000);
  return c.messages[before]!;
}

test('a WebSocket echo round trip through a worker', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, APP]);
  await d.waitReady();
  const c = await connect(`ws://127.0.0.1:${port}/echo`);
  t.is(await echo(c, 'hello'), 'hello');
  t.is(await echo(c, 'x'.repeat(100_000)), 'x'.repeat(100_000), 'a message over 64 KiB');
  const binary = await new Promise<Buffer>((resolve) => {
    c.ws.once('message', (data, isBinary) => { t.true(isBinary); resolve(data as Buffer); });
    c.ws.send(Buffer.from([0, 1, 2, 255]));
  });
  t.deepEqual([...binary], [0, 1, 2, 255]);
  c.ws.close(1000);
  t.is((await c.closed).code, 1000);

  // Plain HTTP on the same server, and an upgrade to a path the app refuses.
  t.regex((await get(`http://127.0.0.1:${port}/`)).body, /^plain HTTP from worker \d+\n$/);
  const refused = new WebSocket(`ws://127.0.0.1:${port}/elsewhere`);
  refused.on('error', () => { /* terminate() below reports the aborted handshake */ });
  const status = await new Promise<number>((resolve) => refused.once('unexpected-response', (_req, res) => resolve(res.statusCode!)));
  t.is(status, 404);
  refused.terminate();
});

test('HUP with a WebSocket open under keep-alive load: no HTTP request fails, the socket gets 1001 after graceful_timeout', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '2', '-b', `127.0.0.1:${port}`, '--graceful-timeout', '2', APP]);
  await d.waitReady();
  const old = await d.waitWorkers(2);
  const c = await connect(`ws://127.0.0.1:${port}/echo`);
  t.is(await echo(c, 'before'), 'before');

  const load = startLoad(t, `http://127.0.0.1:${port}/`, 10);
  await sleep(500);
  const hupAt = Date.now();
  d.signal('SIGHUP');

  // The app was told (it tells its clients), then tsgunicorn closed the socket with 1001.
  const closed = await c.closed;
  t.is(closed.code, 1001, 'going away');
  t.is(closed.reason, 'server stopping');
  t.true(c.messages.includes(JSON.stringify({ event: 'draining' })), `the app's drain notice came first: ${JSON.stringify(c.messages)}`);
  t.true(closed.at - hupAt >= 2000, `closed after graceful_timeout (${closed.at - hupAt} ms after HUP)`);
  t.true(closed.at - hupAt < 8000, `closed soon after graceful_timeout (${closed.at - hupAt} ms after HUP)`);

  await waitUntil('the old workers to exit', () => old.every((pid) => !alive(pid)), 10000);
  const fresh = await d.waitWorkers(2);
  t.false(fresh.some((pid) => old.includes(pid)), 'all workers replaced');
  await sleep(500);
  const result = await load.stop();
  t.is(result.failed, 0, `failed requests: ${JSON.stringify(result.errors)}`);
  t.true(result.ok > 50, `requests served under load: ${result.ok}`);
  t.true([...result.workers].some((w) => fresh.includes(Number(w))), 'the new workers served the load');

  // A reconnect reaches a new worker.
  const again = await connect(`ws://127.0.0.1:${port}/echo`);
  t.is(await echo(again, 'after'), 'after');
  again.ws.close(1000);
  await again.closed;
  t.regex(d.output, /graceful_timeout reached with connections open/);
});

test('TERM with a WebSocket open: the socket gets 1001 and the master exits 0', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--graceful-timeout', '1', APP]);
  await d.waitReady();
  const c = await connect(`ws://127.0.0.1:${port}/echo`);
  t.is(await echo(c, 'ping'), 'ping');
  d.signal('SIGTERM');
  t.is((await c.closed).code, 1001);
  t.is((await d.exited).code, 0);
});
