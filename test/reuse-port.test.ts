// reuse_port: one SO_REUSEPORT socket per worker slot, so the kernel spreads connections across
// workers. Each worker holds its own socket only, and a slot's socket goes when its worker goes
// for good (TTOU, a reload to fewer workers): no socket is left that nobody accepts on.

import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kernelMigratesQueued } from '../src/sockets/listener-set.js';
import { answered, assertOneSocketPerWorker, fixture, freePort, get, start, tcpInodes, tempDir, waitUntil } from './helpers/daemon.js';

test.serial('--reuse-port: one listening socket per worker, and 50 simultaneous connections spread over the workers', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '2', '--reuse-port', '-b', `127.0.0.1:${port}`, fixture('app.mjs')]);
  await d.waitReady();
  assertOneSocketPerWorker(t, await d.waitWorkers(2), port, 2);
  t.regex(d.output, new RegExp(`Listening at: 127\\.0\\.0\\.1:${port} \\(reuse-port\\)`));
  // 50 connections at once, each held for 500 ms: the worker that answers is the one that accepted.
  const replies = await Promise.all(Array.from({ length: 50 }, () => get(`http://127.0.0.1:${port}/slow?ms=500`)));
  const perWorker = new Map<string, number>();
  for (const r of replies) perWorker.set(String(r.headers['x-worker']), (perWorker.get(String(r.headers['x-worker'])) ?? 0) + 1);
  t.log('connections per worker:', [...perWorker.values()]);
  t.is(perWorker.size, 2);
  // The kernel hashes connections over the sockets: binomial(50, 1/2) is below 10 once in 10^5 runs.
  for (const n of perWorker.values()) t.true(n >= 10, `a worker took ${n} of 50 connections`);
});

test.serial('--reuse-port: TTOU, TTIN and a reload to fewer workers keep one socket per worker, and every connection is answered', async (t) => {
  const dir = tempDir();
  const conf = join(dir, 'conf.toml');
  const port = await freePort();
  const config = (workers: number): void => writeFileSync(conf, `workers = ${workers}\nreuse_port = true\nbind = ["127.0.0.1:${port}"]\n`);
  config(3);
  const d = start(t, ['-c', conf, fixture('app.mjs')]);
  await d.waitReady();
  assertOneSocketPerWorker(t, await d.waitWorkers(3), port, 3);

  d.signal('SIGTTOU');
  await waitUntil('2 workers and 2 sockets', () => d.workers().length === 2 && tcpInodes(port, 'listen').length === 2);
  assertOneSocketPerWorker(t, d.workers(), port, 2);
  t.is(await answered(port), 30, 'after TTOU no connection waits on a socket nobody accepts on');
  // What the kernel does with connections queued on the closed socket depends on a sysctl: said once.
  const hint = /reuse_port: fewer workers, so their sockets close, and the kernel resets connections still queued on them: set net\.ipv4\.tcp_migrate_req = 1/g;
  t.is((d.output.match(hint) ?? []).length, kernelMigratesQueued() ? 0 : 1);

  d.signal('SIGTTIN');
  await waitUntil('3 workers and 3 sockets', () => d.workers().length === 3 && tcpInodes(port, 'listen').length === 3);
  assertOneSocketPerWorker(t, d.workers(), port, 3);

  config(1);
  d.signal('SIGHUP');
  await d.waitForLog(/Reloaded: 1 new worker/);
  await waitUntil('1 worker and 1 socket', () => d.workers().length === 1 && tcpInodes(port, 'listen').length === 1);
  assertOneSocketPerWorker(t, d.workers(), port, 1);
  t.is(await answered(port), 30, 'after the reload every connection is answered');
  t.true((d.output.match(hint) ?? []).length <= 1, 'the hint is given once');
});
