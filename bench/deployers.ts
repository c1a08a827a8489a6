// The deploy bench's contenders (bench/deploys.ts), each started and deployed the way its users
// do it: tsgunicorn's HUP and USR2 (shared socket and --reuse-port), Gunicorn's gthread worker
// with its HUP and its USR2 dance, `pm2 reload`, and Node's `cluster` with a hand-written
// rolling restart. A deploy resolves once it is complete: the old processes are gone. And a
// baseline that replaces nothing: the clients' reconnections alone.

import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pm2 as pm2Contender } from './contenders.js';
import { Proc, ROOT, alive, childrenOf, cmdline, firstResponse, sleep, waitUntil } from './procs.js';

export type DeployerId = 'tsg' | 'tsg-reuseport' | 'gunicorn' | 'pm2' | 'cluster' | 'reconnect';

export interface Deployed {
  /** Resolves when the reload is complete (the old workers have exited). */
  reload(): Promise<void>;
  /** Resolves when the upgrade is complete (the old master has exited); null: the contender has none. */
  readonly upgrade: (() => Promise<void>) | null;
  stop(): Promise<void>;
}

export interface Deployer {
  readonly id: DeployerId;
  readonly label: string;
  /** What a reload and an upgrade are for this contender, for the report. */
  readonly reloadHow: string;
  readonly upgradeHow: string | null;
  start(workers: number, port: number): Promise<Deployed>;
}

const NODE_APP = join(ROOT, 'bench', 'apps', 'deploy.mjs');
const RECONNECT_APP = join(ROOT, 'bench', 'apps', 'reconnect.mjs');
/** How long the baseline's "deploy" lasts: about a tsgunicorn HUP at 1,000 connections. */
const RECONNECT_WINDOW_MS = 500;
const DEADLINE_MS = 60_000;
const GUNICORN = '/usr/bin/gunicorn';
/**
 * Gunicorn's gthread threads per worker. A thread serves one request at a time, and the mix keeps
 * about 900 of its 2 s requests in flight at 1,000 connections: one thread per connection on 2
 * workers, so that Gunicorn is measured on its deploys, not on a queue for threads.
 */
export const GUNICORN_THREADS = 512;
/** How often a deploy's end is checked (each check reads /proc on the load's CPU). */
const POLL_MS = 25;

/** Waits for `boot`; stops `p` if it fails, so that nothing of a failed start lingers. */
async function booted(p: Proc, boot: () => Promise<unknown>): Promise<void> {
  try {
    await boot();
  } catch (err) {
    await p.stop();
    throw err;
  }
}

const pidIn = (file: string): number | null => {
  try { return Number(readFileSync(file, 'utf8').trim()) || null; } catch { return null; }
};
const count = (s: string, re: RegExp): number => (s.match(re) ?? []).length;

/** A tsgunicorn the bench started: its master (from the pidfile: USR2 changes it) and workers. */
export interface Tsgunicorn extends Deployed {
  master(): number;
  workers(): number[];
  readonly upgrade: () => Promise<void>;
}

/** Starts tsgunicorn from `home` (a snapshot of bin/ and dist/src/: see snapshotTsgunicorn) with `flags`, serving `app`. */
export async function startTsgunicorn(home: string, workers: number, port: number, flags: readonly string[] = [], app = NODE_APP): Promise<Tsgunicorn> {
  const pidfile = join(mkdtempSync(join(tmpdir(), 'tsg-bench-deploy-')), 'master.pid');
  const p = new Proc([process.execPath, join(home, 'bin', 'tsgunicorn.js'), '-w', String(workers), '-b', `127.0.0.1:${port}`, '--pid', pidfile, ...flags, app]);
  await booted(p, () => p.waitFor(/Ready: \d+ worker/));
  const isWorker = (pid: number): boolean => /tsgunicorn: worker|worker\/main\.js/.test(cmdline(pid));
  const master = (): number => pidIn(pidfile)!;
  const workersOf = (): number[] => childrenOf(master()).filter(isWorker);
  return {
    master,
    workers: workersOf,
    async reload() {
      const old = workersOf();
      const before = count(p.output, /Reloaded: /g);
      process.kill(master(), 'SIGHUP');
      await waitUntil('HUP: the new workers serving and the old gone', () => count(p.output, /Reloaded: /g) > before && old.every((w) => !alive(w)), DEADLINE_MS, POLL_MS);
    },
    async upgrade() {
      const old = master();
      process.kill(old, 'SIGUSR2');
      // The new master writes the pidfile once it serves; the old one exits after it.
      await waitUntil('USR2: the new master serving and the old gone', () => { const next = pidIn(pidfile); return next !== null && next !== old && !alive(old); }, DEADLINE_MS, POLL_MS);
    },
    stop: () => p.stop(),
  };
}

function tsgunicorn(home: string, reusePort: boolean): Deployer {
  return {
    id: reusePort ? 'tsg-reuseport' : 'tsg',
    label: reusePort ? 'tsgunicorn --reuse-port' : 'tsgunicorn',
    reloadHow: 'HUP',
    upgradeHow: 'USR2 (the new master retires the old)',
    start: (workers, port) => startTsgunicorn(home, workers, port, reusePort ? ['--reuse-port'] : []),
  };
}

/**
 * Debian's Gunicorn with the gthread worker, keep-alive 5 s (tsgunicorn's and Node's; Gunicorn's
 * own 2 s would race nginx's 4 s idle upstream connections). HUP starts new workers and retires
 * the old ones.
 * The upgrade is Gunicorn's documented USR2 dance without WINCH, which Gunicorn ignores unless it
 * daemonized (under systemd it does not; QUIT is Gunicorn's quick stop): USR2, wait for the new
 * master's workers and give them 2 s to load the app (Gunicorn says nothing when a worker is
 * ready), then TERM the old master (Gunicorn's graceful stop).
 */
const gunicorn: Deployer = {
  id: 'gunicorn',
  label: `Gunicorn gthread (${GUNICORN_THREADS} threads)`,
  reloadHow: 'HUP',
  upgradeHow: 'USR2, the new workers up + 2 s, TERM to the old master',
  async start(workers, port) {
    if (!existsSync(GUNICORN)) throw new Error(`no ${GUNICORN} (apt-get install gunicorn)`);
    const pidfile = join(mkdtempSync(join(tmpdir(), 'tsg-bench-gunicorn-')), 'gunicorn.pid');
    const p = new Proc([GUNICORN, '-k', 'gthread', '--threads', String(GUNICORN_THREADS), '--keep-alive', '5', '-w', String(workers), '-b', `127.0.0.1:${port}`, '--pid', pidfile, '--chdir', join(ROOT, 'bench', 'apps'), 'deploy_wsgi:application']);
    const full = (master: number): boolean => childrenOf(master).length >= workers;
    await booted(p, async () => {
      await waitUntil('Gunicorn\'s workers', () => p.exited || (pidIn(pidfile) !== null && full(pidIn(pidfile)!)), DEADLINE_MS);
      if (p.exited) throw new Error(`Gunicorn exited at start:\n${p.output}`);
      await firstResponse(port);
    });
    return {
      async reload() {
        const master = pidIn(pidfile)!;
        const old = childrenOf(master);
        process.kill(master, 'SIGHUP');
        await waitUntil('HUP: the old workers gone and as many new', () => old.every((w) => !alive(w)) && full(master), DEADLINE_MS, POLL_MS);
      },
      async upgrade() {
        const old = pidIn(pidfile)!;
        process.kill(old, 'SIGUSR2');
        // The new master writes PIDFILE.2 until the old one is gone, then renames it (its "promotion").
        let next = 0;
        await waitUntil('USR2: Gunicorn\'s new master and its workers', () => { next = pidIn(`${pidfile}.2`) ?? 0; return next !== 0 && next !== old && full(next); }, DEADLINE_MS, POLL_MS);
        await sleep(2000);
        process.kill(old, 'SIGTERM');
        await waitUntil('the old master gone and the new one promoted', () => !alive(old) && pidIn(pidfile) === next, DEADLINE_MS, POLL_MS);
      },
      stop: () => p.stop(),
    };
  },
};

/** PM2 cluster mode (bench/contenders.ts starts it); `pm2 reload` returns once every instance was replaced. */
const pm2: Deployer = {
  id: 'pm2',
  label: 'PM2 cluster mode',
  reloadHow: '`pm2 reload`',
  upgradeHow: null,
  async start(workers, port) {
    const { running } = await pm2Contender.start(NODE_APP, workers, port);
    return { reload: async () => { await running.pm2!(['reload', 'bench']); }, upgrade: null, stop: () => running.stop() };
  },
};

/** bench/servers/cluster-rolling.mjs: fork new workers, then disconnect the old, on HUP. */
const cluster: Deployer = {
  id: 'cluster',
  label: 'Node cluster, rolling restart',
  reloadHow: 'HUP: fork new, disconnect old',
  upgradeHow: null,
  async start(workers, port) {
    const p = new Proc([process.execPath, join(ROOT, 'bench', 'servers', 'cluster-rolling.mjs')], { BENCH_APP: NODE_APP, BENCH_PORT: String(port), BENCH_WORKERS: String(workers) });
    await booted(p, () => p.waitFor(/^ready \d+$/m));
    return {
      async reload() {
        const before = count(p.output, /^reloaded$/gm);
        process.kill(p.pid, 'SIGHUP');
        await waitUntil('the rolling restart', () => count(p.output, /^reloaded$/gm) > before, DEADLINE_MS, POLL_MS);
      },
      upgrade: null,
      stop: () => p.stop(),
    };
  },
};

/**
 * The baseline: tsgunicorn serving bench/apps/reconnect.mjs, whose workers, on SIGWINCH, close
 * every keep-alive connection once after its next response, as a drain does; nothing is replaced.
 * Its "deploy" is the signal and RECONNECT_WINDOW_MS.
 */
function reconnect(home: string): Deployer {
  return {
    id: 'reconnect',
    label: 'Baseline: every connection closed once, nothing replaced',
    reloadHow: `SIGWINCH to the workers' app, then ${RECONNECT_WINDOW_MS} ms`,
    upgradeHow: null,
    async start(workers, port) {
      const tsg = await startTsgunicorn(home, workers, port, [], RECONNECT_APP);
      return {
        async reload() {
          for (const w of tsg.workers()) process.kill(w, 'SIGWINCH');
          await sleep(RECONNECT_WINDOW_MS);
        },
        upgrade: null,
        stop: () => tsg.stop(),
      };
    },
  };
}

export function deployers(tsgHome: string): readonly Deployer[] {
  return [tsgunicorn(tsgHome, false), tsgunicorn(tsgHome, true), gunicorn, pm2, cluster, reconnect(tsgHome)];
}
