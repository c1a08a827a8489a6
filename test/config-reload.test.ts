// HUP goes through the same config pipeline as the start (src/config/resolve-config.ts): a changed
// chdir moves the app the new workers load, relative paths keep meaning the directory the master
// started in, a chdir that does not exist is a failed reload that keeps the old workers serving, and
// once a reload is done every new connection gets the new workers.

import test from 'ava';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Daemon, freePort, get, start, tempDir } from './helpers/daemon.js';

/** HUPs and waits for the reload to be done: from then on (systemd's READY=1) the old workers take
 * no new connection, so every answer is the new workers'. */
async function reload(d: Daemon, reloads: number): Promise<void> {
  d.signal('SIGHUP');
  await d.waitForLog(new RegExp(`(?:Reloaded: 1 new worker[^]*){${reloads}}`));
}

const bodies = async (port: number): Promise<string[]> => [...new Set(await Promise.all(Array.from({ length: 20 }, async () => (await get(`http://127.0.0.1:${port}/`)).body)))];

test('HUP applies a changed chdir: the new workers load the app from the new directory', async (t) => {
  const dir = tempDir();
  for (const v of ['v1', 'v2']) {
    mkdirSync(join(dir, v));
    writeFileSync(join(dir, v, 'app.mjs'), `export default (req, res) => res.end('${v} ' + process.cwd());\n`);
  }
  const port = await freePort();
  const write = (chdir: string): void => writeFileSync(join(dir, 'conf.toml'), `chdir = "${chdir}"\nworkers = 1\nbind = ["127.0.0.1:${port}"]\napp = "app.mjs"\n`);
  write('v1');
  const d = start(t, ['-c', 'conf.toml'], { cwd: dir });
  await d.waitReady();
  t.is((await get(`http://127.0.0.1:${port}/`)).body, `v1 ${join(dir, 'v1')}`);

  write('v2');
  await reload(d, 1);
  t.deepEqual(await bodies(port), [`v2 ${join(dir, 'v2')}`]);

  write('gone');
  d.signal('SIGHUP');
  await d.waitForLog(/Reload failed, keeping the running configuration: chdir: cannot change to .*gone: ENOENT/);
  t.is((await get(`http://127.0.0.1:${port}/`)).body, `v2 ${join(dir, 'v2')}`);

  // Relative paths still mean the directory the master started in, wherever chdir took it.
  write('v1');
  await reload(d, 2);
  t.deepEqual(await bodies(port), [`v1 ${join(dir, 'v1')}`]);
});
