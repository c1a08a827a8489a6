import test from 'ava';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { fixture, freePort, get, runCli, sleep, start, waitUntil, alive } from './helpers/daemon.js';
import { cpuMs } from './helpers/proc.js';
import { startLoad } from './helpers/load.js';

test.serial('an uncaught exception or unhandled rejection is logged with the request and the worker is replaced gracefully', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '2', '-b', `127.0.0.1:${port}`, fixture('app.mjs')]);
  await d.waitReady();
  const load = startLoad(t, `http://127.0.0.1:${port}/`, 10);
  const res = await get(`http://127.0.0.1:${port}/throw-later`);
  t.is(res.body, 'answered anyway\n', 'the request in flight still got its answer');
  await d.waitForLog(/Uncaught exception in worker (\d+) while serving GET \/throw-later: Error: async blew up/);
  const victim = Number(/Uncaught exception in worker (\d+)/.exec(d.output)![1]);
  await d.waitForLog(new RegExp(`Worker ${victim} had an uncaught exception: replacing it`));
  await waitUntil('replaced', () => !alive(victim) && d.workers().length === 2);
  t.is((await get(`http://127.0.0.1:${port}/reject`)).body, 'rejected\n');
  await d.waitForLog(/Unhandled rejection in worker \d+.*: Error: nobody awaited this/);
  const r = await load.stop();
  t.is(r.failed, 0, `no request lost on the siblings: ${JSON.stringify(r.errors)}`);
});

test.serial('process.exit() in the app is a worker death the master repairs', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, fixture('app.mjs')]);
  await d.waitReady();
  const [w] = await d.waitWorkers(1);
  // A worker that exits on its own within 2 s of starting counts as a failed boot (next test);
  // this one has been serving for longer.
  await sleep(2200);
  await get(`http://127.0.0.1:${port}/exit`).catch(() => null);
  await d.waitForLog(new RegExp(`Worker ${w} exited unexpectedly \\(code 7\\)`));
  await waitUntil('replacement', () => d.workers().length === 1 && d.workers()[0] !== w);
  t.is((await get(`http://127.0.0.1:${port}/`)).status, 200);
});

test.serial('workers that keep dying right after boot are respawned with backoff, then the master exits 3', async (t) => {
  const port = await freePort();
  const began = Date.now();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, fixture('dies-after-boot.mjs')]);
  const { code } = await d.exited;
  t.is(code, 3, d.output);
  const exits = (d.output.match(/exited unexpectedly|failed to boot/g) ?? []).length;
  t.true(exits >= 3, `${exits} worker deaths before giving up`);
  t.regex(d.output, /retrying in \d+ ms/);
  t.true(Date.now() - began > 300, 'not a tight loop');
});

test.serial('kill -9 of a worker every 500 ms for 10 s under load: the service answers throughout, the master stays', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '3', '-b', `127.0.0.1:${port}`, fixture('app.mjs')]);
  await d.waitReady();
  await d.waitWorkers(3);
  const load = startLoad(t, `http://127.0.0.1:${port}/`, 20);
  let kills = 0;
  let longestGap = 0;
  let last = load.served;
  let lastChange = Date.now();
  const watch = setInterval(() => {
    if (load.served !== last) { last = load.served; longestGap = Math.max(longestGap, Date.now() - lastChange); lastChange = Date.now(); }
  }, 20);
  const end = Date.now() + 10000;
  while (Date.now() < end) {
    const ws = d.workers();
    if (ws.length > 0) { process.kill(ws[kills % ws.length]!, 'SIGKILL'); kills++; }
    await sleep(500);
  }
  clearInterval(watch);
  const r = await load.stop();
  t.log(`${kills} workers killed; ${r.ok} requests served, ${r.failed} failed (in flight on killed workers)`, r.errors);
  t.true(alive(d.pid), 'master intact');
  t.true(r.ok > 100);
  t.true(longestGap < 2000, `the service answered throughout (longest pause ${longestGap} ms)`);
  t.true(r.failed <= kills * 20, 'only requests in flight on killed workers fail');
  t.is((await get(`http://127.0.0.1:${port}/`)).status, 200);
});

test.serial('a SIGSTOPped worker is replaced within timeout + 1 s while the others keep serving', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '2', '-t', '2', '-b', `127.0.0.1:${port}`, fixture('app.mjs')]);
  await d.waitReady();
  const [frozen, other] = await d.waitWorkers(2);
  const load = startLoad(t, `http://127.0.0.1:${port}/`, 4);
  process.kill(frozen!, 'SIGSTOP');
  const stoppedAt = Date.now();
  await waitUntil('frozen worker gone', () => !alive(frozen!), 6000);
  const took = Date.now() - stoppedAt;
  t.true(took <= 3000 + 500, `replaced after ${took} ms`);
  await waitUntil('replacement', () => d.workers().length === 2);
  t.true(d.workers().includes(other!));
  const served = load.served;
  await waitUntil('still serving', () => load.served > served + 50);
  await load.stop();
});

test.serial('EMFILE on accept neither crashes nor spins the worker', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, fixture('app.mjs')], { prefix: ['prlimit', '--nofile=64:64', '--'] });
  await d.waitReady();
  const [w] = await d.waitWorkers(1);
  const sockets: Socket[] = [];
  for (let i = 0; i < 120; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => { /* refused or reset: expected past the limit */ });
    sockets.push(s);
  }
  await sleep(1500);
  const cpu = (): number => { const f = readFileSync(`/proc/${w}/stat`, 'utf8').split(') ')[1]!.split(' '); return Number(f[11]) + Number(f[12]); };
  const before = cpu();
  await sleep(1000);
  const spent = cpu() - before;
  t.true(spent < 50, `worker used ${spent} ticks in 1 s while out of descriptors (no busy loop)`);
  for (const s of sockets) s.destroy();
  await sleep(300);
  t.true(alive(w!), 'the worker survived');
  t.deepEqual(d.workers(), [w!]);
  await waitUntil('serving again', async () => (await get(`http://127.0.0.1:${port}/`).catch(() => null))?.status === 200);
});

test.serial('an unwritable log file (full disk) does not take the server down', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--error-logfile', '/dev/full', '--access-logfile', '/dev/full', fixture('app.mjs')]);
  await waitUntil('serving', async () => (await get(`http://127.0.0.1:${port}/`).catch(() => null))?.status === 200);
  for (let i = 0; i < 20; i++) t.is((await get(`http://127.0.0.1:${port}/`)).status, 200);
  await d.waitForLog(/cannot write log file \/dev\/full \(ENOSPC/);
  t.true(alive(d.pid));
  const check = await runCli(['--version']);
  t.is(check.code, 0);
});

test.serial('standard output and error closing under the server (EPIPE) neither kills nor spins it', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '2', '-b', `127.0.0.1:${port}`, '--access-logfile', '-', fixture('app.mjs')]);
  await d.waitReady();
  // The reader of both pipes goes away, as when `tsgunicorn ... | head` ends.
  d.proc.stdout!.destroy();
  d.proc.stderr!.destroy();
  for (let i = 0; i < 20; i++) t.is((await get(`http://127.0.0.1:${port}/`)).status, 200);
  // Things the master and the workers log: a reload, a worker killed and replaced.
  d.signal('SIGHUP');
  await sleep(1500);
  const [victim] = await d.waitWorkers(2);
  process.kill(victim!, 'SIGKILL');
  await waitUntil('the killed worker replaced', () => d.workers().length === 2 && !d.workers().includes(victim!));
  for (let i = 0; i < 20; i++) t.is((await get(`http://127.0.0.1:${port}/`)).status, 200);
  // Nobody loops on the failed writes: idle, master and workers use little CPU (a spin uses ~1 s/s).
  const procs = [d.pid, ...d.workers()];
  const before = procs.map(cpuMs);
  await sleep(2000);
  const used = procs.map((p, i) => cpuMs(p) - before[i]!);
  t.true(used.every((ms) => ms < 500), `CPU ms over 2 s idle: ${used.join(', ')}`);
  const workers = d.workers();
  d.signal('SIGTERM');
  t.is((await d.exited).code, 0);
  t.true(workers.every((p) => !alive(p)));
});
