// Signals at any moment (docs/signals.md): HUP and USR2 sent 0, 20, 100 and 500 ms after the
// master's first instruction (the moment its handlers are in place, read from /proc: SigCgt),
// while it still loads, binds and boots; and HUP and USR2 sent during a reload, an upgrade and a
// rollback. The master survives each, the operation is carried out (new code served, or the
// pidfile names a new master), and the log says when one waited or was coalesced.

import test from 'ava';
import { copyFileSync, existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive, fixture, freePort, get, pidIn, sleep, start, tempDir, trackAll, waitUntil, type Daemon } from './helpers/daemon.js';

const SIGNUM = { SIGHUP: 1, SIGUSR2: 12 } as const;

/** Whether the process catches `sig` (its handler is installed), from /proc/PID/status. */
function catches(pid: number, sig: keyof typeof SIGNUM): boolean {
  try {
    const mask = /SigCgt:\s*([0-9a-f]+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]!;
    return ((BigInt(`0x${mask}`) >> BigInt(SIGNUM[sig] - 1)) & 1n) === 1n;
  } catch {
    return false;
  }
}

interface Setup {
  readonly d: Daemon;
  readonly port: number;
  readonly app: string;
  readonly pidfile: string;
}

async function daemon(t: import('ava').ExecutionContext, extra: readonly string[] = []): Promise<Setup> {
  const dir = tempDir();
  const app = join(dir, 'app.mjs');
  copyFileSync(fixture('app.mjs'), app);
  const pidfile = join(dir, 'master.pid');
  const port = await freePort();
  const d = start(t, ['-w', '2', '-b', `127.0.0.1:${port}`, '-p', pidfile, ...extra, app]);
  trackAll(t, pidfile);
  return { d, port, app, pidfile };
}

async function newMaster(s: Setup, from: number): Promise<number> {
  await waitUntil('the pidfile to name a new master and the old one to be gone', () => {
    const p = pidIn(s.pidfile);
    return p !== null && p !== from && !alive(from) && !existsSync(`${s.pidfile}.oldbin`);
  }, 60000);
  return pidIn(s.pidfile)!;
}

const v2 = "export default (req, res) => res.end('v2\\n');\n";

/** Replaces a file at once (rename), never half-written under a worker that is loading it. */
function replace(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

for (const sig of ['SIGHUP', 'SIGUSR2'] as const) {
  for (const ms of [0, 20, 100, 500]) {
    test.serial(`${sig.slice(3)} ${ms} ms after the master's first instruction is carried out`, async (t) => {
      const s = await daemon(t);
      await waitUntil('the handlers', () => catches(s.d.pid, sig), 20000);
      await sleep(ms);
      replace(s.app, v2);
      process.kill(s.d.pid, sig);
      if (sig === 'SIGHUP') {
        await s.d.waitForLog(/Reloaded: /, 60000);
        t.true(alive(s.d.pid), 'the master lives');
      } else {
        await newMaster(s, s.d.pid);
        t.is((await s.d.exited).code, 0, 'the old master handed over and exited cleanly');
      }
      t.is((await get(`http://127.0.0.1:${s.port}/`)).body, 'v2\n', 'the new code serves');
      const early = /(HUP|USR2) while booting: carried out when that ends/.test(s.d.output);
      // At 0 ms the master has not even bound its socket: the booting path is the one tested.
      if (ms === 0) t.true(early, 'it came while the master booted, and waited');
      t.log(early ? 'it came while the master booted, and waited' : 'it came once the master ran');
    });
  }
}

test.serial('HUP during a reload is carried out after it, repeats coalesce, and a USR2 waits its turn', async (t) => {
  const s = await daemon(t);
  await s.d.waitReady();
  // New workers that take 1.5 s to load keep the master in the reload while the signals come (one
  // at a time: the kernel itself merges a signal sent again before the first was delivered).
  copyFileSync(fixture('slow-boot.mjs'), s.app);
  s.d.signal('SIGHUP');
  await s.d.waitForLog(/Handling signal: hup/);
  s.d.signal('SIGHUP');
  await s.d.waitForLog(/HUP while reloading: carried out when that ends/);
  s.d.signal('SIGHUP');
  await s.d.waitForLog(/HUP while reloading: coalesced with the HUP already pending/);
  s.d.signal('SIGUSR2');
  await s.d.waitForLog(/USR2 while reloading: carried out when that ends/);
  const next = await newMaster(s, s.d.pid);
  t.is((s.d.output.match(/\[INFO\] Reloaded: /g) ?? []).length, 2, 'two reloads: the first, then the pending one');
  t.regex(s.d.output, /Carrying out the pending USR2/);
  t.true(alive(next));
});

test.serial('HUP during an upgrade is passed on to the new master, which reloads', async (t) => {
  const s = await daemon(t);
  await s.d.waitReady();
  s.d.signal('SIGUSR2');
  await s.d.waitForLog(/Started new master/);
  s.d.signal('SIGHUP');
  await s.d.waitForLog(/HUP while upgrading: carried out when that ends/);
  const next = await newMaster(s, s.d.pid);
  await s.d.waitForLog(new RegExp(`Passing the pending HUP on to the new master \\(pid ${next}\\)`));
  await s.d.waitForLog(new RegExp(`\\[${next}\\] \\[INFO\\] Reloaded: `));
  t.is((await get(`http://127.0.0.1:${s.port}/`)).status, 200);
});

test.serial('HUP during an upgrade that rolls back, and USR2 right after the rollback, are carried out by the old master', async (t) => {
  const s = await daemon(t, ['--upgrade-timeout', '2']);
  await s.d.waitReady();
  replace(s.app, "await new Promise((r) => setTimeout(r, 60000));\nexport default (req, res) => res.end('late');\n");
  s.d.signal('SIGUSR2');
  await s.d.waitForLog(/Started new master/);
  s.d.signal('SIGHUP');
  await s.d.waitForLog(/Upgrade failed: the new master was not ready within upgrade_timeout/);
  replace(s.app, v2);
  s.d.signal('SIGUSR2');
  await s.d.waitForLog(/Carrying out the pending HUP/, 30000);
  await s.d.waitForLog(/Reloaded: /, 30000);
  const next = await newMaster(s, s.d.pid);
  t.true(alive(next));
  t.is((await get(`http://127.0.0.1:${s.port}/`)).body, 'v2\n');
  t.log(/USR2 while rolling back/.test(s.d.output) ? 'the USR2 came while the old master rolled back, and waited' : 'the USR2 came once the rollback was over');
});

test.serial('signals while stopping are ignored with a log line, INT quickens a graceful stop', async (t) => {
  const s = await daemon(t, ['--graceful-timeout', '20']);
  await s.d.waitReady();
  const slow = get(`http://127.0.0.1:${s.port}/slow?ms=15000`, {}, 30000).catch(() => null);
  await sleep(300);
  s.d.signal('SIGTERM');
  await s.d.waitForLog(/Graceful stop/);
  for (const sig of ['SIGHUP', 'SIGUSR2', 'SIGTTIN'] as const) s.d.signal(sig);
  await s.d.waitForLog(/USR2 ignored: the master is stopping/);
  t.regex(s.d.output, /HUP ignored: the master is stopping/);
  s.d.signal('SIGINT');
  const { code } = await s.d.exited;
  t.is(code, 0);
  await slow;
});

test.serial('TERM 0 ms after the first instruction ends the master at once, and leaves no pidfile, socket path or process', async (t) => {
  const dir = tempDir();
  const pidfile = join(dir, 'master.pid');
  const sock = join(dir, 'app.sock');
  const d = start(t, ['-w', '2', '-b', `unix:${sock}`, '-p', pidfile, fixture('app.mjs')]);
  await waitUntil('the handlers', () => catches(d.pid, 'SIGHUP'), 20000);
  d.signal('SIGTERM');
  t.is((await d.exited).code, 0);
  t.false(existsSync(pidfile), 'no pidfile');
  t.false(existsSync(sock), 'no socket path');
  t.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.tsg-')), [], 'no socket under its bind name');
});
