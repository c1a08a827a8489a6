import test from 'ava';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive, fixture, freePort, get, pidIn, rawHttp, runCli, sleep, start, tempDir, trackAll, waitUntil } from './helpers/daemon.js';
import { fdCount } from './helpers/proc.js';

test.serial('TTIN and TTOU change the worker count, never below 1', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '2', '-b', `127.0.0.1:${port}`, fixture('app.mjs')]);
  await d.waitReady();
  const first = await d.waitWorkers(2);
  d.signal('SIGTTIN');
  const added = (await d.waitWorkers(3)).find((w) => !first.includes(w))!;
  d.signal('SIGTTOU');
  await d.waitWorkers(2);
  t.true(d.workers().includes(added), 'TTOU stops the oldest worker, as in Gunicorn (not the one TTIN added)');
  d.signal('SIGTTOU');
  await d.waitWorkers(1);
  d.signal('SIGTTOU');
  await sleep(1000);
  t.is(d.workers().length, 1);
  t.is((await get(`http://127.0.0.1:${port}/`)).status, 200);
});

test.serial('HUP replaces every worker with new app code and re-reads the config; the master stays', async (t) => {
  const dir = tempDir();
  const app = join(dir, 'app.mjs');
  writeFileSync(app, "export default (req, res) => res.end('v1\\n');\n");
  const conf = join(dir, 'conf.toml');
  const port = await freePort();
  writeFileSync(conf, `workers = 2\nbind = ["127.0.0.1:${port}"]\n`);
  const d = start(t, ['-c', conf, app]);
  await d.waitReady();
  const before = await d.waitWorkers(2);
  t.is((await get(`http://127.0.0.1:${port}/`)).body, 'v1\n');
  writeFileSync(app, "export default (req, res) => res.end('v2\\n');\n");
  writeFileSync(conf, `workers = 3\nbind = ["127.0.0.1:${port}"]\n`);
  d.signal('SIGHUP');
  await d.waitForLog(/Reloaded: 3 new worker/);
  await waitUntil('old workers gone', () => before.every((p) => !alive(p)));
  const after = await d.waitWorkers(3);
  t.false(after.some((p) => before.includes(p)), 'every worker replaced');
  for (let i = 0; i < 6; i++) t.is((await get(`http://127.0.0.1:${port}/`)).body, 'v2\n');
  t.true(alive(d.pid));
});

test.serial('HUP with a broken config or a broken app keeps the running workers serving', async (t) => {
  const dir = tempDir();
  const app = join(dir, 'app.mjs');
  copyFileSync(fixture('app.mjs'), app);
  const conf = join(dir, 'conf.toml');
  const port = await freePort();
  writeFileSync(conf, `workers = 2\nbind = ["127.0.0.1:${port}"]\n`);
  const d = start(t, ['-c', conf, app]);
  await d.waitReady();
  const before = await d.waitWorkers(2);
  writeFileSync(conf, 'workers = "lots"\n');
  d.signal('SIGHUP');
  await d.waitForLog(/Reload failed, keeping the running configuration: workers: expected a whole number/);
  writeFileSync(conf, `workers = 2\nbind = ["127.0.0.1:${port}"]\n`);
  writeFileSync(app, readFileSync(fixture('syntax-error.mjs')));
  d.signal('SIGHUP');
  await d.waitForLog(/Reload failed \(a new worker failed to boot: the application failed to load\); the previous workers keep serving/);
  await sleep(500);
  t.deepEqual(d.workers(), before);
  t.is((await get(`http://127.0.0.1:${port}/`)).status, 200);
  t.true(alive(d.pid));
});

test.serial('a SIGKILLed worker is replaced', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '2', '-b', `127.0.0.1:${port}`, fixture('app.mjs')]);
  await d.waitReady();
  const [victim, other] = await d.waitWorkers(2);
  process.kill(victim!, 'SIGKILL');
  await waitUntil('replacement', () => { const w = d.workers(); return w.length === 2 && !w.includes(victim!); });
  t.true(d.workers().includes(other!));
  await d.waitForLog(new RegExp(`Worker ${victim} exited unexpectedly \\(signal SIGKILL\\)`));
  t.is((await get(`http://127.0.0.1:${port}/`)).status, 200);
});

test.serial('a hung worker (busy loop) is killed and replaced within timeout', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '2', '-t', '2', '-b', `127.0.0.1:${port}`, fixture('app.mjs')]);
  await d.waitReady();
  const before = await d.waitWorkers(2);
  const hung = get(`http://127.0.0.1:${port}/hang`).catch((e: Error) => e);
  const began = Date.now();
  await d.waitForLog(/WORKER TIMEOUT \(pid:(\d+)\)/, 10000);
  const victim = Number(/WORKER TIMEOUT \(pid:(\d+)\)/.exec(d.output)![1]);
  t.true(before.includes(victim));
  await waitUntil('hung worker gone', () => !alive(victim), 5000);
  const elapsed = Date.now() - began;
  t.true(elapsed < 2000 + 2500, `killed after ${elapsed} ms`);
  t.true((await hung) instanceof Error, 'the hung request failed');
  await waitUntil('replacement', () => d.workers().length === 2 && !d.workers().includes(victim));
  t.is((await get(`http://127.0.0.1:${port}/`)).status, 200);
});

test.serial('TERM lets in-flight requests finish, then exits 0', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, fixture('app.mjs')]);
  await d.waitReady();
  const slow = get(`http://127.0.0.1:${port}/slow?ms=1500`);
  await sleep(300);
  d.signal('SIGTERM');
  const res = await slow;
  t.is(res.status, 200);
  t.is(res.body, 'slow done\n');
  t.is((await d.exited).code, 0);
});

test.serial('HUP marks the last response due on a keep-alive connection Connection: close, and the old worker closes it after that response', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, fixture('app.mjs')]);
  await d.waitReady();
  const [old] = await d.waitWorkers(1);
  const H = 'Host: x\r\n\r\n';
  // Three requests pipelined on one connection: the first answered at once, the other two still in
  // the app when the drain starts (6 and 8 s leave a loaded machine time to boot the new worker).
  const answer = rawHttp(port, `GET /first HTTP/1.1\r\n${H}GET /slow?ms=6000 HTTP/1.1\r\n${H}GET /slow?ms=8000 HTTP/1.1\r\n${H}`, 20000);
  await sleep(300);
  d.signal('SIGHUP');
  await d.waitForLog(/Reloaded: 1 new worker/);
  const { text, closed } = await answer;
  const [first, second, third] = text.split(/(?=HTTP\/1\.1 )/);
  t.regex(first ?? '', /^HTTP\/1\.1 200[\s\S]*\r\nConnection: keep-alive\r\n[\s\S]*hello GET \/first/i);
  t.regex(second ?? '', /^HTTP\/1\.1 200[\s\S]*\r\nConnection: keep-alive\r\n[\s\S]*slow done/i, 'a response with another pipelined behind it keeps the connection');
  t.regex(third ?? '', /^HTTP\/1\.1 200[\s\S]*\r\nConnection: close\r\n[\s\S]*slow done/i, 'the last response due closes the connection');
  t.true(closed, 'the server closed the connection');
  await waitUntil('the old worker gone', () => !alive(old!));
});

test.serial('INT stops fast without waiting for in-flight requests', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '2', '-b', `127.0.0.1:${port}`, fixture('app.mjs')]);
  await d.waitReady();
  const workers = await d.waitWorkers(2);
  const slow = get(`http://127.0.0.1:${port}/slow?ms=20000`).catch((e: Error) => e);
  await sleep(200);
  const began = Date.now();
  d.signal('SIGINT');
  await d.exited;
  t.true(Date.now() - began < 3000, `stopped in ${Date.now() - began} ms`);
  t.true((await slow) instanceof Error);
  for (const w of workers) t.false(alive(w));
});

test.serial('WINCH stops all workers and keeps the master; TTIN brings one back', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '2', '-b', `127.0.0.1:${port}`, fixture('app.mjs')]);
  await d.waitReady();
  await d.waitWorkers(2);
  d.signal('SIGWINCH');
  await d.waitWorkers(0);
  t.true(alive(d.pid));
  d.signal('SIGTTIN');
  await d.waitWorkers(1);
  await waitUntil('serving', async () => (await get(`http://127.0.0.1:${port}/`).catch(() => null))?.status === 200);
  t.pass();
});

test.serial('max_requests recycles a worker, its replacement starting first', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '--max-requests', '5', '-b', `127.0.0.1:${port}`, fixture('app.mjs')]);
  await d.waitReady();
  const [first] = await d.waitWorkers(1);
  for (let i = 0; i < 5; i++) t.is((await get(`http://127.0.0.1:${port}/`)).status, 200);
  await d.waitForLog(/served 5 requests \(max_requests\): replacing it/);
  await waitUntil('recycled', () => !alive(first!) && d.workers().length === 1);
  t.not(d.workers()[0], first);
  t.is((await get(`http://127.0.0.1:${port}/`)).status, 200);
});

test.serial('max_worker_memory replaces a worker whose RSS grows past the bound', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '--max-worker-memory', '150', '-b', `127.0.0.1:${port}`, fixture('app.mjs')]);
  await d.waitReady();
  const [first] = await d.waitWorkers(1);
  t.is((await get(`http://127.0.0.1:${port}/grow?mib=200`)).status, 200);
  await d.waitForLog(/Worker \d+ uses \d+ MiB, over max_worker_memory: replacing it/);
  await waitUntil('replaced', () => !alive(first!) && d.workers().length === 1);
  t.is((await get(`http://127.0.0.1:${port}/`)).status, 200);
});

// ES modules are cached by URL and CommonJS ones by path in require.cache: both must be read anew.
for (const kind of ['mjs', 'cjs'] as const) {
  test.serial(`HUP re-reads an edited ${kind === 'mjs' ? 'ES module' : 'CommonJS'} config file, and nworkers_changed sees the new count`, async (t) => {
    const dir = tempDir();
    const conf = join(dir, `conf.${kind}`);
    const mark = join(dir, 'changed.txt');
    const port = await freePort();
    const hook = `function nworkers_changed(server, now, before) { appendFileSync(${JSON.stringify(mark)}, before + '->' + now + '\\n'); }`;
    const write = (n: number): void => writeFileSync(conf, kind === 'mjs'
      ? `import { appendFileSync } from 'node:fs';
export const workers = ${n};
export const bind = ['127.0.0.1:${port}'];
export ${hook}
`
      : `const { appendFileSync } = require('node:fs');
${hook}
module.exports = { workers: ${n}, bind: ['127.0.0.1:${port}'], nworkers_changed };
`);
    write(1);
    const d = start(t, ['-c', conf, fixture('app.mjs')]);
    await d.waitReady();
    await d.waitWorkers(1);
    await sleep(50);
    write(3);
    d.signal('SIGHUP');
    await d.waitForLog(/Reloaded: 3 new worker/);
    await d.waitWorkers(3);
    t.is(readFileSync(mark, 'utf8'), '1->3\n');
  });
}

test.serial('a relative -c with --chdir means the same file on HUP and in the new master after USR2', async (t) => {
  const dir = tempDir();
  mkdirSync(join(dir, 'appdir'));
  copyFileSync(fixture('app.mjs'), join(dir, 'appdir', 'app.mjs'));
  const pidfile = join(dir, 'master.pid');
  const port = await freePort();
  const write = (n: number): void => writeFileSync(join(dir, 'conf.toml'), `workers = ${n}\nbind = ["127.0.0.1:${port}"]\npidfile = "${pidfile}"\n`);
  write(1);
  const d = start(t, ['-c', 'conf.toml', '--chdir', 'appdir', 'app.mjs'], { cwd: dir });
  trackAll(t, pidfile);
  await d.waitReady();
  write(2);
  d.signal('SIGHUP');
  await d.waitForLog(/Reloaded: 2 new worker/);
  t.notRegex(d.output, /Reload failed/);
  write(3);
  d.signal('SIGUSR2');
  await d.waitForLog(/Upgrade complete: this master \(pid \d+\)/);
  const next = pidIn(pidfile)!;
  t.not(next, d.pid);
  await d.waitForLog(new RegExp(`\\[${next}\\] \\[INFO\\] Using 3 worker`));
  t.is((await get(`http://127.0.0.1:${port}/`)).status, 200);
});

test.serial('20 HUPs with a file errorlog leave the master\'s descriptor count as it was (one logger, reconfigured)', async (t) => {
  const dir = tempDir();
  const port = await freePort();
  const log = join(dir, 'error.log');
  const logged = (): string => { try { return readFileSync(log, 'utf8'); } catch { return ''; } };
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--error-logfile', log, fixture('app.mjs')]);
  await waitUntil('ready', () => /Ready: 1 worker/.test(logged()), 30000);
  await waitUntil('one worker', () => d.workers().length === 1);
  const before = fdCount(d.pid);
  for (let i = 1; i <= 20; i++) {
    d.signal('SIGHUP');
    await waitUntil(`reload ${i}`, () => (logged().match(/Reloaded: /g) ?? []).length === i, 30000);
  }
  await waitUntil(`the master's descriptors back at ${before} (have ${fdCount(d.pid)})`, () => d.workers().length === 1 && fdCount(d.pid) === before, 10000);
  t.pass();
});

for (const [app, code, why] of [['syntax-error.mjs', 4, /App failed to load\. Shutting down \(exit 4\)/], ['dies-after-boot.mjs', 3, /Workers failed to boot 5 times in a row .*Shutting down \(exit 3\)/]] as const) {
  test(`the last line before a boot failure exit ${code} is in the log file`, async (t) => {
    const dir = tempDir();
    const log = join(dir, 'error.log');
    const r = await runCli(['-w', '1', '-b', `127.0.0.1:${await freePort()}`, '--error-logfile', log, fixture(app)]);
    t.is(r.code, code);
    const lines = readFileSync(log, 'utf8').trimEnd().split('\n');
    t.regex(lines.join('\n'), why);
    t.regex(lines.at(-1)!, /\[INFO\] Shutting down: Master$/);
  });
}
