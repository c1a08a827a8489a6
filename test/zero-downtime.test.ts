import test from 'ava';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive, fixture, freePort, sleep, start, tempDir, waitUntil } from './helpers/daemon.js';
import { startLoad } from './helpers/load.js';

const underLoad = test.macro(async (t, flags: readonly string[]) => {
  const dir = tempDir();
  const app = join(dir, 'app.mjs');
  copyFileSync(fixture('app.mjs'), app);
  const port = await freePort();
  const d = start(t, ['-w', '2', ...flags, '-b', `127.0.0.1:${port}`, app]);
  await d.waitReady();
  const first = await d.waitWorkers(2);
  const load = startLoad(t, `http://127.0.0.1:${port}/`, 20);
  await waitUntil('load running', () => load.served > 200);

  const step = async (what: string, act: () => void, settled: () => boolean): Promise<void> => {
    const before = load.served;
    act();
    await waitUntil(what, settled, 20000);
    await waitUntil(`requests after ${what}`, () => load.served > before + 200);
  };
  let marks = 0;
  const reloaded = (): boolean => (d.output.match(/Reloaded: /g) ?? []).length > marks;
  await step('first HUP', () => d.signal('SIGHUP'), () => reloaded() && first.every((p) => !alive(p)));
  marks = 1;
  writeFileSync(app, "export default (req, res) => { res.setHeader('X-Worker', String(process.pid)); res.end('v2\\n'); };\n");
  const second = d.workers();
  await step('second HUP', () => d.signal('SIGHUP'), () => reloaded() && second.every((p) => !alive(p)));
  await step('TTIN', () => d.signal('SIGTTIN'), () => d.workers().length === 3);
  await step('TTOU', () => d.signal('SIGTTOU'), () => d.workers().length === 2);
  await sleep(300);
  const result = await load.stop();
  t.log(`served ${result.ok} requests, failed ${result.failed}`, result.errors, `workers seen: ${result.workers.size}`);
  t.true(result.ok > 1000);
  t.is(result.failed, 0, JSON.stringify(result.errors));
  t.true(result.workers.size >= 3, 'requests were served by the old and the new generations');
});

test.serial('two HUPs, a TTIN and a TTOU under a 20-connection keep-alive load fail zero requests', underLoad, []);
test.serial('with --reuse-port, two HUPs, a TTIN and a TTOU under a 20-connection keep-alive load fail zero requests', underLoad, ['--reuse-port']);
