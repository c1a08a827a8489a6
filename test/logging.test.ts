// The error logger on its own, with real files: levels, reloads retargeting the one destination
// (descriptors, which file each line lands in), USR1 reopen after logrotate, flush before exit,
// journald prefixes, and the fallbacks. What depends on the process's descriptors or standard
// error runs in a child node process importing the compiled logger.

import test from 'ava';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger, type Logger } from '../src/logging/logger.js';
import { tempDir } from './helpers/daemon.js';

const LOGGER = new URL('../src/logging/logger.js', import.meta.url).href;

const lines = (file: string): string[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);
const messages = (file: string): string[] => lines(file).map((l) => l.replace(/^\[[^\]]*\] \[\d+\] \[[A-Z]+\] /, ''));

/** Runs `body` (an ES module body with `createLogger` imported) in a child node; resolves with its exit code and output. */
function child(body: string, opts: { env?: NodeJS.ProcessEnv; stderrFd?: number; closeStderr?: boolean } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = `import { createLogger } from ${JSON.stringify(LOGGER)};\n${body}`;
  const proc = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', opts.stderrFd ?? 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
  if (opts.closeStderr) proc.stderr!.destroy();
  else proc.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  const timer = setTimeout(() => proc.kill('SIGKILL'), 30000);
  return new Promise((resolve) => proc.once('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); }));
}

test('the line shape, and levels honoured from the start and after a reconfigure', async (t) => {
  const file = join(tempDir(), 'error.log');
  const log = createLogger({ errorlog: file, loglevel: 'info' });
  log.debug('debug at info');
  log.info('info at info');
  log.warning('warning at info');
  await log.flush();
  t.deepEqual(messages(file), ['info at info', 'warning at info']);
  t.regex(lines(file)[0]!, new RegExp(`^\\[\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d [+-]\\d{4}\\] \\[${process.pid}\\] \\[INFO\\] info at info$`));
  t.regex(lines(file)[1]!, /\] \[WARNING\] warning at info$/);

  log.reconfigure({ errorlog: file, loglevel: 'debug' });
  log.debug('debug at debug');
  log.reconfigure({ errorlog: file, loglevel: 'error' });
  log.warning('warning at error');
  log.error('error at error');
  log.critical('critical at error');
  await log.flush();
  t.deepEqual(messages(file).slice(2), ['debug at debug', 'error at error', 'critical at error']);
  t.regex(lines(file).at(-1)!, /\] \[CRITICAL\] critical at error$/);
});

test('400 reconfigures between two files and back leave the descriptor count as it was; each line lands, in order, in the file configured when it was logged', async (t) => {
  const dir = tempDir();
  const a = join(dir, 'a.log');
  const b = join(dir, 'b.log');
  const r = await child(`
    import { readdirSync } from 'node:fs';
    const fds = () => readdirSync('/proc/self/fd').length;
    const log = createLogger({ errorlog: ${JSON.stringify(a)}, loglevel: 'info' });
    log.info('line 0');
    await log.flush();
    const before = fds();
    for (let i = 1; i <= 400; i++) {
      log.reconfigure({ errorlog: i % 2 ? ${JSON.stringify(b)} : ${JSON.stringify(a)}, loglevel: 'info' });
      log.info('line ' + i);
    }
    await log.flush();
    console.log(JSON.stringify({ before, after: fds() }));
  `);
  t.is(r.code, 0, r.stderr);
  const { before, after } = JSON.parse(r.stdout) as { before: number; after: number };
  t.is(after, before);
  const numbered = (odd: boolean): string[] => Array.from({ length: 401 }, (_, i) => i).filter((i) => (i % 2 === 1) === odd).map((i) => `line ${i}`);
  t.deepEqual(messages(a), numbered(false));
  t.deepEqual(messages(b), numbered(true));
});

/** Logs 'before', renames the file to `.1` (as logrotate does), does `then`, logs 'after'; returns the path. */
async function aroundRename(then: (log: Logger, file: string) => void): Promise<string> {
  const file = join(tempDir(), 'error.log');
  const log = createLogger({ errorlog: file, loglevel: 'info' });
  log.info('before');
  await log.flush();
  renameSync(file, `${file}.1`);
  then(log, file);
  log.info('after');
  await log.flush();
  return file;
}

test('a reconfigure to the same path opens nothing: the line goes on to the file already open', async (t) => {
  const file = await aroundRename((log, path) => log.reconfigure({ errorlog: path, loglevel: 'info' }));
  t.false(existsSync(file), 'no file opened at the path');
  t.deepEqual(messages(`${file}.1`), ['before', 'after']);
});

test('reopen after the file was renamed (logrotate) writes to a new file at the path', async (t) => {
  const file = await aroundRename((log) => log.reopen());
  t.deepEqual(messages(`${file}.1`), ['before']);
  t.deepEqual(messages(file), ['after']);
});

test('flush() resolves once the last line is in the file: process.exit right after loses nothing', async (t) => {
  const file = join(tempDir(), 'error.log');
  const r = await child(`
    const log = createLogger({ errorlog: ${JSON.stringify(file)}, loglevel: 'info' });
    for (let i = 0; i < 5000; i++) log.info('line ' + i + ' ' + 'x'.repeat(100));
    log.error('the last line');
    await log.flush();
    process.exit(3);
  `);
  t.is(r.code, 3, r.stderr);
  const got = messages(file);
  t.is(got.length, 5001);
  t.is(got.at(-1), 'the last line');
});

test('with JOURNAL_STREAM naming stderr every line of a message carries its <N> priority, and only while the log goes to stderr', async (t) => {
  const dir = tempDir();
  const stderr = join(dir, 'stderr.log');
  const file = join(dir, 'error.log');
  const fd = openSync(stderr, 'w');
  const st = fstatSync(fd);
  const r = await child(`
    const log = createLogger({ errorlog: '-', loglevel: 'debug' });
    log.error('boom\\n  at one\\n  at two');
    log.info('info\\nsecond');
    log.warning('warning');
    log.critical('critical');
    log.debug('debug');
    log.reconfigure({ errorlog: ${JSON.stringify(file)}, loglevel: 'debug' });
    log.info('to the file\\nsecond');
    log.reconfigure({ errorlog: '-', loglevel: 'debug' });
    log.info('back');
    await log.flush();
  `, { env: { JOURNAL_STREAM: `${st.dev}:${st.ino}` }, stderrFd: fd });
  closeSync(fd);
  t.is(r.code, 0);
  t.deepEqual(lines(stderr), ['<3>boom', '<3>  at one', '<3>  at two', '<6>info', '<6>second', '<4>warning', '<2>critical', '<7>debug', '<6>back']);
  const logged = lines(file);
  t.is(logged.length, 2);
  t.regex(logged[0]!, /^\[\d{4}-\d\d-\d\d [^\]]+\] \[\d+\] \[INFO\] to the file$/);
  t.is(logged[1], 'second');
});

test('without JOURNAL_STREAM naming stderr, lines on stderr have timestamps', async (t) => {
  const r = await child(`
    const log = createLogger({ errorlog: '-', loglevel: 'info' });
    log.error('plain');
    await log.flush();
  `, { env: { JOURNAL_STREAM: '1:2' } });
  t.is(r.code, 0);
  t.regex(r.stderr, /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] \[ERROR\] plain\n$/);
});

test('an unwritable log file falls back to standard error with one warning', async (t) => {
  const r = await child(`
    const log = createLogger({ errorlog: '/dev/full', loglevel: 'info' });
    log.info('lost');
    await log.flush();
    log.info('two');
    log.info('three');
    await log.flush();
  `);
  t.is(r.code, 0);
  t.is(r.stderr.match(/cannot write log file \/dev\/full \(ENOSPC/g)?.length, 1, r.stderr);
  t.regex(r.stderr, /\[INFO\] two\n.*\[INFO\] three\n$/);
});

test('standard error gone (EPIPE): lines are dropped, the process neither dies nor complains', async (t) => {
  const r = await child(`
    const log = createLogger({ errorlog: '-', loglevel: 'info' });
    for (let i = 0; i < 200; i++) { log.info('line ' + i); await log.flush(); }
    console.log('done');
  `, { closeStderr: true });
  t.is(r.code, 0);
  t.is(r.stdout, 'done\n');
});
