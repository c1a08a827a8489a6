// Unit tests of the master's worker pool (src/master/worker-pool.ts) with stand-in worker
// processes (helpers/fake-workers.ts) and real listening sockets: how many workers it starts,
// which it drains and when, generations, boot failures and back-off, deadlines, reuse-port slots.

import test from 'ava';
import { join } from 'node:path';
import { resolveConfig } from '../src/config/resolve-config.js';
import { SETTINGS, type WorkerSettings } from '../src/config/settings.js';
import { createLogger } from '../src/logging/logger.js';
import { ListenerSet } from '../src/sockets/listener-set.js';
import { WorkerPool, type BootFailure, type Generation } from '../src/master/worker-pool.js';
import { KILL_AFTER_ABORT_MS } from '../src/master/worker-process.js';
import { fakeSpawner, type FakeChild, type FakeSpawner } from './helpers/fake-workers.js';
import { freePort, sleep, tempDir, waitUntil } from './helpers/daemon.js';

const log = createLogger({ errorlog: '/dev/null', loglevel: 'critical' });

async function generation(args: string[], dir: string): Promise<Generation> {
  const config = await resolveConfig([...args, 'app.mjs'], {}, dir);
  const workerSettings = Object.fromEntries(Object.entries(config.settings).filter(([k]) => SETTINGS.find((s) => s.name === k)?.type !== 'hook')) as unknown as WorkerSettings;
  return { config, workerSettings };
}

interface Fixture {
  readonly pool: WorkerPool;
  readonly fake: FakeSpawner;
  readonly ready: number[];
  readonly failures: BootFailure[];
  readonly closedSlots: number[];
  readonly dir: string;
}

async function pool(t: { teardown(fn: () => void): void }, args: string[], opts: { reusePort?: boolean; readyAtOnce?: boolean; dieOn?: NodeJS.Signals[] } = {}): Promise<Fixture> {
  const dir = tempDir();
  const bind = opts.reusePort ? `127.0.0.1:${await freePort()}` : `unix:${join(dir, 'pool.sock')}`;
  const gen = await generation([...args, '-b', bind, ...(opts.reusePort ? ['--reuse-port'] : [])], dir);
  const listeners = await ListenerSet.open(gen.config.binds, gen.config.settings.reuse_port, 0o022, 16);
  t.teardown(() => listeners.close(true));
  const fake = fakeSpawner({ readyAtOnce: opts.readyAtOnce, dieOn: opts.dieOn });
  const ready: number[] = [];
  const failures: BootFailure[] = [];
  const closedSlots: number[] = [];
  const p = new WorkerPool(gen, {
    log,
    listeners,
    spawn: fake.spawn,
    guard: (what, action) => { action.catch((err: unknown) => { throw new Error(`${what}: ${String(err)}`); }); },
    events: {
      generationReady: (g) => ready.push(g),
      bootFailed: (f) => failures.push(f),
      preFork: async () => {},
      workerExited: () => {},
      finalMetrics: () => {},
      slotsClosed: (n) => closedSlots.push(n),
    },
  });
  return { pool: p, fake, ready, failures, closedSlots, dir };
}

const spawned = (f: Fixture, n: number): Promise<void> => waitUntil(`${n} workers started`, () => f.fake.children.length >= n, 5000);

test('starts the target number of workers, and says the generation serves once all of them do', async (t) => {
  const f = await pool(t, ['-w', '3']);
  f.pool.manage();
  await spawned(f, 3);
  t.is(f.fake.children.length, 3);
  t.deepEqual(f.fake.children.map((c) => c.opts.age), [1, 2, 3]);
  f.fake.children[0]!.say({ t: 'ready' });
  f.fake.children[1]!.say({ t: 'ready' });
  t.deepEqual(f.ready, []);
  f.fake.children[2]!.say({ t: 'ready' });
  t.deepEqual(f.ready, [0]);
  t.is(f.pool.readyCount(), 3);
  f.fake.children[2]!.say({ t: 'ready' });
  t.deepEqual(f.ready, [0], 'said once');
});

test('fewer workers: the oldest drains (TERM); more: one more starts', async (t) => {
  const f = await pool(t, ['-w', '2'], { readyAtOnce: true });
  f.pool.manage();
  await waitUntil('ready', () => f.ready.length === 1, 5000);
  f.pool.setTarget(1);
  await waitUntil('the oldest exited', () => f.fake.alive().length === 1, 5000);
  t.deepEqual(f.fake.children[0]!.signals, ['SIGTERM']);
  t.deepEqual(f.fake.children[1]!.signals, []);
  f.pool.setTarget(2);
  await spawned(f, 3);
  t.is(f.fake.children[2]!.opts.age, 3);
});

test('a new generation replaces the old one only once all of its workers serve, and serves once the old one takes no connections', async (t) => {
  const f = await pool(t, ['-w', '2']);
  f.pool.manage();
  await spawned(f, 2);
  for (const c of f.fake.children) c.say({ t: 'ready' });
  const next = await generation(['-w', '2', '--timeout', '7'], f.dir);
  t.is(f.pool.startGeneration(next), 1);
  await spawned(f, 4);
  const [old1, old2, new1, new2] = f.fake.children as [FakeChild, FakeChild, FakeChild, FakeChild];
  t.is(new1.opts.settings.timeout, 7, 'the new workers get the new settings');
  new1.say({ t: 'ready' });
  t.deepEqual([old1.signals, old2.signals], [[], []], 'the old ones serve on while the new generation boots');
  new2.say({ t: 'ready' });
  t.deepEqual([old1.signals, old2.signals], [['SIGTERM'], ['SIGTERM']]);
  t.deepEqual(f.ready, [0], 'the old ones may still take connections: the new generation does not serve alone yet');
  old1.say({ t: 'closed' });
  t.deepEqual(f.ready, [0]);
  old2.exit(0);
  t.deepEqual(f.ready, [0, 1], 'each old worker closed its listeners or exited');
});

test('an abandoned generation is killed and the previous one, still serving, is in force again', async (t) => {
  const f = await pool(t, ['-w', '1']);
  f.pool.manage();
  await spawned(f, 1);
  f.fake.children[0]!.say({ t: 'ready' });
  const prev = f.pool.inForce;
  f.pool.startGeneration(await generation(['-w', '3'], f.dir));
  await spawned(f, 4);
  f.pool.abandonGeneration(prev, 0);
  for (const c of f.fake.children.slice(1)) t.deepEqual(c.signals, ['SIGKILL']);
  t.deepEqual(f.fake.children[0]!.signals, []);
  t.is(f.pool.target, 1);
  t.is(f.pool.currentGeneration, 0);
  await waitUntil('the new ones exited', () => f.fake.alive().length === 1, 5000);
  t.deepEqual(f.failures, [], 'killing them is no boot failure');
  f.pool.startGeneration(await generation(['-w', '1'], f.dir));
  t.is(f.pool.currentGeneration, 2, 'a generation number is never given out twice');
});

test('boot failures of the current generation are reported (exit 4: the app), those of an old one are not', async (t) => {
  const f = await pool(t, ['-w', '1']);
  f.pool.manage();
  await spawned(f, 1);
  f.fake.children[0]!.exit(4);
  t.is(f.failures.length, 1);
  t.true(f.failures[0]!.appLoad);
  t.regex(f.failures[0]!.why, /application failed to load/);
  await spawned(f, 2);
  f.fake.children[1]!.say({ t: 'ready' });
  f.pool.startGeneration(await generation(['-w', '1'], f.dir));
  await spawned(f, 3);
  f.fake.children[1]!.exit(3);
  t.is(f.failures.length, 1, 'a worker of the old generation that dies is replaced, not a boot failure');
  f.fake.children[2]!.exit(3);
  t.is(f.failures.length, 2);
  t.false(f.failures[1]!.appLoad);
});

test('back-off doubles the wait between attempts and gives up after 5 failures in a row', async (t) => {
  const f = await pool(t, ['-w', '1']);
  const failure: BootFailure = { who: 'Worker 1', why: 'it exited (code 3)', appLoad: false };
  t.true(f.pool.backOff(failure));
  f.pool.manage();
  t.is(f.fake.children.length, 0, 'nothing starts during the wait');
  await sleep(150);
  f.pool.manage();
  await spawned(f, 1);
  t.true(f.pool.backOff(failure));
  t.true(f.pool.backOff(failure));
  t.true(f.pool.backOff(failure));
  t.false(f.pool.backOff(failure));
  t.is(f.pool.failuresInARow, 5);
});

test('deadlines: a silent worker gets ABRT then KILL, a slow boot KILL, a long drain KILL', async (t) => {
  const f = await pool(t, ['-w', '2', '--timeout', '1', '--graceful-timeout', '1'], { dieOn: [] });
  f.pool.manage();
  await spawned(f, 2);
  const [silent, slow] = f.fake.children as [FakeChild, FakeChild];
  silent.say({ t: 'ready' });
  // The clocks are the workers' own (a loaded machine may take a while between the spawn and the
  // ready): the slow one's start, the silent one's last word.
  const [beat, booted] = [f.pool.list().find((w) => w.pid === silent.pid)!.lastBeat, f.pool.list().find((w) => w.pid === slow.pid)!.spawnedAt];
  f.pool.enforceDeadlines(Math.min(beat, booted) + 500);
  t.deepEqual([silent.signals, slow.signals], [[], []]);
  const now = Math.max(beat, booted) + 1100;
  f.pool.enforceDeadlines(now);
  t.deepEqual(silent.signals, ['SIGABRT']);
  t.deepEqual(slow.signals, ['SIGKILL'], 'booting longer than timeout');
  f.pool.enforceDeadlines(now + KILL_AFTER_ABORT_MS);
  t.deepEqual(silent.signals, ['SIGABRT', 'SIGKILL']);

  const g = await pool(t, ['-w', '1', '--timeout', '30', '--graceful-timeout', '1'], { dieOn: [] });
  g.pool.manage();
  await spawned(g, 1);
  g.fake.children[0]!.say({ t: 'ready' });
  g.pool.setTarget(0);
  const drainer = g.fake.children[0]!;
  t.deepEqual(drainer.signals, ['SIGTERM']);
  g.pool.enforceDeadlines(Date.now() + 1000);
  t.deepEqual(drainer.signals, ['SIGTERM'], 'within graceful_timeout');
  g.pool.enforceDeadlines(Date.now() + 1000 + KILL_AFTER_ABORT_MS + 100);
  t.deepEqual(drainer.signals, ['SIGTERM', 'SIGKILL']);
});

test('a worker asking to be recycled is drained once its replacement serves', async (t) => {
  const f = await pool(t, ['-w', '1']);
  f.pool.manage();
  await spawned(f, 1);
  const old = f.fake.children[0]!;
  old.say({ t: 'ready' });
  old.say({ t: 'recycle', reason: 'served 10 requests (max_requests)' });
  await spawned(f, 2);
  t.deepEqual(old.signals, []);
  t.true(f.pool.isRetiring(f.pool.list()[0]!));
  f.fake.children[1]!.say({ t: 'ready' });
  t.deepEqual(old.signals, ['SIGTERM']);
});

test('reuse_port: each worker gets its own slot\'s socket, and a slot nobody needs is closed', async (t) => {
  const f = await pool(t, ['-w', '3'], { reusePort: true, readyAtOnce: true });
  f.pool.manage();
  await waitUntil('ready', () => f.ready.length === 1, 5000);
  const fds = f.fake.children.map((c) => c.opts.fds[0]);
  t.is(new Set(fds).size, 3, 'three sockets');
  f.pool.setTarget(1);
  await waitUntil('two drained', () => f.fake.alive().length === 1, 5000);
  f.pool.manage();
  t.is(f.closedSlots.reduce((a, b) => a + b, 0), 2);
  t.is(f.fake.alive()[0]!.opts.fds[0], fds[0], 'slot 0 stays');
});

test('stopAll: TERM to every worker, resolved when they have exited; nothing starts after', async (t) => {
  const f = await pool(t, ['-w', '2'], { readyAtOnce: true });
  f.pool.manage();
  await waitUntil('ready', () => f.ready.length === 1, 5000);
  await f.pool.stopAll(true, 2000);
  t.is(f.pool.size, 0);
  for (const c of f.fake.children) t.deepEqual(c.signals, ['SIGTERM']);
  f.pool.manage();
  t.is(f.fake.children.length, 2);
});
