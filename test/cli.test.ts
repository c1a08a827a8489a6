import test from 'ava';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fixture, freePort, runCli, start, tempDir } from './helpers/daemon.js';

function oneLine(t: import('ava').ExecutionContext, stderr: string, re: RegExp): void {
  t.is(stderr.trim().split('\n').length, 1, `one line: ${stderr}`);
  t.regex(stderr, re);
  t.notRegex(stderr, /\n\s+at /, 'no stack trace');
}

test('--print-config resolves defaults < config file < TSGUNICORN_CMD_ARGS < command line', async (t) => {
  const dir = tempDir();
  const conf = join(dir, 'app.toml');
  writeFileSync(conf, 'workers = 3\ntimeout = 11\nkeepalive = 9\nbind = ["unix:/tmp/x.sock"]\napp = "hello.js"\n');
  const r = await runCli(['-c', conf, '--timeout', '12', '--print-config'], { env: { TSGUNICORN_CMD_ARGS: '--keep-alive 8 --timeout 99 -n "my app"' } });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^workers\s+= 3$/m);
  t.regex(r.stdout, /^timeout\s+= 12$/m);
  t.regex(r.stdout, /^keepalive\s+= 8$/m);
  t.regex(r.stdout, /^proc_name\s+= "my app"$/m);
  t.regex(r.stdout, /^bind\s+= \["unix:\/tmp\/x.sock"\]$/m);
  t.regex(r.stdout, /^app\s+= "hello.js"$/m);
  t.regex(r.stdout, /^graceful_timeout\s+= 30$/m);
  t.regex(r.stdout, /^limit_request_line\s+= 4094$/m);
});

test('a JS config file sets settings and hooks', async (t) => {
  const dir = tempDir();
  const conf = join(dir, 'conf.mjs');
  writeFileSync(conf, 'export const workers = 2;\nexport function on_starting(server) {}\n');
  const r = await runCli(['-c', conf, '--print-config']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^workers\s+= 2$/m);
  t.regex(r.stdout, /^on_starting\s+= <function on_starting>$/m);
});

test('bad input exits 2 with one clear line and no stack trace', async (t) => {
  const dir = tempDir();
  const badToml = join(dir, 'bad.toml');
  writeFileSync(badToml, 'workers = "many"\n');
  const unknownKey = join(dir, 'typo.toml');
  writeFileSync(unknownKey, 'wrokers = 2\n');
  const invalid = join(dir, 'invalid.toml');
  writeFileSync(invalid, 'workers = = 2\n');
  const badHook = join(dir, 'hook.mjs');
  writeFileSync(badHook, 'export const on_exit = 5;\n');
  const cases: [string[], RegExp][] = [
    [['--wrokers', '2', 'app.js'], /unknown option --wrokers/],
    [['-w', 'two', 'app.js'], /workers: expected a whole number, got "two"/],
    [['-w', '0', 'app.js'], /workers: must be at least 1/],
    [['--timeout'], /option --timeout needs a value/],
    [['-b', 'localhost:99999', 'app.js'], /bind: invalid port/],
    [['-b', '::1:80', 'app.js'], /bind: write IPv6 addresses in brackets/],
    [['--log-level', 'loud', 'app.js'], /loglevel: expected one of debug, info, warning, error, critical/],
    [['-c', badToml, 'app.js'], /workers: expected a whole number/],
    [['-c', unknownKey, 'app.js'], /unknown setting "wrokers"/],
    [['-c', invalid, 'app.js'], /invalid TOML/],
    [['-c', join(dir, 'missing.toml'), 'app.js'], /cannot read config file/],
    [['-c', badHook, 'app.js'], /on_exit: expected a function/],
    [['app.js', 'other.js'], /expected one APP_MODULE/],
    [[], /no application given/],
    [['app.js:create(1, oops)'], /factory arguments/],
  ];
  for (const [args, re] of cases) {
    const r = await runCli(args);
    t.is(r.code, 2, `${args.join(' ')} -> ${r.stderr}`);
    oneLine(t, r.stderr, re);
  }
  const env = await runCli(['app.js'], { env: { TSGUNICORN_CMD_ARGS: '--nope' } });
  t.is(env.code, 2);
  oneLine(t, env.stderr, /TSGUNICORN_CMD_ARGS: unknown option --nope/);
});

test('--check-config loads the app: 0 when good, 4 with the app\'s error when broken', async (t) => {
  const good = await runCli(['--check-config', fixture('app.mjs')]);
  t.is(good.code, 0, good.stderr);
  const broken = await runCli(['--check-config', fixture('broken-import.mjs')]);
  t.is(broken.code, 4);
  t.regex(broken.stderr, /database URL missing: cannot start/);
  const notApp = await runCli(['--check-config', fixture('not-an-app.mjs')]);
  t.is(notApp.code, 4);
  t.regex(notApp.stderr, /is a number; expected a request listener/);
});

test('an app that throws at import, has a syntax error or is missing exits 4 showing why', async (t) => {
  const cases: [string, RegExp][] = [
    [fixture('broken-import.mjs'), /database URL missing: cannot start/],
    [fixture('syntax-error.mjs'), /SyntaxError/],
    [fixture('nope.mjs'), /cannot find application module/],
    [`${fixture('app.mjs')}:missing`, /has no export "missing"/],
  ];
  await Promise.all(cases.map(async ([spec, re]) => {
    const port = await freePort();
    const d = start(t, ['-w', '2', '-b', `127.0.0.1:${port}`, spec]);
    const { code } = await d.exited;
    t.is(code, 4, `${spec}: ${d.output}`);
    t.regex(d.output, re);
    t.regex(d.output, /App failed to load/);
  }));
});

test('a second server on the same address fails fast with "address in use"', async (t) => {
  const port = await freePort();
  const first = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, fixture('app.mjs')]);
  await first.waitReady();
  const began = Date.now();
  const second = await runCli(['-w', '1', '-b', `127.0.0.1:${port}`, fixture('app.mjs')]);
  t.is(second.code, 1);
  t.regex(second.stderr, /address in use/);
  t.true(Date.now() - began < 5000);
  // Also against a server that is not tsgunicorn, listening on the wildcard address.
  const { createServer } = await import('node:net');
  const other = createServer();
  const port2 = await freePort();
  await new Promise<void>((r) => other.listen(port2, '0.0.0.0', r));
  t.teardown(() => other.close());
  const third = await runCli(['-b', `127.0.0.1:${port2}`, fixture('app.mjs')]);
  t.is(third.code, 1);
  t.regex(third.stderr, /address in use/);
});

test('a second server on a live unix socket exits 1 with one line and leaves the first one its path', async (t) => {
  const sock = join(tempDir(), 'app.sock');
  const first = start(t, ['-w', '1', '-b', `unix:${sock}`, fixture('app.mjs')]);
  await first.waitReady();
  const second = await runCli(['-w', '1', '-b', `unix:${sock}`, fixture('app.mjs')]);
  t.is(second.code, 1);
  t.true(second.stderr.endsWith(`\ntsgunicorn: error: cannot listen on unix:${sock}: address in use (a server answers on it)\n`), second.stderr);
  t.notRegex(second.stderr, /\n\s+at /, 'no stack trace');
  const body = await new Promise<string>((resolve, reject) => {
    const s = connect(sock, () => s.end('GET /still HTTP/1.0\r\n\r\n'));
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => { text += d; });
    s.on('end', () => resolve(text));
    s.on('error', reject);
  });
  t.regex(body, /hello GET \/still/, 'the first server still answers on the path');
});

test('--help lists options and signals; --version prints the version', async (t) => {
  const help = await runCli(['--help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /usage: tsgunicorn \[OPTIONS\] \[APP_MODULE\]/);
  t.regex(help.stdout, /-w INT, --workers INT/);
  t.regex(help.stdout, /TTIN/);
  const v = await runCli(['--version']);
  t.is(v.code, 0);
  t.regex(v.stdout, /^tsgunicorn \d+\.\d+\.\d+/);
});
