import test from 'ava';
import { fixture, freePort, get, start, waitUntil } from './helpers/daemon.js';

async function scrape(port: number): Promise<string> {
  return (await get(`http://127.0.0.1:${port}/metrics`)).body;
}

function value(text: string, metric: string): number {
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(metric) && !line.startsWith('#')) {
    const m = /^(\S+?)(\{[^}]*\})? ([\d.e+-]+)$/.exec(line);
    if (m && m[1] === metric.split('{')[0] && (!metric.includes('{') || line.startsWith(metric))) sum += Number(m[3]);
  }
  return sum;
}

test('the metrics endpoint counts exactly the requests sent, by status class, across workers and restarts', async (t) => {
  const port = await freePort();
  const mport = await freePort();
  const d = start(t, ['-w', '2', '-b', `127.0.0.1:${port}`, '--metrics-bind', `127.0.0.1:${mport}`, fixture('app.mjs')]);
  await d.waitReady();
  await d.waitForLog(/Metrics at 127\.0\.0\.1:\d+, path \/metrics/);
  const before = await scrape(mport);
  const ok0 = value(before, 'tsgunicorn_http_requests_total{status_class="2xx",protocol="HTTP/1.1"}');
  const count0 = value(before, 'tsgunicorn_http_request_duration_seconds_count');
  for (let i = 0; i < 37; i++) t.is((await get(`http://127.0.0.1:${port}/`)).status, 200);
  for (let i = 0; i < 3; i++) t.is((await get(`http://127.0.0.1:${port}/throw`)).status, 500);
  await waitUntil('counted', async () => value(await scrape(mport), 'tsgunicorn_http_request_duration_seconds_count') === count0 + 40);
  const after = await scrape(mport);
  t.is(value(after, 'tsgunicorn_http_requests_total{status_class="2xx",protocol="HTTP/1.1"}') - ok0, 37);
  t.is(value(after, 'tsgunicorn_http_requests_total{status_class="5xx",protocol="HTTP/1.1"}'), 3);
  t.regex(after, /tsgunicorn_http_request_duration_seconds_bucket\{le="0\.005"\} \d+/);
  t.is(value(after, 'tsgunicorn_workers'), 2);

  // A HUP replaces every worker: counters do not go backwards, the reload is counted.
  d.signal('SIGHUP');
  await d.waitForLog(/Reloaded: 2 new worker/);
  await waitUntil('old workers gone', () => d.workers().length === 2);
  await waitUntil('final numbers of the old workers kept', async () => value(await scrape(mport), 'tsgunicorn_http_requests_total{status_class="2xx",protocol="HTTP/1.1"}') - ok0 === 37);
  const reloaded = await scrape(mport);
  t.is(value(reloaded, 'tsgunicorn_reloads_total'), 1);
  for (let i = 0; i < 5; i++) await get(`http://127.0.0.1:${port}/`);
  await waitUntil('new requests counted', async () => value(await scrape(mport), 'tsgunicorn_http_requests_total{status_class="2xx",protocol="HTTP/1.1"}') - ok0 === 42);
  process.kill(d.workers()[0]!, 'SIGKILL');
  await waitUntil('restart counted', async () => value(await scrape(mport), 'tsgunicorn_worker_restarts_total') === 1);
});
