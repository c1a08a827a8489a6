// The master never dies silently: an error nobody planned for (here, a server hook that throws
// from a timer, outside anything the master awaits) is logged and the master stops cleanly,
// exit 1, removing its pidfile, control socket and unix socket path, and stopping its workers.

import test from 'ava';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive, fixture, start, tempDir } from './helpers/daemon.js';

test('an exception thrown by a hook from a timer stops the master cleanly with exit 1, nothing left behind', async (t) => {
  const dir = tempDir();
  const config = join(dir, 'bad-hook.config.mjs');
  writeFileSync(config, 'export function when_ready() { setTimeout(() => { throw new RangeError("a bug in a hook"); }, 200); }\n');
  const sock = join(dir, 'app.sock');
  const pid = join(dir, 'master.pid');
  const d = start(t, ['-c', config, '-w', '2', '-b', `unix:${sock}`, '--pid', pid, fixture('app.mjs')]);
  await d.waitReady();
  const workers = await d.waitWorkers(2);
  t.true(existsSync(sock) && existsSync(pid));
  t.is((await d.exited).code, 1);
  t.regex(d.output, /\[CRITICAL\] Unexpected error during an event handler: RangeError: a bug in a hook/);
  t.regex(d.output, /Shutting down: Master/);
  t.false(existsSync(sock), 'unix socket path removed');
  t.false(existsSync(pid), 'pidfile removed');
  t.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.ctl')), [], 'control socket removed');
  for (const w of workers) t.false(alive(w), `worker ${w} stopped`);
});
