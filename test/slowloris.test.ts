// Connection-level limits against a real daemon: header_timeout against clients that trickle their
// request head (slowloris), and worker_connections per worker (over all its accept handles).

import test, { type ExecutionContext } from 'ava';
import { connect, type Socket } from 'node:net';
import { ACCEPT_HANDLES } from '../src/ipc/protocol.js';
import { fixture, freePort, get, sleep, socketInodes, start, tcpInodes, waitUntil } from './helpers/daemon.js';

const HEAD = 'GET / HTTP/1.1\r\nHost: x\r\n';

interface Closed {
  readonly text: string;
  readonly afterMs: number;
}

/** Opens a connection; resolves with what the server sent once it closes the connection. */
function open(port: number, onConnect: (s: Socket) => void): { socket: Socket; closed: Promise<Closed> } {
  const t0 = Date.now();
  const socket = connect(port, '127.0.0.1');
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => { text += d; });
  socket.on('error', () => { /* reset by the server: seen as a close */ });
  socket.on('connect', () => onConnect(socket));
  const closed = new Promise<Closed>((resolve) => socket.on('close', () => resolve({ text, afterMs: Date.now() - t0 })));
  return { socket, closed };
}

test('a client trickling its headers, and one sending nothing, get 408 after header_timeout and never reach the app', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--header-timeout', '2', fixture('counting-app.mjs')]);
  await d.waitReady();
  let drip: NodeJS.Timeout | undefined;
  const trickler = open(port, (s) => {
    s.write(HEAD);
    let n = 0;
    drip = setInterval(() => s.write(`X-Drip-${n++}: a\r\n`), 300);
  });
  const silent = open(port, () => { /* says nothing at all */ });
  t.teardown(() => { clearInterval(drip); trickler.socket.destroy(); silent.socket.destroy(); });
  const [a, b] = await Promise.all([trickler.closed, silent.closed]);
  clearInterval(drip);
  t.log(`trickler closed after ${a.afterMs} ms, silent client after ${b.afterMs} ms (header_timeout 2 s, checked every 1 s)`);
  for (const c of [a, b]) {
    // Node writes the 408 and closes at once; a busy machine or a client still writing can lose
    // the 408 to the close (a reset), so a plain close counts too.
    t.regex(c.text, /^(HTTP\/1\.1 408 Request Timeout\r\n[^]*)?$/);
    t.true(c.afterMs >= 1900, `not before header_timeout (${c.afterMs} ms)`);
    t.true(c.afterMs < 10000, `soon after header_timeout + the 1 s check interval (${c.afterMs} ms)`);
  }
  t.true([a, b].some((c) => c.text !== ''), 'a 408 was read');
  const count = JSON.parse((await get(`http://127.0.0.1:${port}/__count`)).body) as { calls: number };
  t.is(count.calls, 0);
});

/** Sequential normal requests for `ms`: their latencies in ms, and the workers that served them. */
async function normalRequests(t: ExecutionContext, port: number, ms: number): Promise<{ latencies: number[]; workers: Set<string> }> {
  const latencies: number[] = [];
  const workers = new Set<string>();
  const until = Date.now() + ms;
  while (Date.now() < until || latencies.length < 5) {
    const began = process.hrtime.bigint();
    const r = await get(`http://127.0.0.1:${port}/normal`);
    latencies.push(Number(process.hrtime.bigint() - began) / 1e6);
    t.is(r.status, 200);
    workers.add(String(r.headers['x-worker']));
  }
  return { latencies: latencies.sort((x, y) => x - y), workers };
}

const summary = (l: number[]): string => `median ${l[l.length >> 1]!.toFixed(1)} ms, max ${l[l.length - 1]!.toFixed(1)} ms over ${l.length}`;

test('500 slowloris connections do not delay a normal request past 1 s, and header_timeout clears them', async (t) => {
  const port = await freePort();
  const headerTimeout = 10; // the default
  const d = start(t, ['-w', '2', '-b', `127.0.0.1:${port}`, fixture('app.mjs')]);
  await d.waitReady();
  const workers = await d.waitWorkers(2);
  // The same requests without slowloris first: this machine's own latency, to tell the delay apart.
  const quiet = await normalRequests(t, port, 1500);

  // 500 connections, each sending its request head one byte of a never-ending header line at a time.
  const N = 500;
  const loris: ReturnType<typeof open>[] = [];
  let connected = 0;
  let closedCount = 0;
  const t0 = Date.now();
  for (let i = 0; i < N; i++) {
    const c = open(port, (s) => { connected++; s.write(`${HEAD}X-Slow-${i}: `); });
    void c.closed.then(() => { closedCount++; });
    loris.push(c);
    if (i % 50 === 49) await sleep(10);
  }
  const drip = setInterval(() => { for (const c of loris) if (!c.socket.destroyed) c.socket.write('a'); }, 300);
  t.teardown(() => { clearInterval(drip); for (const c of loris) c.socket.destroy(); });
  await waitUntil('500 slowloris connections', () => connected === N, 10000);
  const opened = Date.now() - t0;

  const loaded = await normalRequests(t, port, 2500);
  const stillOpen = N - closedCount;
  const measuredBy = Date.now() - t0;
  t.log(`without slowloris: ${summary(quiet.latencies)}`);
  t.log(`with 500 slowloris connections (open after ${opened} ms, ${stillOpen} still open at the end): ${summary(loaded.latencies)}; `
    + `served by ${[...loaded.workers].join(', ')}`);
  t.true(stillOpen >= N - 5, 'the slowloris connections were held during the measurement');
  t.true(measuredBy < headerTimeout * 1000, `measured before header_timeout could clear them (${measuredBy} ms)`);
  // The delay they cause, on top of what the machine takes anyway (a few ms on an idle machine).
  const worst = loaded.latencies[loaded.latencies.length - 1]!;
  const quietWorst = quiet.latencies[quiet.latencies.length - 1]!;
  t.true(worst < 1000 + quietWorst, `slowest normal request ${worst.toFixed(1)} ms (${quietWorst.toFixed(1)} ms without slowloris)`);

  // header_timeout then clears them: the server answers 408 and closes every one. A client still
  // writing when the server closes gets a reset, which can discard the 408 before it reads it.
  const ends = await Promise.all(loris.map((c) => c.closed));
  clearInterval(drip);
  const timedOut = ends.filter((e) => /^HTTP\/1\.1 408 /.test(e.text)).length;
  const lastClose = Math.max(...ends.map((e) => e.afterMs));
  const firstClose = Math.min(...ends.map((e) => e.afterMs));
  t.log(`all 500 closed by the server between ${firstClose} and ${lastClose} ms after they opened; ${timedOut} of them read the 408 before the close`);
  t.deepEqual(ends.filter((e) => e.text !== '' && !/^HTTP\/1\.1 408 /.test(e.text)), [], 'nothing but 408s');
  t.true(timedOut > 0);
  t.true(firstClose >= headerTimeout * 1000 - 100, 'none closed before header_timeout');
  t.true(lastClose < (headerTimeout + 6) * 1000, 'all closed soon after header_timeout');
  t.deepEqual(d.workers(), workers, 'same workers');
});

/** A keep-alive connection that has been served once; resolves with the worker that served it, or null if dropped. */
function held(port: number): Promise<{ socket: Socket; worker: number | null }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('latin1');
    socket.on('error', () => { /* dropped */ });
    socket.on('data', (d: string) => {
      text += d;
      const m = /X-Worker: (\d+)\r\n[\s\S]*\r\n\r\n\{.*\}$/.exec(text);
      if (m) resolve({ socket, worker: Number(m[1]) });
    });
    socket.on('close', () => resolve({ socket, worker: null }));
    socket.on('connect', () => socket.write('GET /__count HTTP/1.1\r\nHost: x\r\n\r\n'));
  });
}

test('worker_connections: past its limit a worker drops new connections at once, does not crash, and serves again when one frees', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--worker-connections', '5', '--keep-alive', '60', fixture('counting-app.mjs')]);
  await d.waitReady();
  const [worker] = await d.waitWorkers(1);
  const kept: Socket[] = [];
  t.teardown(() => { for (const s of kept) s.destroy(); });
  for (let i = 0; i < 5; i++) {
    const c = await held(port);
    kept.push(c.socket);
    t.is(c.worker, worker, `connection ${i + 1} of 5 served`);
  }
  // The sixth: the worker accepts it and closes it straight away: no response, no hang.
  const t0 = Date.now();
  const sixth = await held(port);
  t.is(sixth.worker, null, 'dropped without a response');
  t.true(Date.now() - t0 < 5000, `dropped at once, not left hanging (${Date.now() - t0} ms; keep-alive is 60 s)`);
  t.deepEqual(d.workers(), [worker!], 'the worker is still there');
  kept.pop()!.destroy();
  let again = null as number | null;
  await waitUntil('a request on the freed connection slot', async () => {
    const c = await held(port);
    if (c.worker !== null) kept.push(c.socket);
    again = c.worker;
    return again !== null;
  }, 5000);
  t.is(again, worker);
  t.deepEqual(d.workers(), [worker!]);
});

test('worker_connections counts every accept handle: of 40 connections arriving at once, a worker with a limit of 5 serves 5 and drops the rest, twice', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--worker-connections', '5', '--keep-alive', '60', fixture('counting-app.mjs')]);
  await d.waitReady();
  const [worker] = await d.waitWorkers(1);
  // The worker accepts on ACCEPT_HANDLES descriptors of the one listening socket.
  const listening = tcpInodes(port, 'listen');
  const own = socketInodes(worker!).filter((i) => listening.includes(i));
  t.is(own.length, ACCEPT_HANDLES, `the worker holds the listening socket ${ACCEPT_HANDLES} times`);
  t.is(new Set(own).size, 1, 'all of them the one socket');
  // A burst: many connections wait in the accept queue at once, so several handles take one each
  // in the same event-loop iteration; the limit holds over all of them.
  // Twice: the slots the first burst's connections held are free again once they close.
  for (const round of [1, 2]) {
    const burst = await Promise.all(Array.from({ length: 40 }, () => held(port)));
    const served = burst.filter((c) => c.worker !== null);
    t.is(served.length, 5, `burst ${round}: served ${served.length} of 40`);
    t.true(served.every((c) => c.worker === worker));
    await Promise.all(burst.map((c) => new Promise<void>((done) => {
      if (c.socket.destroyed) done();
      else { c.socket.once('close', () => done()); c.socket.destroy(); }
    })));
    await sleep(200); // the worker sees the closes
  }
  t.deepEqual(d.workers(), [worker!], 'the worker is still there');
});

test('worker_connections: while one worker is full, the others keep serving', async (t) => {
  const port = await freePort();
  const limit = 3;
  const d = start(t, ['-w', '2', '-b', `127.0.0.1:${port}`, '--worker-connections', String(limit), '--keep-alive', '60', fixture('counting-app.mjs')]);
  await d.waitReady();
  const workers = await d.waitWorkers(2);
  const kept: Socket[] = [];
  t.teardown(() => { for (const s of kept) s.destroy(); });
  // Hold keep-alive connections until one worker has `limit` of them.
  const per = new Map<number, number>();
  let full: number | null = null;
  for (let i = 0; i < 40 && full === null; i++) {
    const c = await held(port);
    if (c.worker === null) continue;
    kept.push(c.socket);
    per.set(c.worker, (per.get(c.worker) ?? 0) + 1);
    if (per.get(c.worker) === limit) full = c.worker;
  }
  t.not(full, null, `a worker reached ${limit} connections: ${JSON.stringify([...per])}`);
  const other = workers.find((w) => w !== full)!;
  if ((per.get(other) ?? 0) >= limit) { t.fail('both workers filled up'); return; }
  // New connections: the kernel hands each to either worker; the full one drops it, the other serves it.
  // Which worker wakes first is the kernel's and the scheduler's choice: under CI load the full
  // one took 60 in a row (docs/reliability.md), so this tries for up to 10 s.
  let served = 0;
  let dropped = 0;
  const until = Date.now() + 10_000;
  while (Date.now() < until && served < 10) {
    const started = Date.now();
    const c = await held(port);
    t.true(Date.now() - started < 2000, 'no connection hangs');
    if (c.worker === null) dropped++;
    else {
      served++;
      t.is(c.worker, other, 'only the worker with room serves');
    }
    c.socket.destroy();
    await sleep(20);
  }
  t.log(`per worker before: ${JSON.stringify([...per])}; then ${served} served by the other worker, ${dropped} dropped by the full one`);
  t.true(served > 0, 'the worker with room kept serving');
  t.deepEqual(d.workers(), workers, 'no worker crashed or was replaced');
});
