// Server hooks from a JS config file (examples/hooks.config.mjs, the example of docs/hooks.md):
// which process runs each one, with which arguments, and when.

import test from 'ava';
import { fixture, freePort, get, start, waitUntil } from './helpers/daemon.js';

const CONFIG = 'examples/hooks.config.mjs';

/** Lines of the log from process `pid` that start with `hook NAME:`. */
function hookLines(output: string, name: string, pid?: number): string[] {
  const re = new RegExp(`^\\[[^\\]]*\\] \\[(\\d+)\\] \\[INFO\\] hook ${name}: (.*)$`, 'gm');
  return [...output.matchAll(re)].filter((m) => pid === undefined || Number(m[1]) === pid).map((m) => `[${m[1]}] ${m[2]}`);
}

test('a JS config\'s hooks run in the master and in each worker with the documented arguments', async (t) => {
  const port = await freePort();
  const d = start(t, ['-c', CONFIG, '-b', `127.0.0.1:${port}`, 'examples/hello.js']);
  await d.waitReady();
  await d.waitForLog(/hook when_ready:/);
  const workers = await d.waitWorkers(2);
  const m = d.pid;
  const out = (): string => d.output;

  t.deepEqual(hookLines(out(), 'on_starting'), [`[${m}] master ${m}, 2 workers wanted`]);
  t.deepEqual(hookLines(out(), 'pre_fork').sort(), [`[${m}] starting worker #1`, `[${m}] starting worker #2`]);
  t.deepEqual(hookLines(out(), 'when_ready'), [`[${m}] serving with 2 workers on 127.0.0.1:${port}`]);
  for (const w of workers) {
    t.regex(hookLines(out(), 'post_fork', w).join('\n'), new RegExp(`^\\[${w}\\] worker ${w} \\(#[12]\\) of master ${m}$`));
    t.deepEqual(hookLines(out(), 'post_worker_init', w), [`[${w}] worker ${w} loaded the app`]);
  }
  // post_worker_init runs before the worker reports ready, so before when_ready.
  t.true(out().lastIndexOf('hook post_worker_init:') < out().indexOf('hook when_ready:'));
  t.regex((await get(`http://127.0.0.1:${port}/`)).body, /^Hello from tsgunicorn worker \d+\n$/);

  d.signal('SIGTTIN');
  await d.waitForLog(/hook nworkers_changed: 2 -> 3/);
  await d.waitForLog(/hook pre_fork: starting worker #3/);
  await d.waitWorkers(3);

  // HUP re-reads the config file: its `workers = 2` applies again.
  d.signal('SIGHUP');
  await d.waitForLog(/hook on_reload: master \d+ reloads/);
  await d.waitForLog(/Reloaded: 2 new worker/, 20000);
  await waitUntil('the reload to replace every worker', () => hookLines(out(), 'child_exit').length >= 3, 20000);
  const afterReload = await d.waitWorkers(2);

  d.signal('SIGTERM');
  t.is((await d.exited).code, 0);
  t.deepEqual(hookLines(out(), 'on_exit'), [`[${m}] master ${m} stops`]);
  for (const w of [...workers, ...afterReload]) {
    t.deepEqual(hookLines(out(), 'worker_exit', w), [`[${w}] worker ${w} exits`], `worker_exit in ${w}`);
    t.is(hookLines(out(), 'child_exit').filter((l) => l.includes(`worker ${w} (#`)).length, 1, `child_exit for ${w}`);
  }
});

test('a hook that throws is logged and the server goes on', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-c', fixture('throwing-hook.config.mjs'), '-b', `127.0.0.1:${port}`, 'examples/hello.js']);
  await d.waitReady();
  await d.waitForLog(/Server hook post_worker_init failed: Error: post_worker_init blew up/);
  await d.waitForLog(/Server hook when_ready failed: Error: when_ready blew up/);
  t.is((await get(`http://127.0.0.1:${port}/`)).status, 200);
});
