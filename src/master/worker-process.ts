// The master's view of one worker process: how to start it, and what it has told us.

import { spawn, type ChildProcess } from 'node:child_process';
import { setpriv, type Identity } from '../config/identity.js';
import type { WorkerSettings } from '../config/settings.js';
import { WORKER_MAIN } from '../core/program.js';
import { WORKER_ENV, type MasterMessage, type MetricsSnapshot, type WorkerInit, type WorkerMessage } from '../ipc/protocol.js';

/** Variables that belong to the master alone (systemd talks to the master only). */
const MASTER_ONLY_ENV = ['NOTIFY_SOCKET', 'LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES', 'WATCHDOG_USEC', 'WATCHDOG_PID', 'TSGUNICORN_FDS', 'TSGUNICORN_FD_PATHS', 'TSGUNICORN_UPGRADE', 'TSGUNICORN_CMD_ARGS'];

/** A command line and the ids spawn() gives the child before it execs it. */
interface Launch {
  readonly file: string;
  readonly args: string[];
  readonly uid?: number;
  readonly gid?: number;
}

/**
 * How to start node as `id` (null: the master's own) from its first instruction: neither Node's bootstrap nor the app's imports
 * ever run as root, and nothing calls process.setuid(), which Debian's nodejs refuses (io_uring,
 * CVE-2024-22017). With spawn()'s uid/gid, libuv calls setgroups(0, NULL), setgid and setuid in the
 * child before exec, so the worker has no supplementary groups. spawn() cannot do initgroups(3):
 * then setpriv(1) sets the user's groups, gid and uid and execs node in the same process, which
 * keeps the pid and the inherited descriptors (listening sockets, the IPC channel).
 */
function launch(nodeArgs: string[], id: Identity | null, initgroups: boolean): Launch {
  const node = process.execPath;
  if (id === null) return { file: node, args: nodeArgs };
  if (initgroups) return { file: setpriv(), args: [`--reuid=${id.uid}`, `--regid=${id.gid}`, '--init-groups', '--', node, ...nodeArgs] };
  return { file: node, args: nodeArgs, uid: id.uid, gid: id.gid };
}

export type WorkerState = 'booting' | 'ready' | 'draining';

export class WorkerProcess {
  readonly pid: number;
  state: WorkerState = 'booting';
  /** Marked for replacement (max_requests, memory): drained once a replacement is ready. */
  retiring = false;
  readonly spawnedAt = Date.now();
  lastBeat = this.spawnedAt;
  requests = 0;
  /** When SIGABRT was sent for a missed heartbeat. */
  abortedAt = 0;
  /** When SIGTERM was sent to drain it. */
  drainStartedAt = 0;

  private constructor(
    readonly child: ChildProcess,
    readonly age: number,
    readonly gen: number,
    readonly slot: number,
  ) {
    this.pid = child.pid!;
  }

  static spawn(opts: { settings: WorkerSettings; identity: Identity | null; fds: number[]; listenerInodes: string[]; age: number; gen: number; slot: number }): WorkerProcess {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const k of MASTER_ONLY_ENV) delete env[k];
    for (const kv of opts.settings.raw_env) {
      const eq = kv.indexOf('=');
      env[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    const init: WorkerInit = { settings: opts.settings, fds: opts.fds.map((_, i) => 3 + i), listenerInodes: opts.listenerInodes, age: opts.age };
    env[WORKER_ENV] = JSON.stringify(init);
    const how = launch([...process.execArgv, ...opts.settings.node_options, WORKER_MAIN], opts.identity, opts.settings.initgroups);
    const child = spawn(how.file, how.args, {
      stdio: ['ignore', 'inherit', 'inherit', ...opts.fds, 'ipc'],
      env,
      detached: true,
      serialization: 'json',
      uid: how.uid,
      gid: how.gid,
    });
    if (child.pid === undefined) {
      child.once('error', () => { /* reported below */ });
      throw new Error(`could not start ${how.file} (out of processes or memory?)`);
    }
    return new WorkerProcess(child, opts.age, opts.gen, opts.slot);
  }

  onMessage(handler: (msg: WorkerMessage) => void): void {
    this.child.on('message', (m: WorkerMessage) => {
      if (m.t === 'metrics' && !m.final) this.answers.get(m.id)?.(m.data);
      else handler(m);
    });
  }

  private readonly answers = new Map<number, (data: MetricsSnapshot) => void>();
  private nextId = 0;

  /** Asks the worker for its metrics; null when it does not answer in time. */
  metrics(timeoutMs: number): Promise<MetricsSnapshot | null> {
    const id = ++this.nextId;
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.answers.delete(id); resolve(null); }, timeoutMs);
      this.answers.set(id, (data) => { clearTimeout(timer); this.answers.delete(id); resolve(data); });
      if (!this.child.connected) { clearTimeout(timer); this.answers.delete(id); resolve(null); return; }
      this.child.send({ t: 'metrics', id } satisfies MasterMessage, (err) => { if (err) { clearTimeout(timer); this.answers.delete(id); resolve(null); } });
    });
  }

  signal(sig: NodeJS.Signals): void {
    try {
      process.kill(this.pid, sig);
    } catch {
      /* already gone; its exit event follows */
    }
  }

  /** Sends TERM: the worker drains and exits. */
  drain(): void {
    if (this.state === 'draining') return;
    this.state = 'draining';
    this.drainStartedAt = Date.now();
    this.signal('SIGTERM');
  }
}
