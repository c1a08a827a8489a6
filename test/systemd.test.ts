import test from 'ava';
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive, fixture, freePort, get, sleep, start, tcpInodes, tempDir, waitUntil } from './helpers/daemon.js';
import { NotifySocket } from './helpers/notify-socket.js';
import { lacksNotify, lacksSocketActivate, serialNeeding } from './helpers/requirements.js';

serialNeeding(lacksSocketActivate(), 'systemd-socket-activate with two named sockets: serves both ports with 2 workers and binds nothing', async (t) => {
  const [p1, p2] = [await freePort(), await freePort()];
  const d = start(t, ['-w', '2', '-b', '127.0.0.1:1', fixture('app.mjs')], {
    prefix: ['systemd-socket-activate', '-l', `127.0.0.1:${p1}`, '-l', `127.0.0.1:${p2}`, '--fdname=web:admin'],
  });
  await waitUntil('activation socket', () => tcpInodes(p1, 'listen').length === 1);
  const first = await get(`http://127.0.0.1:${p1}/one`); // the first connection starts tsgunicorn
  t.is(first.body, 'hello GET /one\n');
  await d.waitReady();
  t.is((await get(`http://127.0.0.1:${p2}/two`)).body, 'hello GET /two\n');
  t.is((await d.waitWorkers(2)).length, 2);
  t.regex(d.output, /Listening at: fd:\/\/3 \(web\), fd:\/\/4 \(admin\)/);
  t.regex(d.output, /bind 127\.0\.0\.1:1 ignored: serving on the 2 socket\(s\) passed by systemd/);
  t.is(tcpInodes(p1, 'listen').length, 1, 'one listening socket on the first port: nothing bound besides systemd\'s');
  t.is(tcpInodes(p2, 'listen').length, 1);
  for (const w of d.workers()) {
    const env = readFileSync(`/proc/${w}/environ`, 'utf8');
    t.notRegex(env, /(^|\0)LISTEN_(PID|FDS|FDNAMES)=/, 'workers do not see LISTEN_*');
  }
});

serialNeeding(lacksNotify(), 'sd_notify: READY=1 once serving, STATUS=, watchdog pings, RELOADING/READY on HUP, STOPPING on TERM, only from the master', async (t) => {
  const ns = new NotifySocket();
  t.teardown(() => ns.close());
  await ns.ready();
  const port = await freePort();
  const d = start(t, ['-w', '2', '-b', `127.0.0.1:${port}`, fixture('app.mjs')], {
    env: { NOTIFY_SOCKET: ns.path, WATCHDOG_USEC: '1000000' },
  });
  const ready = await ns.waitFor('READY', '1');
  t.is((await get(`http://127.0.0.1:${port}/`)).status, 200, 'the port accepts once READY=1 is sent');
  t.regex(d.output, /Booted worker[\s\S]*Ready: 2 worker/, 'READY follows the workers booting');
  t.regex(ready.fields['STATUS'] ?? '', /^Serving: 2\/2 workers, \d+ requests served$/);

  const from = ns.now();
  await sleep(2500);
  const pings = ns.with('WATCHDOG', '1').filter((m) => m.at >= from);
  t.true(pings.length >= 3, `${pings.length} watchdog pings in 2.5 s`);

  const oldWorkers = d.workers();
  const beforeHup = ns.now();
  d.signal('SIGHUP');
  const reloading = await ns.waitFor('RELOADING', '1', beforeHup);
  t.regex(reloading.fields['MONOTONIC_USEC'] ?? '', /^\d+$/);
  const monotonicNow = process.hrtime.bigint() / 1000n;
  t.true(BigInt(reloading.fields['MONOTONIC_USEC']!) <= monotonicNow, 'MONOTONIC_USEC is CLOCK_MONOTONIC');
  const reReady = await ns.waitFor('READY', '1', reloading.at);
  t.regex(reReady.fields['STATUS'] ?? '', /last reload/);
  await d.waitForLog(/Reloaded: 2 new worker/);

  // The old workers drain after the reload: reading an exiting process's environ fails (ESRCH).
  await waitUntil('the old workers gone', () => !oldWorkers.some(alive));
  const workers = await d.waitWorkers(2);
  for (const w of workers) t.notRegex(readFileSync(`/proc/${w}/environ`, 'utf8'), /(^|\0)(NOTIFY_SOCKET|WATCHDOG_USEC)=/);
  const beforeTerm = ns.now();
  d.signal('SIGTERM');
  await ns.waitFor('STOPPING', '1', beforeTerm);
  t.is((await d.exited).code, 0);
  const senders = new Set(ns.messages.map((m) => m.pid));
  t.deepEqual([...senders], [d.pid], 'every datagram came from the master');
});

serialNeeding(lacksNotify(), 'a master whose workers are all stuck stops pinging the watchdog', async (t) => {
  const ns = new NotifySocket();
  t.teardown(() => ns.close());
  await ns.ready();
  const port = await freePort();
  const d = start(t, ['-w', '1', '-t', '120', '-b', `127.0.0.1:${port}`, fixture('app.mjs')], {
    env: { NOTIFY_SOCKET: ns.path, WATCHDOG_USEC: '1000000' },
  });
  await ns.waitFor('READY', '1');
  await ns.waitFor('WATCHDOG', '1');
  const hung = [get(`http://127.0.0.1:${port}/hang`).catch(() => null)];
  await sleep(3000);
  const from = ns.now();
  await sleep(2500);
  const later = ns.with('WATCHDOG', '1').filter((m) => m.at >= from);
  t.is(later.length, 0, 'no WATCHDOG=1 while every worker is stuck');
  t.true(alive(d.pid), 'the master itself still runs');
  d.kill();
  await Promise.all(hung);
});

test.serial('with JOURNAL_STREAM naming stderr, log lines carry <N> priorities and no timestamp', async (t) => {
  const file = join(tempDir(), 'stderr.log');
  const fd = openSync(file, 'w');
  const st = fstatSync(fd);
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, fixture('app.mjs')], {
    env: { JOURNAL_STREAM: `${st.dev}:${st.ino}` },
    stderrFd: fd,
  });
  closeSync(fd);
  await waitUntil('ready line', () => readFileSync(file, 'utf8').includes('Ready: 1 worker'));
  t.is((await get(`http://127.0.0.1:${port}/throw`)).status, 500);
  d.signal('SIGTTOU'); // at the minimum already: logs nothing; then a warning-level event:
  process.kill(d.workers()[0]!, 'SIGKILL');
  await waitUntil('error and warning lines', () => /^<3>Error handling/m.test(readFileSync(file, 'utf8')) && /^<4>Worker \d+ exited/m.test(readFileSync(file, 'utf8')));
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  for (const l of lines) t.regex(l, /^<[0-7]>/, l);
  t.true(lines.some((l) => /^<6>Starting tsgunicorn/.test(l)));
  t.true(lines.some((l) => /^<3>Error handling request GET \/throw/.test(l)));
  t.true(lines.some((l) => /^<4>Worker \d+ exited unexpectedly/.test(l)));
  t.false(lines.some((l) => /\[\d{4}-\d\d-\d\d /.test(l)), 'no timestamps');
});
