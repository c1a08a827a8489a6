// The config pipeline in-process (src/config/resolve-config.ts): real files in a temporary
// directory, no mocks. The start directory is never the test process's working directory, so a
// path taken from process.cwd() instead of it shows.

import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadSettings, resolveValues } from '../src/config/load-settings.js';
import { resolveConfig, resolveLoaded, type ResolvedConfig } from '../src/config/resolve-config.js';
import type { Hook, HookName, Settings, WorkerSettings } from '../src/config/settings.js';
import { ConfigError } from '../src/core/errors.js';
import { tempDir } from './helpers/daemon.js';

// ---- Types derived from the settings table: a regression here fails the build ----------------

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;
type Assert<T extends true> = T;

export type SettingsTypeChecks = [
  Assert<Equal<Settings['loglevel'], 'debug' | 'info' | 'warning' | 'error' | 'critical'>>,
  Assert<Equal<Settings['cert_reqs'], 'none' | 'optional' | 'required'>>,
  Assert<Equal<Settings['pidfile'], string | null>>,
  Assert<Equal<Settings['errorlog'], string>>,
  Assert<Equal<Settings['workers'], number>>,
  Assert<Equal<Settings['umask'], number>>,
  Assert<Equal<Settings['daemon'], boolean>>,
  Assert<Equal<Settings['bind'], string[]>>,
  Assert<Equal<Settings['on_exit'], Hook>>,
  Assert<Equal<HookName, 'on_starting' | 'when_ready' | 'on_reload' | 'pre_fork' | 'post_fork' | 'post_worker_init'
    | 'worker_int' | 'worker_abort' | 'pre_exec' | 'child_exit' | 'worker_exit' | 'nworkers_changed' | 'on_exit'>>,
  Assert<Equal<Extract<keyof WorkerSettings, HookName>, never>>,
];

// ---- Helpers ----------------------------------------------------------------------------------

/** A start directory: a TOML config, a `site` directory to chdir to, a file, and a TLS pair. */
function startDir(t: import('ava').ExecutionContext): string {
  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.not(dir, process.cwd());
  writeFileSync(join(dir, 'conf.toml'), 'workers = 3\ntimeout = 11\nkeepalive = 9\nbacklog = 7\napp = "from-file.js"\n');
  mkdirSync(join(dir, 'site'));
  mkdirSync(join(dir, 'tls'));
  writeFileSync(join(dir, 'file.txt'), 'not a directory\n');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', join(dir, 'tls/key.pem'), '-out', join(dir, 'tls/cert.pem'), '-days', '2', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  return dir;
}

/** Every path setting relative: they all mean files in the start directory. */
const RELATIVE = ['-c', 'conf.toml', '--chdir', 'site', '-p', 'run/app.pid', '--error-logfile', 'log/error.log',
  '--access-logfile', '-', '--certfile', 'tls/cert.pem', '--keyfile', 'tls/key.pem', '-b', 'unix:run/app.sock',
  '--metrics-bind', 'unix:run/metrics.sock', 'app.js'];

// ---- Precedence -------------------------------------------------------------------------------

test('precedence: defaults < config file < TSGUNICORN_CMD_ARGS < command line', async (t) => {
  const dir = startDir(t);
  const env = { TSGUNICORN_CMD_ARGS: '--keep-alive 8 --timeout 99 -n "my app"' };
  const c = await resolveConfig(['-c', 'conf.toml', '--timeout', '12'], env, dir);
  const s = c.settings;
  t.is(s.workers, 3, 'config file over default');
  t.is(s.backlog, 7, 'config file over default');
  t.is(s.keepalive, 8, 'TSGUNICORN_CMD_ARGS over config file');
  t.is(s.proc_name, 'my app', 'TSGUNICORN_CMD_ARGS over default');
  t.is(s.timeout, 12, 'command line over TSGUNICORN_CMD_ARGS and config file');
  t.is(s.graceful_timeout, 30, 'default');
  t.is(s.app, 'from-file.js');
  t.deepEqual(c.app, { path: 'from-file.js', exportName: null, factoryArgs: null });
  t.deepEqual([...c.explicit].sort(), ['app', 'backlog', 'config', 'keepalive', 'proc_name', 'timeout', 'workers']);

  const positional = await resolveConfig(['-c', 'conf.toml', 'cli.js:app'], { TSGUNICORN_CMD_ARGS: 'env.js' }, dir);
  t.is(positional.settings.app, 'cli.js:app', 'APP_MODULE on the command line over TSGUNICORN_CMD_ARGS and app in the file');
  const fromEnv = await resolveConfig(['-c', 'conf.toml'], { TSGUNICORN_CMD_ARGS: 'env.js' }, dir);
  t.is(fromEnv.settings.app, 'env.js', 'APP_MODULE in TSGUNICORN_CMD_ARGS over app in the file');
});

// ---- Relative paths ---------------------------------------------------------------------------

function checkRelativePaths(t: import('ava').ExecutionContext, c: ResolvedConfig, dir: string): void {
  const s = c.settings;
  t.is(s.config, join(dir, 'conf.toml'));
  t.is(s.chdir, join(dir, 'site'));
  t.is(c.appDir, join(dir, 'site'));
  t.is(s.pidfile, join(dir, 'run/app.pid'));
  t.is(s.errorlog, join(dir, 'log/error.log'));
  t.is(s.accesslog, '-', '`-` stays the standard stream');
  t.is(s.certfile, join(dir, 'tls/cert.pem'));
  t.is(s.keyfile, join(dir, 'tls/key.pem'));
  t.deepEqual(c.binds, [{ kind: 'unix', path: join(dir, 'run/app.sock'), text: `unix:${join(dir, 'run/app.sock')}` }]);
  t.deepEqual(c.metricsBind, { kind: 'unix', path: join(dir, 'run/metrics.sock'), text: `unix:${join(dir, 'run/metrics.sock')}` });
  t.is(s.workers, 3, 'the relative -c was read');
}

test('relative -c, --chdir, pidfile, errorlog, certfile and unix: binds mean the start directory, not the cwd', async (t) => {
  const dir = startDir(t);
  checkRelativePaths(t, await resolveConfig(RELATIVE, {}, dir), dir);
});

test.serial('the same argv resolves the same after the process moved to chdir (what HUP does)', async (t) => {
  const dir = startDir(t);
  const cwd = process.cwd();
  const first = await resolveConfig(RELATIVE, {}, dir);
  try {
    process.chdir(first.appDir);
    const again = await resolveConfig(RELATIVE, {}, dir);
    t.deepEqual(again, first);
    checkRelativePaths(t, again, dir);
  } finally {
    process.chdir(cwd);
  }
});

// ---- Derived values ---------------------------------------------------------------------------

test('appDir is chdir, or else the start directory', async (t) => {
  const dir = startDir(t);
  t.is((await resolveConfig(['--chdir', 'site', 'app.js'], {}, dir)).appDir, join(dir, 'site'));
  t.is((await resolveConfig(['--chdir', join(dir, 'tls'), 'app.js'], {}, dir)).appDir, join(dir, 'tls'), 'an absolute chdir');
  t.is((await resolveConfig(['app.js'], {}, dir)).appDir, dir);
  const loaded = { settings: resolveValues([new Map([['app', 'app.js']])]), explicit: new Set<string>(), help: false, version: false };
  t.is((await resolveLoaded(loaded, dir)).appDir, dir);
});

test('identity is null when neither user nor group is set (and for the master\'s own)', async (t) => {
  const dir = startDir(t);
  const c = await resolveLoaded(await loadSettings(['app.js'], {}, dir), dir);
  t.is(c.settings.user, null);
  t.is(c.settings.group, null);
  t.is(c.identity, null);
  const own = await resolveConfig(['-u', String(process.getuid!()), '-g', String(process.getgid!()), 'app.js'], {}, dir);
  t.is(own.identity, null);
});

// ---- Bad input --------------------------------------------------------------------------------

test('bad input throws a ConfigError with a one-line message', async (t) => {
  const dir = startDir(t);
  const cases: [string[], RegExp][] = [
    [[], /^no application given: /],
    [['app.js:create(1, oops)'], /^app: factory arguments: /],
    [['app.js:make('], /^app: "app\.js:make\(": expected PATH, PATH:EXPORT or PATH:FACTORY\(ARGS\)$/],
    [['-b', 'localhost:99999', 'app.js'], /^bind: invalid port in "localhost:99999"$/],
    [['-b', 'unix:', 'app.js'], /^bind: "unix:" names no socket path$/],
    [['--metrics-bind', '::1:9100', 'app.js'], /^bind: write IPv6 addresses in brackets/],
    [['--chdir', 'missing', 'app.js'], new RegExp(`^chdir: cannot change to ${join(dir, 'missing')}: ENOENT$`)],
    [['--chdir', 'file.txt', 'app.js'], new RegExp(`^chdir: cannot change to ${join(dir, 'file.txt')}: not a directory$`)],
    [['--certfile', 'tls/cert.pem', 'app.js'], /^TLS needs both certfile and keyfile$/],
    [['--certfile', 'tls/nope.pem', '--keyfile', 'tls/key.pem', 'app.js'], new RegExp(`^certfile: cannot read ${join(dir, 'tls/nope.pem')}: ENOENT$`)],
    [['-u', 'no-such-user-tsg', 'app.js'], /^user: no such user "no-such-user-tsg"$/],
    [['-g', 'no-such-group-tsg', 'app.js'], /^group: no such group "no-such-group-tsg"$/],
  ];
  for (const [argv, re] of cases) {
    const err = await t.throwsAsync(resolveConfig(argv, {}, dir), { instanceOf: ConfigError }, argv.join(' '));
    t.regex(err?.message ?? '', re, argv.join(' '));
    t.false(err?.message.includes('\n'), `one line: ${argv.join(' ')}`);
  }
});
