import test from 'ava';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { fixture, freePort, get, start, tempDir, waitUntil } from './helpers/daemon.js';

const lines = (file: string): string[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);

test('access log lines follow the format, and USR1 reopens a rotated file', async (t) => {
  const dir = tempDir();
  const log = join(dir, 'access.log');
  const port = await freePort();
  const d = start(t, ['-w', '2', '-b', `127.0.0.1:${port}`, '--access-logfile', log, fixture('app.mjs')]);
  await d.waitReady();
  await get(`http://127.0.0.1:${port}/one?x=1`, { 'User-Agent': 'tester/1.0', Referer: 'http://ref.example/' });
  await waitUntil('first access line', () => lines(log).length === 1);
  t.regex(lines(log)[0]!, /^127\.0\.0\.1 - - \[\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "GET \/one\?x=1 HTTP\/1\.1" 200 15 "http:\/\/ref\.example\/" "tester\/1\.0"$/);

  renameSync(log, `${log}.1`);
  d.signal('SIGUSR1');
  await d.waitForLog(/USR1: reopening log files/);
  await waitUntil('reopened', async () => {
    await get(`http://127.0.0.1:${port}/two`);
    return lines(log).some((l) => l.includes('GET /two'));
  });
  t.is(lines(`${log}.1`).length, 1, 'the rotated file keeps the old line only');
  for (const l of lines(log)) t.regex(l, /"GET \/two HTTP\/1\.1" 200 15 "-" "-"$/);
});

test('custom access log formats: timing, headers, status and method atoms', async (t) => {
  const dir = tempDir();
  const log = join(dir, 'access.log');
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--access-logfile', log,
    '--access-logformat', '%(m)s %(U)s q=%(q)s %(s)s %(B)s %(D)sus %({x-req-id}i)s %({x-worker}o)s %(p)s %(H)s', fixture('app.mjs')]);
  await d.waitReady();
  await get(`http://127.0.0.1:${port}/p?a=b`, { 'X-Req-Id': 'abc123' });
  await waitUntil('access line', () => lines(log).length === 1);
  t.regex(lines(log)[0]!, /^GET \/p q=a=b 200 13 \d+us abc123 \d+ <\d+> HTTP\/1\.1$/);
});

test('no access log by default and no per-request error-log lines', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--log-level', 'debug', fixture('app.mjs')]);
  await d.waitReady();
  const before = d.output.length;
  for (let i = 0; i < 20; i++) await get(`http://127.0.0.1:${port}/quiet`);
  t.is(d.output.slice(before), '');
});
