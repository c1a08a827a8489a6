import test from 'ava';
import { fixture, freePort, get, rawHttp, start } from './helpers/daemon.js';

test('malformed HTTP gets a 4xx and the worker keeps serving', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, fixture('app.mjs')]);
  await d.waitReady();
  const [worker] = await d.waitWorkers(1);
  const cases = [
    'GARBAGE\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
    'GET / HTTP/1.1\r\nBad Header\r\n\r\n',
    'GET /\x01 HTTP/1.1\r\n\r\n',
  ];
  for (const bytes of cases) {
    const answer = await rawHttp(port, bytes);
    t.regex(answer.text, /^HTTP\/1\.[01] 4\d\d /, JSON.stringify(bytes));
  }
  t.deepEqual(d.workers(), [worker!], 'same worker, not restarted');
  const ok = await get(`http://127.0.0.1:${port}/after`);
  t.is(ok.status, 200);
  t.is(ok.headers['x-worker'], String(worker));
});

test('request limits answer 414 and 431 before the app runs', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--limit-request-line', '100', '--limit-request-fields', '5',
    '--limit-request-field-size', '50', fixture('app.mjs')]);
  await d.waitReady();
  const base = `http://127.0.0.1:${port}`;
  t.is((await get(`${base}/${'a'.repeat(120)}`)).status, 414);
  const many: Record<string, string> = {};
  for (let i = 0; i < 6; i++) many[`x-h${i}`] = 'v';
  t.is((await get(`${base}/`, many)).status, 431);
  t.is((await get(`${base}/`, { 'x-big': 'b'.repeat(60) })).status, 431);
  t.is((await get(`${base}/${'a'.repeat(60)}`, { 'x-ok': 'fine' })).status, 200);
});

test('an exception in a handler answers 500 and the worker keeps serving', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, fixture('app.mjs')]);
  await d.waitReady();
  const [worker] = await d.waitWorkers(1);
  t.is((await get(`http://127.0.0.1:${port}/throw`)).status, 500);
  await d.waitForLog(/Error handling request GET \/throw: Error: handler blew up/);
  const ok = await get(`http://127.0.0.1:${port}/`);
  t.is(ok.headers['x-worker'], String(worker));
});

test('keepalive 0 closes every connection after its response', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '--keep-alive', '0', '-b', `127.0.0.1:${port}`, fixture('app.mjs')]);
  await d.waitReady();
  const answer = await rawHttp(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  t.regex(answer.text, /^HTTP\/1\.1 200/);
  t.regex(answer.text, /\r\nconnection: close\r\n/i);
  t.true(answer.closed, 'the server closed the connection');
});
