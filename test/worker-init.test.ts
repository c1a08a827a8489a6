// What a worker takes from the master that starts it (WorkerInit): also the shape of the version
// before it. After a package upgrade the running master keeps its old code until USR2, but every
// worker it starts (a HUP, a max_requests recycle, a crash) runs the new files from disk.

import test from 'ava';
import { spawn } from 'node:child_process';
import { WORKER_ENV, type WorkerMessage } from '../src/ipc/protocol.js';
import { WORKER_MAIN } from '../src/core/program.js';
import { resolveConfig } from '../src/config/resolve-config.js';
import { ListenerSet } from '../src/sockets/listener-set.js';
import { alive, fixture, freePort, get, waitUntil } from './helpers/daemon.js';

test('a worker started by a master of the previous version (one descriptor per socket) boots, serves and drains', async (t) => {
  const port = await freePort();
  const config = await resolveConfig(['-b', `127.0.0.1:${port}`, fixture('app.mjs')], {}, process.cwd());
  const listeners = await ListenerSet.open(config.binds, false, 0o022, 64);
  t.teardown(() => listeners.close(true));
  const fd = listeners.fdsFor(0)[0]!;
  // The old layout: fds is a list of numbers, the socket at 3.
  const init = { settings: config.settings, fds: [3], listenerInodes: listeners.inodes(), age: 1 };
  const worker = spawn(process.execPath, [WORKER_MAIN], {
    stdio: ['ignore', 'inherit', 'inherit', fd, 'ipc'],
    env: { ...process.env, [WORKER_ENV]: JSON.stringify(init) },
    serialization: 'json',
  });
  t.teardown(() => { if (alive(worker.pid!)) worker.kill('SIGKILL'); });
  const ready = new Promise<void>((resolve, reject) => {
    worker.on('message', (m: WorkerMessage) => { if (m.t === 'ready') resolve(); });
    worker.once('exit', (code) => reject(new Error(`the worker exited (${code}) before it was ready`)));
  });
  await ready;
  const res = await get(`http://127.0.0.1:${port}/old`);
  t.is(res.status, 200);
  t.is(res.headers['x-worker'], String(worker.pid), 'served by that worker');
  const exited = new Promise<number | null>((resolve) => worker.once('exit', (code) => resolve(code)));
  worker.kill('SIGTERM');
  t.is(await exited, 0, 'a graceful stop');
  await waitUntil('the worker gone', () => !alive(worker.pid!), 5000);
});
