// The master's view of one worker process: how to start it, what it has told us, and its own
// transitions. A worker is `booting` until it says it serves, then `ready`, then `draining` once
// told to stop; `retiring` marks a ready worker to be replaced (max_requests, memory, a fatal
// error) as soon as its replacement serves. Nothing outside this class writes its state: the pool
// calls the transitions, which also send the signals that go with them.

import { spawn } from 'node:child_process';
import type { Identity } from '../config/identity.js';
import { setpriv } from '../config/identity.js';
import type { WorkerSettings } from '../config/settings.js';
import { WORKER_MAIN } from '../core/program.js';
import { ACCEPT_HANDLES, WORKER_ENV, type MasterMessage, type MetricsSnapshot, type WorkerInit, type WorkerMessage } from '../ipc/protocol.js';

/** Variables that belong to the master alone (systemd talks to the master only). */
const MASTER_ONLY_ENV = ['NOTIFY_SOCKET', 'LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES', 'WATCHDOG_USEC', 'WATCHDOG_PID', 'TSGUNICORN_FDS', 'TSGUNICORN_FD_PATHS', 'TSGUNICORN_UPGRADE', 'TSGUNICORN_CMD_ARGS'];

/** How long a worker sent SIGABRT (or told to drain, past graceful_timeout) gets before SIGKILL. */
export const KILL_AFTER_ABORT_MS = 1000;

/** What the master needs of a child process: Node's ChildProcess, or a stand-in in unit tests. */
export interface WorkerChild {
  readonly pid?: number | undefined;
  readonly connected: boolean;
  kill(signal: NodeJS.Signals): boolean;
  send(message: MasterMessage, callback: (err: Error | null) => void): boolean;
  on(event: 'message', listener: (m: WorkerMessage) => void): unknown;
  once(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): unknown;
}

export interface SpawnOptions {
  readonly settings: WorkerSettings;
  readonly identity: Identity | null;
  /** The app's directory: the worker's working directory. */
  readonly cwd: string;
  /** The master's descriptors this worker listens on (each becomes ACCEPT_HANDLES descriptors in the worker, from 3 up). */
  readonly fds: readonly number[];
  readonly listenerInodes: readonly string[];
  readonly age: number;
}

/** Starts a worker process; throws when it could not be started at all. */
export type Spawner = (opts: SpawnOptions) => WorkerChild;

/** A command line and the ids spawn() gives the child before it execs it. */
interface Launch {
  readonly file: string;
  readonly args: string[];
  readonly uid?: number;
  readonly gid?: number;
}

/**
 * How to start node as `id` (null: the master's own) from its first instruction: neither Node's
 * bootstrap nor the app's imports ever run as root, and nothing calls process.setuid(), which
 * Debian's nodejs refuses (io_uring, CVE-2024-22017). With spawn()'s uid/gid, libuv calls
 * setgroups(0, NULL), setgid and setuid in the child before exec, so the worker has no
 * supplementary groups. spawn() cannot do initgroups(3): then setpriv(1) sets the user's groups,
 * gid and uid and execs node in the same process, which keeps the pid and the inherited
 * descriptors (listening sockets, the IPC channel).
 */
function launch(nodeArgs: string[], id: Identity | null, initgroups: boolean): Launch {
  const node = process.execPath;
  if (id === null) return { file: node, args: nodeArgs };
  if (initgroups) return { file: setpriv(), args: [`--reuid=${id.uid}`, `--regid=${id.gid}`, '--init-groups', '--', node, ...nodeArgs] };
  return { file: node, args: nodeArgs, uid: id.uid, gid: id.gid };
}

/** The real spawner: node running the worker program, as the configured user. */
export const spawnWorker: Spawner = (opts) => {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of MASTER_ONLY_ENV) delete env[k];
  for (const kv of opts.settings.raw_env) {
    const eq = kv.indexOf('=');
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  // Each socket as ACCEPT_HANDLES descriptors in a row: 3 to 10 the first one, 11 to 18 the next...
  const fds = opts.fds.map((_, i) => Array.from({ length: ACCEPT_HANDLES }, (_, k) => 3 + i * ACCEPT_HANDLES + k));
  const init: WorkerInit = { settings: opts.settings, fds, listenerInodes: [...opts.listenerInodes], age: opts.age };
  env[WORKER_ENV] = JSON.stringify(init);
  const how = launch([...process.execArgv, ...opts.settings.node_options, WORKER_MAIN], opts.identity, opts.settings.initgroups);
  const child = spawn(how.file, how.args, {
    stdio: ['ignore', 'inherit', 'inherit', ...opts.fds.flatMap((fd) => Array<number>(ACCEPT_HANDLES).fill(fd)), 'ipc'],
    cwd: opts.cwd,
    env,
    detached: true,
    serialization: 'json',
    uid: how.uid,
    gid: how.gid,
  });
  // A signal that cannot be delivered is reported as an 'error' event; the exit event tells the rest.
  child.on('error', () => { /* see above */ });
  if (child.pid === undefined) throw new Error(`could not start ${how.file} (out of processes or memory?)`);
  return child;
};

export type WorkerState = 'booting' | 'ready' | 'draining';

/** Why a worker was just sent a signal by a deadline (for the log), or null. */
export type Overdue = 'boot timeout' | 'silent' | null;

export class WorkerProcess {
  readonly pid: number;
  readonly spawnedAt: number;
  private stateNow: WorkerState = 'booting';
  private retiringNow = false;
  private closedNow = false;
  private lastBeatAt: number;
  private served = 0;
  /** When SIGABRT (or SIGKILL for a boot timeout) was sent; 0: never. */
  private abortedAt = 0;
  /** When SIGTERM was sent to drain it; 0: never. */
  private drainStartedAt = 0;
  private readonly answers = new Map<number, (data: MetricsSnapshot) => void>();
  private nextId = 0;

  constructor(
    private readonly child: WorkerChild,
    readonly age: number,
    readonly gen: number,
    readonly slot: number,
    now: number = Date.now(),
  ) {
    this.pid = child.pid!;
    this.spawnedAt = now;
    this.lastBeatAt = now;
  }

  get state(): WorkerState { return this.stateNow; }
  get retiring(): boolean { return this.retiringNow; }
  /** Draining, it said it closed its listeners: no new connection reaches it. */
  get closed(): boolean { return this.closedNow; }
  get requests(): number { return this.served; }
  get lastBeat(): number { return this.lastBeatAt; }

  /** Messages from the worker, after its heartbeat is noted (metrics answers are kept here). */
  onMessage(handler: (msg: WorkerMessage) => void): void {
    this.child.on('message', (m) => {
      this.lastBeatAt = Date.now();
      if (m.t === 'hb') this.served = m.requests;
      if (m.t === 'closed') this.closedNow = true;
      if (m.t === 'metrics' && !m.final) this.answers.get(m.id)?.(m.data);
      else handler(m);
    });
  }

  onExit(handler: (code: number | null, signal: NodeJS.Signals | null) => void): void {
    this.child.once('exit', handler);
  }

  /** The worker says it serves: true when that is news (it was booting). */
  markReady(): boolean {
    if (this.stateNow !== 'booting') return false;
    this.stateNow = 'ready';
    return true;
  }

  /** Marks a ready worker for replacement: true when that is news. */
  retire(): boolean {
    if (this.stateNow !== 'ready' || this.retiringNow) return false;
    this.retiringNow = true;
    return true;
  }

  /** Sends TERM: the worker drains and exits. */
  drain(now: number = Date.now()): void {
    if (this.stateNow === 'draining') return;
    this.stateNow = 'draining';
    this.drainStartedAt = now;
    this.signal('SIGTERM');
  }

  /** Kills a worker nobody needs any more (a failed reload's new generation). */
  discard(): void {
    this.stateNow = 'draining';
    this.signal('SIGKILL');
  }

  /**
   * Enforces the worker's deadlines at `now`: a boot longer than `timeoutMs` is killed, a worker
   * silent for `timeoutMs` is sent SIGABRT (so it can log a stack) and SIGKILL a second later, and
   * a drain longer than `graceMs` is cut short with SIGKILL.
   */
  enforceDeadlines(now: number, timeoutMs: number, graceMs: number): Overdue {
    if (this.abortedAt > 0) {
      if (now - this.abortedAt >= KILL_AFTER_ABORT_MS) this.signal('SIGKILL');
    } else if (this.stateNow === 'booting' && now - this.spawnedAt > timeoutMs) {
      this.abortedAt = now;
      this.signal('SIGKILL');
      return 'boot timeout';
    } else if (now - this.lastBeatAt > timeoutMs) {
      this.abortedAt = now;
      this.signal('SIGABRT');
      return 'silent';
    } else if (this.stateNow === 'draining' && now - this.drainStartedAt > graceMs + KILL_AFTER_ABORT_MS) {
      this.signal('SIGKILL');
    }
    return null;
  }

  /** Asks the worker for its metrics; null when it does not answer in time. */
  metrics(timeoutMs: number): Promise<MetricsSnapshot | null> {
    const id = ++this.nextId;
    return new Promise((resolve) => {
      const settle = (data: MetricsSnapshot | null): void => { clearTimeout(timer); this.answers.delete(id); resolve(data); };
      const timer = setTimeout(() => settle(null), timeoutMs);
      this.answers.set(id, settle);
      if (!this.child.connected) { settle(null); return; }
      this.child.send({ t: 'metrics', id }, (err) => { if (err) settle(null); });
    });
  }

  /** Tells the worker the master is in lame duck (lame_duck). */
  lameDuck(): void {
    if (this.child.connected) this.child.send({ t: 'lame-duck' }, () => { /* gone: its exit event follows */ });
  }

  signal(sig: NodeJS.Signals): void {
    // false when it has exited already: its exit event follows.
    this.child.kill(sig);
  }
}
