// The idle keep-alive race, on tsgunicorn's side (docs/fleet.md): a request that is already in an
// idle connection's socket buffer when its keep-alive time runs out is served, not reset. The
// worker's event loop is held busy (in a timer callback) across the moment the keep-alive timer expires while the
// request arrives: when the loop runs again, the expired timer comes before the read.

import test from 'ava';
import { connect } from 'node:net';
import { fixture, freePort, get, sleep, start } from './helpers/daemon.js';

test.serial('a request that arrived while the keep-alive timer expired is served, not reset', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--keep-alive', '1', fixture('app.mjs')]);
  await d.waitReady();
  const sock = connect(port, '127.0.0.1');
  let text = '';
  let error: string | null = null;
  sock.setEncoding('latin1');
  sock.on('data', (c: string) => { text += c; });
  sock.on('error', (e: NodeJS.ErrnoException) => { error = e.code ?? e.message; });
  const closed = new Promise<void>((done) => sock.on('close', () => done()));
  const ask = (path: string, close = false): void => { sock.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n${close ? 'Connection: close\r\n' : ''}\r\n`); };
  await new Promise<void>((done) => sock.once('connect', () => done()));
  ask('/first');
  while (!text.includes('\r\n\r\n')) await sleep(5);
  // The connection is idle now; its keep-alive timer runs out 1 s from here. The worker's loop is
  // busy from 200 ms to 1,700 ms, and the next request arrives at 1,300 ms.
  const busy = get(`http://127.0.0.1:${port}/busy?ms=1500`);
  await sleep(1300);
  ask('/second', true);
  await busy;
  await Promise.race([closed, sleep(5000)]);
  t.is(error, null, 'no reset');
  t.is((text.match(/HTTP\/1\.1 200 OK/g) ?? []).length, 2, `both requests answered: ${JSON.stringify(text)}`);
});
