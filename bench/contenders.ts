// The servers under test, each started the way its users start it, serving the same app module on
// 127.0.0.1 with the same number of workers. start() returns once every worker serves, with the
// time that took (from spawning the command) and the time of the first answered request.

import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT, Proc, childrenOf, cmdline, firstResponse, waitUntil } from './procs.js';

const run = promisify(execFile);

export type ContenderId = 'tsg' | 'tsg-reuseport' | 'cluster-rr' | 'cluster-none' | 'single' | 'pm2' | 'raw';

export const LABELS: Record<ContenderId, string> = {
  'tsg': 'tsgunicorn',
  'tsg-reuseport': 'tsgunicorn --reuse-port',
  'cluster-rr': 'cluster SCHED_RR',
  'cluster-none': 'cluster SCHED_NONE',
  'single': 'single http process',
  'pm2': 'PM2 cluster mode',
  'raw': 'raw SO_REUSEPORT ceiling',
};

export interface Running {
  /** The supervising process (tsgunicorn's master, cluster's primary, PM2's daemon), if any. */
  readonly master: number | null;
  workers(): number[];
  /** What the server printed (tsgunicorn's log). */
  output(): string;
  /** PM2 only: runs `pm2 ARGS` against this instance's daemon. */
  readonly pm2?: (args: string[]) => Promise<string>;
  stop(): Promise<void>;
}

export interface Started {
  readonly running: Running;
  /** Spawn → every worker serving (tsgunicorn: its `Ready:` line) and the port answering. */
  readonly readyMs: number;
  /** Spawn → the first request answered (the port polled every 5 ms). */
  readonly firstMs: number;
}

export interface Contender {
  readonly id: ContenderId;
  /** Runs one process whatever the worker count (the single `http` process). */
  readonly single?: boolean;
  start(app: string, workers: number, port: number): Promise<Started>;
}

const SERVERS = join(ROOT, 'bench', 'servers');

/** Starts `procs`, then waits for `ready` and, concurrently, for the first answered request. */
async function timed(procs: Proc[], port: number, ready: () => Promise<number>, running: Running): Promise<Started> {
  const t0 = Math.min(...procs.map((p) => p.startedAt));
  try {
    const [readyAt, firstAt] = await Promise.all([ready(), firstResponse(port)]);
    return { running, readyMs: Math.max(readyAt, firstAt) - t0, firstMs: firstAt - t0 };
  } catch (err) {
    await running.stop();
    throw err;
  }
}

function fromProc(p: Proc, master: number | null, workers: () => number[]): Running {
  return { master, workers, output: () => p.output, stop: () => p.stop() };
}

/** tsgunicorn from `home` (a snapshot of bin/ and dist/src/, so rebuilds during a run do not matter). */
function tsgunicorn(home: string, reusePort: boolean): Contender {
  return {
    id: reusePort ? 'tsg-reuseport' : 'tsg',
    async start(app, workers, port) {
      const argv = [process.execPath, join(home, 'bin', 'tsgunicorn.js'), '-w', String(workers), '-b', `127.0.0.1:${port}`, ...(reusePort ? ['--reuse-port'] : []), app];
      const p = new Proc(argv);
      const isWorker = (pid: number): boolean => /tsgunicorn: worker|worker\/main\.js/.test(cmdline(pid));
      const running = fromProc(p, p.pid, () => childrenOf(p.pid).filter(isWorker));
      return timed([p], port, () => p.waitFor(/Ready: \d+ worker/), running);
    },
  };
}

function cluster(sched: 'rr' | 'none'): Contender {
  return {
    id: sched === 'rr' ? 'cluster-rr' : 'cluster-none',
    async start(app, workers, port) {
      const p = new Proc([process.execPath, join(SERVERS, 'cluster.mjs')], { BENCH_APP: app, BENCH_PORT: String(port), BENCH_WORKERS: String(workers), BENCH_SCHED: sched });
      return timed([p], port, () => p.waitFor(/^ready \d+$/m), fromProc(p, p.pid, () => childrenOf(p.pid)));
    },
  };
}

const single: Contender = {
  id: 'single',
  single: true,
  async start(app, _workers, port) {
    const p = new Proc([process.execPath, join(SERVERS, 'http-server.mjs')], { BENCH_APP: app, BENCH_PORT: String(port) });
    return timed([p], port, () => p.waitFor(/^ready \d+$/m), fromProc(p, null, () => [p.pid]));
  },
};

/** N unsupervised `http` processes, each on its own SO_REUSEPORT socket: the ceiling. */
const raw: Contender = {
  id: 'raw',
  async start(app, workers, port) {
    const env = { BENCH_APP: app, BENCH_PORT: String(port), BENCH_REUSE_PORT: '1' };
    const procs = Array.from({ length: workers }, () => new Proc([process.execPath, join(SERVERS, 'http-server.mjs')], env));
    const running: Running = {
      master: null,
      workers: () => procs.map((p) => p.pid),
      output: () => procs.map((p) => p.output).join(''),
      stop: async () => { await Promise.all(procs.map((p) => p.stop())); },
    };
    return timed(procs, port, async () => Math.max(...await Promise.all(procs.map((p) => p.waitFor(/^ready \d+$/m)))), running);
  },
};

/**
 * PM2 in cluster mode, with a private PM2_HOME per start: `pm2 start` launches PM2's daemon (the
 * master) and the workers. Ready is `pm2 start` having returned (every instance online) and the
 * port answering; it includes starting the daemon, as a first `pm2 start` on a server does.
 */
export const pm2: Contender = {
  id: 'pm2',
  async start(app, workers, port) {
    const home = mkdtempSync(join(tmpdir(), 'tsg-bench-pm2-'));
    const config = join(home, 'bench.json');
    writeFileSync(config, JSON.stringify({
      // kill_timeout: PM2's 1.6 s would kill a worker in the middle of a 2 s request.
      apps: [{ name: 'bench', script: join(SERVERS, 'http-server.mjs'), exec_mode: 'cluster', instances: workers, kill_timeout: 5000, env: { BENCH_APP: app, BENCH_PORT: String(port) } }],
    }));
    const env = { PM2_HOME: home };
    const p = new Proc([process.execPath, pm2Bin(), 'start', config], env);
    let god = 0;
    const running: Running = {
      get master() { return god || null; },
      workers: () => (god ? childrenOf(god) : []),
      output: () => p.output,
      pm2: (args) => pm2Command(env, args),
      stop: async () => {
        await pm2Command(env, ['kill']).catch(() => undefined);
        if (god) await waitUntil('PM2 daemon to exit', () => !childrenOf(god).length, 10000, 10).catch(() => undefined);
        rmSync(home, { recursive: true, force: true });
      },
    };
    return timed([p], port, async () => {
      await waitUntil('pm2 start to return', () => p.exited, 30000);
      god = Number(readFileSync(join(home, 'pm2.pid'), 'utf8'));
      await waitUntil(`${workers} PM2 workers`, () => childrenOf(god).length >= workers, 30000);
      return p.exitedAt;
    }, running);
  },
};

export function pm2Bin(): string {
  return join(ROOT, 'node_modules', 'pm2', 'bin', 'pm2');
}

export async function pm2Command(env: NodeJS.ProcessEnv, args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [pm2Bin(), ...args], { cwd: ROOT, env: { ...process.env, ...env }, timeout: 60000 });
  return stdout;
}

export function contenders(tsgHome: string): Map<ContenderId, Contender> {
  const all = [tsgunicorn(tsgHome, false), tsgunicorn(tsgHome, true), cluster('rr'), cluster('none'), single, pm2, raw];
  return new Map(all.map((c) => [c.id, c]));
}
