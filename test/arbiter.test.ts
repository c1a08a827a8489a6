// Unit tests of the arbiter (src/master/arbiter.ts) in this process, with stand-in workers
// (helpers/fake-workers.ts), signals delivered by hand, and real files: a pidfile, the control
// socket beside it, a unix listening socket and a log file. What a real daemon does with real
// signals is tested end to end in signals.test.ts, upgrade.test.ts and matrix.test.ts; here the
// faults nobody can provoke from outside are injected.

import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../src/core/errors.js';
import { resolveConfig } from '../src/config/resolve-config.js';
import { createLogger } from '../src/logging/logger.js';
import { Arbiter } from '../src/master/arbiter.js';
import { controlPath } from '../src/master/control-socket.js';
import { Pidfile } from '../src/master/pidfile.js';
import type { MasterSignal } from '../src/master/signal-queue.js';
import { ListenerSet } from '../src/sockets/listener-set.js';
import { fakeSpawner } from './helpers/fake-workers.js';
import { tempDir, waitUntil } from './helpers/daemon.js';

async function arbiter(resolve: typeof resolveConfig) {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const pid = join(dir, 'master.pid');
  const errorlog = join(dir, 'error.log');
  const argv = ['-w', '2', '-b', `unix:${sock}`, '--pid', pid, '--error-logfile', errorlog, 'app.mjs'];
  const config = await resolveConfig(argv, {}, process.cwd());
  const log = createLogger({ errorlog, loglevel: 'info' });
  const listeners = await ListenerSet.open(config.binds, false, 0o022, 16);
  const pidfile = new Pidfile(pid);
  pidfile.create();
  const fake = fakeSpawner({ readyAtOnce: true });
  let deliver: (sig: MasterSignal) => void = () => {};
  const a = new Arbiter({
    argv, startDir: process.cwd(), config, log, listeners, pidfile, oldMaster: null, resolve, spawn: fake.spawn,
    signals: { attach: (consumer) => { deliver = consumer; return []; } },
  });
  const exited = a.run();
  const logged = (): string => readFileSync(errorlog, 'utf8');
  await waitUntil('ready', () => existsSync(errorlog) && /Ready: 2 worker/.test(logged()), 10000);
  return { a, exited, deliver: (sig: MasterSignal) => deliver(sig), fake, sock, pid, control: controlPath(pid, process.pid), logged, log };
}

test.serial('an unexpected error in a reload step stops the master cleanly: exit 1, nothing left behind', async (t) => {
  const m = await arbiter(async () => { throw new TypeError('injected fault while reading the configuration'); });
  t.true(existsSync(m.sock) && existsSync(m.pid) && existsSync(m.control));
  m.deliver('SIGHUP');
  t.is(await m.exited, 1);
  await m.log.flush();
  t.regex(m.logged(), /\[CRITICAL\] Unexpected error during reload: TypeError: injected fault/);
  t.regex(m.logged(), /Shutting down: Master/);
  t.false(existsSync(m.pid), 'pidfile removed');
  t.false(existsSync(m.control), 'control socket removed');
  t.false(existsSync(m.sock), 'unix socket path removed');
  t.deepEqual(m.fake.alive(), [], 'every worker stopped');
  for (const c of m.fake.children) t.true(c.signals.includes('SIGQUIT'), 'a quick stop');
});

test.serial('a configuration error on HUP keeps the workers serving; TERM then stops with exit 0', async (t) => {
  const m = await arbiter(async () => { throw new ConfigError('workers: expected a whole number, got "many"'); });
  m.deliver('SIGHUP');
  await waitUntil('reload failed', () => /Reload failed, keeping the running configuration: workers: expected/.test(m.logged()), 10000);
  t.is(m.fake.alive().length, 2);
  for (const c of m.fake.children) t.deepEqual(c.signals, []);
  m.deliver('SIGTERM');
  t.is(await m.exited, 0);
  for (const c of m.fake.children) t.deepEqual(c.signals, ['SIGTERM']);
  t.false(existsSync(m.pid) || existsSync(m.sock) || existsSync(m.control));
});
