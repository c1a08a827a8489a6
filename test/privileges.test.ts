import test from 'ava';
import { execFileSync } from 'node:child_process';
import { chmodSync, lstatSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixture, freePort, get, runCli, start, tempDir } from './helpers/daemon.js';
import { lacksUserSwitch, needing } from './helpers/requirements.js';

const isRoot = process.getuid!() === 0;

function status(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** A world-readable copy of the test app (workers running as nobody must be able to import it). */
function publicApp(): string {
  const dir = tempDir();
  chmodSync(dir, 0o755);
  const app = join(dir, 'app.mjs');
  writeFileSync(app, readFileSync(fixture('app.mjs')));
  chmodSync(app, 0o644);
  return app;
}

const SWITCH = 'as root, the master binds and workers run as user/group, with supplementary groups under initgroups';
needing(lacksUserSwitch(), SWITCH, () => test(SWITCH, async (t) => {
  const name = `tsgtest${process.pid}`;
  execFileSync('groupadd', ['--system', `${name}x`]);
  execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', '-G', `${name}x`, name]);
  t.teardown(() => { try { execFileSync('userdel', [name]); execFileSync('groupdel', [`${name}x`]); } catch { /* best effort */ } });
  const uid = execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim();
  const gid = execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim();
  const extra = execFileSync('getent', ['group', `${name}x`], { encoding: 'utf8' }).split(':')[2]!;
  const app = publicApp();

  const port = await freePort();
  const d = start(t, ['-w', '1', '-u', name, '--initgroups', '-b', `127.0.0.1:${port}`, app]);
  await d.waitReady();
  const [w] = await d.waitWorkers(1);
  const st = status(w!);
  t.is(st['Uid']!.split(/\s+/)[0], uid);
  t.is(st['Gid']!.split(/\s+/)[0], gid, 'the user\'s primary group when no group is set');
  t.deepEqual(st['Groups']!.split(/\s+/).sort(), [gid, extra].sort());
  t.is(status(d.pid)['Uid']!.split(/\s+/)[0], '0', 'the master stays root');
  t.is((await get(`http://127.0.0.1:${port}/`)).status, 200);

  const port2 = await freePort();
  const d2 = start(t, ['-w', '1', '-u', name, '-g', 'nogroup', '-b', `127.0.0.1:${port2}`, app]);
  await d2.waitReady();
  const [w2] = await d2.waitWorkers(1);
  const st2 = status(w2!);
  t.is(st2['Gid']!.split(/\s+/)[0], '65534');
  t.is(st2['Groups'], '65534', 'no supplementary groups without initgroups');
}));

test('unknown users and groups exit 2', async (t) => {
  const u = await runCli(['-u', 'no-such-user-here', fixture('app.mjs')]);
  t.is(u.code, 2);
  t.regex(u.stderr, /^tsgunicorn: error: user: no such user "no-such-user-here"\n$/);
  const g = await runCli(['-g', 'no-such-group-here', fixture('app.mjs')]);
  t.is(g.code, 2);
  t.regex(g.stderr, /group: no such group/);
});

const AS_ROOT = 'running workers as root is warned about';
needing(isRoot ? null : 'not root', AS_ROOT, () => test(AS_ROOT, async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, fixture('app.mjs')]);
  await d.waitForLog(/WARNING\] Workers will run as root/);
  t.pass();
}));

test('umask applies to the unix socket; planted symlinks are not followed for the socket or the pidfile', async (t) => {
  const dir = tempDir();
  const sock = join(dir, 'app.sock');
  const d = start(t, ['-w', '1', '-m', '0077', '-b', `unix:${sock}`, fixture('app.mjs')]);
  await d.waitReady();
  t.is(lstatSync(sock).mode & 0o777, 0o700);
  d.kill();

  const victim = join(dir, 'victim.txt');
  writeFileSync(victim, 'precious\n');
  const planted = join(dir, 'planted.sock');
  symlinkSync(victim, planted);
  const r = await runCli(['-b', `unix:${planted}`, fixture('app.mjs')]);
  t.is(r.code, 1);
  t.regex(r.stderr, /exists and is not a socket/);
  t.is(readFileSync(victim, 'utf8'), 'precious\n');

  const pidlink = join(dir, 'master.pid');
  symlinkSync(victim, pidlink);
  const port = await freePort();
  const d2 = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '-p', pidlink, fixture('app.mjs')]);
  await d2.waitReady();
  t.is(readFileSync(victim, 'utf8'), 'precious\n', 'the symlink target is untouched');
  t.false(lstatSync(pidlink).isSymbolicLink(), 'the pidfile replaced the symlink');
  t.is(readFileSync(pidlink, 'utf8').trim(), String(d2.pid));
});

test('RLIMIT_NOFILE covers worker_connections up to the hard limit, and is warned about beyond it', async (t) => {
  const port = await freePort();
  const d = start(t, ['-w', '1', '--worker-connections', '3000', '-b', `127.0.0.1:${port}`, fixture('app.mjs')], {
    prefix: ['prlimit', '--nofile=1024:4096', '--'],
  });
  await d.waitReady();
  const [w] = await d.waitWorkers(1);
  const soft = Number(/Max open files\s+(\d+)/.exec(readFileSync(`/proc/${w}/limits`, 'utf8'))![1]);
  t.true(soft >= 3064, `worker soft limit ${soft} covers worker_connections + headroom`);
  t.notRegex(d.output, /RLIMIT_NOFILE/, 'nothing to warn about');

  const port2 = await freePort();
  const d2 = start(t, ['-w', '1', '--worker-connections', '8000', '-b', `127.0.0.1:${port2}`, fixture('app.mjs')], {
    prefix: ['prlimit', '--nofile=1024:4096', '--'],
  });
  await d2.waitForLog(/RLIMIT_NOFILE 4096\) is below what worker_connections = 8000 needs \(8064\)/);
  await d2.waitReady();
  t.pass();
});
