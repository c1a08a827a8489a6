import test from 'ava';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { alive, cmdline, fixture, freePort, get, runCli, start, tempDir, waitUntil } from './helpers/daemon.js';
import { lacksSs, needing } from './helpers/requirements.js';

test('serves GET through 2 workers, writes and removes the pidfile, TERM exits 0', async (t) => {
  const port = await freePort();
  const pid = join(tempDir(), 'master.pid');
  const d = start(t, ['-w', '2', '-b', `127.0.0.1:${port}`, '-p', pid, '-n', 'svc', fixture('app.mjs')]);
  await d.waitReady();
  const workers = await d.waitWorkers(2);
  t.is(readFileSync(pid, 'utf8').trim(), String(d.pid));
  t.regex(cmdline(d.pid), /^tsgunicorn: master \[svc\]/);
  for (const w of workers) t.regex(cmdline(w), /^tsgunicorn: worker \[svc\]/);
  const seen = new Set<string>();
  for (let i = 0; i < 40 && seen.size < 2; i++) {
    const res = await get(`http://127.0.0.1:${port}/x`);
    t.is(res.status, 200);
    t.is(res.body, 'hello GET /x\n');
    seen.add(res.headers['x-worker'] as string);
  }
  for (const w of seen) t.true(workers.includes(Number(w)), `response from a worker of this master: ${w}`);
  d.signal('SIGTERM');
  const { code } = await d.exited;
  t.is(code, 0);
  t.false(existsSync(pid), 'pidfile removed');
  for (const w of workers) t.false(alive(w), `worker ${w} gone`);
});

test('serves a fetch handler, a CommonJS module, a named export and a factory with arguments', async (t) => {
  const cases: [string, string, number, RegExp][] = [
    ['fetch-app.mjs', '/a/b', 201, /^\{"path":"\/a\/b","body":""\}$/],
    ['cjs-app.cjs', '/', 200, /^cjs default\n$/],
    ['cjs-app.cjs:named', '/', 200, /^cjs named\n$/],
    ['factory.mjs:plain', '/', 200, /^named export\n$/],
    [`factory.mjs:create('hi', {times: 2, tags: ["a", 'b']})`, '/', 200, /^hi x2 \["a","b"\]\n$/],
  ];
  await Promise.all(cases.map(async ([spec, path, status, body]) => {
    const port = await freePort();
    const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, spec], { cwd: join(fixture('.'), '') });
    await d.waitReady();
    const res = await get(`http://127.0.0.1:${port}${path}`);
    t.is(res.status, status, spec);
    t.regex(res.body, body, spec);
  }));
});

test('an app reaches its worker http.Server through onServer (upgrade requests)', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, fixture('on-server.mjs')]);
  await d.waitReady();
  const res = await get(`http://127.0.0.1:${port}/`, {});
  t.is(res.body, 'plain http\n');
  const { request } = await import('node:http');
  const upgraded = await new Promise<number>((resolve, reject) => {
    const req = request(`http://127.0.0.1:${port}/ws`, { headers: { Connection: 'Upgrade', Upgrade: 'test' } });
    req.on('upgrade', (r, socket) => { socket.destroy(); resolve(r.statusCode!); });
    req.on('error', reject);
    req.end();
  });
  t.is(upgraded, 101);
});

test('listens on a unix socket and on IPv6, and cleans up a stale socket file', async (t) => {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  // A stale socket file left by a server that was killed.
  const dead = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  await new Promise((r) => dead.once('exit', r));
  t.true(existsSync(sock));
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `unix:${sock}`, '-b', `[::1]:${port}`, fixture('app.mjs')]);
  await d.waitReady();
  const { request } = await import('node:http');
  const body = await new Promise<string>((resolve, reject) => {
    const req = request({ socketPath: sock, path: '/unix' }, (res) => { let b = ''; res.on('data', (c) => { b += c; }); res.on('end', () => resolve(b)); });
    req.on('error', reject);
    req.end();
  });
  t.is(body, 'hello GET /unix\n');
  t.is((await get(`http://[::1]:${port}/v6`)).body, 'hello GET /v6\n');
  d.signal('SIGTERM');
  t.is((await d.exited).code, 0);
  t.false(existsSync(sock), 'unix socket removed at exit');
});

test('tsgunicorn status lists every worker with a pid that exists, as a table and as JSON', async (t) => {
  const dir = tempDir();
  const pidfile = join(dir, 'master.pid');
  const port = await freePort();
  const d = start(t, ['-w', '3', '-n', 'shop', '-b', `127.0.0.1:${port}`, '-p', pidfile, fixture('app.mjs')]);
  await d.waitReady();
  const workers = await d.waitWorkers(3);
  for (let i = 0; i < 5; i++) await get(`http://127.0.0.1:${port}/`);
  const json = await runCli(['status', '--json', '--pid', pidfile]);
  t.is(json.code, 0, json.stderr);
  const st = JSON.parse(json.stdout) as { pid: number; name: string; workers: { pid: number; requests: number; rssBytes: number; state: string }[] };
  t.is(st.pid, d.pid);
  t.is(st.name, 'shop');
  t.deepEqual(st.workers.map((w) => w.pid).sort(), workers.sort());
  for (const w of st.workers) {
    t.true(alive(w.pid));
    t.true(w.rssBytes > 1024 * 1024);
    t.is(w.state, 'ready');
  }
  await waitUntil('request counts reported', async () => {
    const r = JSON.parse((await runCli(['status', '--json', '--pid', pidfile])).stdout) as typeof st;
    return r.workers.reduce((n, w) => n + w.requests, 0) === 5;
  });
  const table = await runCli(['status', '--pid', pidfile]);
  t.is(table.code, 0);
  t.regex(table.stdout, new RegExp(`^tsgunicorn master ${d.pid} \\[shop\\]: running`));
  t.regex(table.stdout, /PID\s+AGE\s+UPTIME\s+REQUESTS\s+RSS\s+STATE/);
  for (const w of workers) t.regex(table.stdout, new RegExp(`^  ${w}\\s+\\d+\\s+\\S+\\s+\\d+\\s+[\\d.]+ MiB\\s+ready$`, 'm'));
  const ctl = join(dir, `tsgunicorn-${d.pid}.ctl`);
  t.is(statSync(ctl).mode & 0o777, 0o700, 'the control socket is for its owner only');
  d.signal('SIGTERM');
  await d.exited;
  t.false(existsSync(ctl), 'removed at exit');
  const gone = await runCli(['status', '--pid', pidfile]);
  t.is(gone.code, 1);
  t.regex(gone.stderr, /no master/);
  const usage = await runCli(['status']);
  t.is(usage.code, 2);
});

test('connections made while the first workers boot wait in the backlog instead of being refused', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, fixture('slow-boot.mjs')]);
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')} `;
  await waitUntil('listening', () => readFileSync('/proc/net/tcp', 'utf8').split('\n').some((l) => l.includes(hex) && l.split(/\s+/)[4] === '0A'));
  t.notRegex(d.output, /Booted worker/, 'no worker is up yet');
  const res = await get(`http://127.0.0.1:${port}/`);
  t.is(res.body, 'finally\n');
});

// Node ignores `backlog` in listen()'s options on a descriptor (it listens with 511); the master's
// first listen and each worker's must both pass it on. ss(8) reads each listening socket's backlog.
// `booting`, `serving`: how many sockets listen while the first workers boot and once they serve
// (with reuse_port, slot 0's from the start, then one per worker).
type Kind = { flags: string[]; ss: string[]; mine: (line: string) => boolean; booting: number; serving: number };
const SOCKET_KINDS: Record<string, (dir: string, port: number) => Kind> = {
  TCP: (_dir, port) => ({ flags: ['-b', `127.0.0.1:${port}`], ss: ['-Hltn', `sport = :${port}`], mine: () => true, booting: 1, serving: 1 }),
  'TCP with reuse_port': (_dir, port) => ({ flags: ['-b', `127.0.0.1:${port}`, '--reuse-port'], ss: ['-Hltn', `sport = :${port}`], mine: () => true, booting: 1, serving: 2 }),
  'a unix socket': (dir) => ({ flags: ['-b', `unix:${join(dir, 's.sock')}`], ss: ['-Hlx'], mine: (line) => line.includes(dir), booting: 1, serving: 1 }),
};
needing(lacksSs(), 'backlog is what the kernel gets on every socket kind', () => {
  for (const [kind, make] of Object.entries(SOCKET_KINDS)) {
    test(`${kind}: the kernel gets --backlog while the first workers boot, once they serve, and after a HUP`, async (t) => {
      const dir = tempDir();
      const k = make(dir, await freePort());
      const backlogs = (): number[] => spawnSync('ss', k.ss, { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes('LISTEN') && k.mine(l))
        .map((l) => { const f = l.trim().split(/\s+/); return Number(f[f.indexOf('LISTEN') + 2]); });
      const d = start(t, ['-w', '2', '--backlog', '1234', ...k.flags, fixture('slow-boot.mjs')]);
      await waitUntil('listening', () => backlogs().length > 0);
      t.notRegex(d.output, /Booted worker/, 'no worker is up yet');
      const every = (n: number): number[] => Array<number>(n).fill(1234);
      t.deepEqual(backlogs(), every(k.booting), 'the master listens with it');
      await d.waitReady();
      t.deepEqual(backlogs(), every(k.serving), 'the workers listen with it');
      d.signal('SIGHUP');
      await d.waitForLog(/Reloaded: /);
      t.deepEqual(backlogs(), every(k.serving), 'the new workers listen with it');
    });
  }
});
