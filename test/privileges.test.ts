import test from 'ava';
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, lstatSync, readFileSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ACCEPT_HANDLES } from '../src/ipc/protocol.js';
import { prepareLogFiles } from '../src/master/log-files.js';
import { BIN, ROOT, cmdline, fixture, freePort, get, runCli, start, tempDir, waitUntil } from './helpers/daemon.js';
import { lacksUserSwitch, needing } from './helpers/requirements.js';

const isRoot = process.getuid!() === 0;
const NOBODY = 65534;

function status(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** Real, effective, saved and filesystem ids of a `Uid:` or `Gid:` line. */
const ids = (line: string | undefined): string[] => line!.split(/\s+/);
const all = (id: number | string): string[] => Array(4).fill(String(id));

/** A world-readable copy of a fixture (workers running as nobody must be able to import it). */
function publicCopy(name: string): string {
  const dir = tempDir();
  chmodSync(dir, 0o755);
  const file = join(dir, name);
  writeFileSync(file, readFileSync(fixture(name)));
  chmodSync(file, 0o644);
  return file;
}

/** This Node made what Debian's nodejs is without build tools: no process.setuid(), no posix addon. */
const debianNodejs = (): NodeJS.ProcessEnv => ({ NODE_OPTIONS: `--import=${publicCopy('debian-nodejs.mjs')}` });

interface Whoami { pid: number; execArgv: string[]; setuidRefused: boolean }

const SWITCH = 'as root, the master binds and workers are started as user/group, with supplementary groups only under initgroups, on a Node without process.setuid';
needing(lacksUserSwitch(), SWITCH, () => test(SWITCH, async (t) => {
  const name = `tsgtest${process.pid}`;
  execFileSync('groupadd', ['--system', `${name}x`]);
  execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', '-G', `${name}x`, name]);
  // Teardowns run last first: the daemons below are killed before this, but their workers, which
  // userdel waits for, may take a moment to go.
  t.teardown(async () => {
    const deleted = (): boolean => { try { execFileSync('userdel', [name], { stdio: 'ignore' }); return true; } catch { return false; } };
    await waitUntil(`userdel ${name}`, deleted, 10000).catch(() => { /* best effort */ });
    try { execFileSync('groupdel', [`${name}x`]); } catch { /* best effort */ }
  });
  const uid = execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim();
  const gid = execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim();
  const extra = execFileSync('getent', ['group', `${name}x`], { encoding: 'utf8' }).split(':')[2]!;
  const app = publicCopy('whoami.mjs');
  const env = debianNodejs();

  // initgroups: through setpriv, which execs node in the same process.
  const port = await freePort();
  const d = start(t, ['-w', '1', '-u', name, '--initgroups', '--node-options', '--max-old-space-size=200', '-b', `127.0.0.1:${port}`, app], { env });
  await d.waitReady();
  const [w] = await d.waitWorkers(1);
  const st = status(w!);
  t.deepEqual(ids(st['Uid']), all(uid));
  t.deepEqual(ids(st['Gid']), all(gid), 'the user\'s primary group when no group is set');
  t.deepEqual(st['Groups']!.split(/\s+/).sort(), [gid, extra].sort());
  t.deepEqual(ids(status(d.pid)['Uid']), all(0), 'the master stays root');
  t.regex(d.output, new RegExp(`Booted worker with pid: ${w}\\b`), 'the pid the master spawned is the worker, after setpriv\'s exec');
  const res = await get(`http://127.0.0.1:${port}/`);
  t.is(res.status, 200, 'the listening socket (fd 3) survived the exec; Ready came over the IPC channel');
  const me = JSON.parse(res.body) as Whoami;
  t.is(me.pid, w);
  t.deepEqual(me.execArgv, ['--max-old-space-size=200'], 'node_options apply');
  t.true(me.setuidRefused, 'process.setuid() is refused here, as in Debian\'s nodejs');

  // No initgroups: spawn()'s own uid/gid, which leave no supplementary groups.
  const port2 = await freePort();
  const d2 = start(t, ['-w', '1', '-u', name, '-g', 'nogroup', '-b', `127.0.0.1:${port2}`, app], { env });
  await d2.waitReady();
  const [w2] = await d2.waitWorkers(1);
  const st2 = status(w2!);
  t.deepEqual(ids(st2['Uid']), all(uid));
  t.deepEqual(ids(st2['Gid']), all(NOBODY));
  t.is(st2['Groups'], '', 'no supplementary groups without initgroups');
  t.is((await get(`http://127.0.0.1:${port2}/`)).status, 200);
}));

const EARLY = 'workers are the user from their first instruction, before the worker code and the app have loaded';
needing(lacksUserSwitch(), EARLY, () => test(EARLY, async (t) => {
  const app = publicCopy('whoami.mjs');
  const port = await freePort();
  // The app, preloaded (--import), holds the worker 3 s at import before tsgunicorn's worker code runs.
  const d = start(t, ['-w', '1', '--user', 'nobody', '-e', 'IMPORT_DELAY_MS=3000', '--node-options', `--import=${app}`, '-b', `127.0.0.1:${port}`, app]);
  const [w] = await d.waitWorkers(1);
  const st = status(w!);
  t.regex(cmdline(w!), /worker\/main\.js/, 'read before the worker code ran (the first thing it does is set the process title)');
  t.notRegex(d.output, /Booted worker/, 'read before the app had loaded');
  t.deepEqual(ids(st['Uid']), all(NOBODY));
  t.deepEqual(ids(st['Gid']), all(NOBODY), 'nobody\'s primary group');
  t.is(st['Groups'], '');
  t.deepEqual(ids(status(d.pid)['Uid']), all(0), 'the master stays root');
  await d.waitReady();
  t.is((await get(`http://127.0.0.1:${port}/`)).status, 200);
}));

const LOGS = 'the log files are given to the user, who writes and reopens them in a directory only root can write to';
needing(lacksUserSwitch(), LOGS, () => test(LOGS, async (t) => {
  const dir = tempDir();
  chmodSync(dir, 0o755);
  const errorlog = join(dir, 'error.log');
  const accesslog = join(dir, 'access.log');
  const port = await freePort();
  const d = start(t, ['-w', '1', '--user', 'nobody', '--error-logfile', errorlog, '--access-logfile', accesslog, '-b', `127.0.0.1:${port}`, publicCopy('app.mjs')]);
  const logged = (text: string): boolean => { try { return readFileSync(errorlog, 'utf8').includes(text); } catch { return false; } };
  await waitUntil('Ready in the error log', () => logged('Ready:') || d.exitCode !== undefined);
  const [w] = await d.waitWorkers(1);
  t.is((await get(`http://127.0.0.1:${port}/`)).status, 200);
  t.is((await get(`http://127.0.0.1:${port}/throw`)).status, 500);
  await waitUntil('the access log line', () => readFileSync(accesslog, 'utf8').includes('"GET / HTTP/1.1" 200'));
  await waitUntil('the worker\'s error line', () => logged(`[${w}] [ERROR] Error handling request GET /throw`));
  for (const file of [errorlog, accesslog]) {
    t.is(statSync(file).uid, NOBODY, `${file} belongs to the workers' user`);
    t.is(statSync(file).mode & 0o777, 0o640);
  }

  // logrotate moves the files away; after USR1 the new ones are the workers' too.
  renameSync(errorlog, `${errorlog}.1`);
  renameSync(accesslog, `${accesslog}.1`);
  d.signal('SIGUSR1');
  await waitUntil('the request in the new access log', async () => {
    await get(`http://127.0.0.1:${port}/rotated`);
    try { return readFileSync(accesslog, 'utf8').includes('"GET /rotated HTTP/1.1" 200'); } catch { return false; }
  });
  await get(`http://127.0.0.1:${port}/throw`);
  await waitUntil('the worker\'s error line in the new error log', () => logged(`[${w}] [ERROR] Error handling request GET /throw`));
  for (const file of [errorlog, accesslog]) t.is(statSync(file).uid, NOBODY, `the new ${file} belongs to the workers' user`);
  t.notRegex(d.output + readFileSync(`${errorlog}.1`, 'utf8') + readFileSync(errorlog, 'utf8'), /cannot write log file/);
}));

test('prepareLogFiles creates and chowns log files without truncating them or following links', (t) => {
  if (!isRoot) { t.pass('only a root master gives files away'); return; }
  const dir = tempDir();
  const created = join(dir, 'new.log');
  const kept = join(dir, 'kept.log');
  writeFileSync(kept, 'old line\n');
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'root\'s\n');
  const planted = join(dir, 'planted.log');
  symlinkSync(victim, planted);
  prepareLogFiles({ errorlog: created, accesslog: kept }, { uid: NOBODY, gid: NOBODY });
  prepareLogFiles({ errorlog: planted, accesslog: '-' }, { uid: NOBODY, gid: NOBODY });
  prepareLogFiles({ errorlog: join(dir, 'no-such-dir', 'x.log'), accesslog: null }, { uid: NOBODY, gid: NOBODY });
  t.like(statSync(created), { uid: NOBODY, gid: NOBODY, size: 0 });
  t.is(statSync(created).mode & 0o777, 0o640);
  t.like(statSync(kept), { uid: NOBODY, gid: NOBODY });
  t.is(readFileSync(kept, 'utf8'), 'old line\n', 'not truncated');
  t.like(statSync(victim), { uid: 0, gid: 0 }, 'a planted symlink is not followed');
  t.true(lstatSync(planted).isSymbolicLink());
  prepareLogFiles({ errorlog: join(dir, 'mine.log'), accesslog: null }, null);
  t.throws(() => statSync(join(dir, 'mine.log')), undefined, 'nothing to do for workers with the master\'s identity');
});

test('unknown users and groups exit 2', async (t) => {
  const u = await runCli(['-u', 'no-such-user-here', fixture('app.mjs')]);
  t.is(u.code, 2);
  t.regex(u.stderr, /^tsgunicorn: error: user: no such user "no-such-user-here"\n$/);
  const g = await runCli(['-g', 'no-such-group-here', fixture('app.mjs')]);
  t.is(g.code, 2);
  t.regex(g.stderr, /group: no such group/);
});

/** Runs the command as nobody: a master that is not root. */
function runAsNobody(args: readonly string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    execFile('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', process.execPath, BIN, ...args], { cwd: ROOT }, (err, _stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stderr });
    });
  });
}

const NOT_ROOT = 'a master that is not root refuses another user or group for its workers (exit 2), and takes its own';
needing(lacksUserSwitch(), NOT_ROOT, () => test(NOT_ROOT, async (t) => {
  const app = publicCopy('app.mjs');
  const u = await runAsNobody(['-u', 'root', app]);
  t.is(u.code, 2);
  t.regex(u.stderr, /^tsgunicorn: error: user: workers can run as "root" only when the master runs as root \(it runs as uid 65534\); start tsgunicorn as root, or unset user\n$/);
  const g = await runAsNobody(['-g', 'root', app]);
  t.is(g.code, 2);
  t.regex(g.stderr, /^tsgunicorn: error: group: workers can run as "root" only when the master runs as root .*\n$/);
  const own = await runAsNobody(['-u', 'nobody', '-g', 'nogroup', '--initgroups', '--check-config', app]);
  t.is(own.code, 0, own.stderr);
}));

const INITGROUPS = 'initgroups for a uid without a name, or without setpriv installed, exits 2';
needing(isRoot ? null : 'not root', INITGROUPS, () => test(INITGROUPS, async (t) => {
  const bare = await runCli(['-u', '424242', '--initgroups', fixture('app.mjs')]);
  t.is(bare.code, 2);
  t.regex(bare.stderr, /^tsgunicorn: error: initgroups: uid 424242 has no user name, and initgroups\(3\) needs one; [^\n]*\n$/);
  // A PATH without setpriv; getent stays, for user lookups without the posix addon.
  const bin = tempDir();
  symlinkSync(execFileSync('sh', ['-c', 'command -v getent'], { encoding: 'utf8' }).trim(), join(bin, 'getent'));
  const none = await runCli(['-u', 'nobody', '--initgroups', fixture('app.mjs')], { env: { PATH: bin } });
  t.is(none.code, 2);
  t.is(none.stderr, 'tsgunicorn: error: initgroups needs setpriv(1), which is not installed: apt-get install util-linux\n');
}));

const UNREACHABLE = 'a Node.js the workers\' user cannot run (under a 0700 directory) exits 2 saying so, before anything starts';
needing(isRoot ? null : 'not root', UNREACHABLE, () => test(UNREACHABLE, async (t) => {
  const dir = tempDir();
  chmodSync(dir, 0o700);
  const node = join(dir, 'node');
  copyFileSync(process.execPath, node);
  chmodSync(node, 0o755);
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    execFile(node, [BIN, '-u', 'nobody', '--check-config', fixture('app.mjs')], { cwd: ROOT }, (err, _out, stderr) => resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stderr }));
  });
  t.is(r.code, 2);
  t.is(r.stderr, `tsgunicorn: error: user: workers run as uid 65534, which cannot run ${node} (${dir} is mode 700); install Node.js and tsgunicorn where that user can reach them\n`);
}));

const HUP = 'a reload (HUP) to a user the master cannot start workers as keeps the running configuration';
needing(isRoot ? null : 'not root', HUP, () => test(HUP, async (t) => {
  const conf = join(tempDir(), 'app.toml');
  writeFileSync(conf, 'user = "nobody"\n');
  const port = await freePort();
  const d = start(t, ['-c', conf, '-w', '1', '-b', `127.0.0.1:${port}`, publicCopy('app.mjs')]);
  await d.waitReady();
  const [w] = await d.waitWorkers(1);
  writeFileSync(conf, 'user = "424242"\ninitgroups = true\n');
  d.signal('SIGHUP');
  await d.waitForLog(/Reload failed, keeping the running configuration: initgroups: uid 424242 has no user name/);
  t.deepEqual(d.workers(), [w]);
  t.is((await get(`http://127.0.0.1:${port}/`)).status, 200);
}));

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
  t.true(soft >= 3064 + ACCEPT_HANDLES, `worker soft limit ${soft} covers worker_connections, the listener's descriptors and headroom`);
  t.notRegex(d.output, /RLIMIT_NOFILE/, 'nothing to warn about');

  const port2 = await freePort();
  const d2 = start(t, ['-w', '1', '--worker-connections', '8000', '-b', `127.0.0.1:${port2}`, fixture('app.mjs')], {
    prefix: ['prlimit', '--nofile=1024:4096', '--'],
  });
  await d2.waitForLog(new RegExp(`RLIMIT_NOFILE 4096\\) is below what worker_connections = 8000 needs \\(${8064 + ACCEPT_HANDLES}\\)`));
  await d2.waitReady();
  t.pass();
});
