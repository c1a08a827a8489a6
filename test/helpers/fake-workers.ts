// Stand-in worker processes for unit tests of the master's logic (worker-pool.ts, arbiter.ts): a
// Spawner whose children are objects the test drives (say ready, exit) and that record the
// signals the master sends them. No process is started and no real pid is ever signalled.

import { EventEmitter } from 'node:events';
import type { MasterMessage, WorkerMessage } from '../../src/ipc/protocol.js';
import type { SpawnOptions, Spawner, WorkerChild } from '../../src/master/worker-process.js';

let nextPid = 4_000_000;

export class FakeChild extends EventEmitter implements WorkerChild {
  readonly pid = ++nextPid;
  readonly signals: NodeJS.Signals[] = [];
  exited = false;
  connected = true;

  constructor(readonly opts: SpawnOptions, private readonly dieOn: ReadonlySet<NodeJS.Signals>) {
    super();
  }

  kill(signal: NodeJS.Signals): boolean {
    if (this.exited) return false;
    this.signals.push(signal);
    if (this.dieOn.has(signal)) setImmediate(() => this.exit(null, signal));
    return true;
  }

  send(_message: MasterMessage, callback: (err: Error | null) => void): boolean {
    setImmediate(() => callback(null));
    return true;
  }

  /** The worker says something to the master. */
  say(message: WorkerMessage): void {
    this.emit('message', message);
  }

  exit(code: number | null, signal: NodeJS.Signals | null = null): void {
    if (this.exited) return;
    this.exited = true;
    this.connected = false;
    this.emit('exit', code, signal);
  }
}

export interface FakeSpawner {
  readonly spawn: Spawner;
  readonly children: FakeChild[];
  /** Children that have not exited. */
  alive(): FakeChild[];
}

/**
 * A spawner of FakeChild. `dieOn`: the signals a child exits on by itself (like a worker that
 * drains at once); `readyAtOnce`: children say `ready` right after they are started.
 */
export function fakeSpawner(opts: { dieOn?: NodeJS.Signals[]; readyAtOnce?: boolean } = {}): FakeSpawner {
  const children: FakeChild[] = [];
  const dieOn = new Set<NodeJS.Signals>(opts.dieOn ?? ['SIGTERM', 'SIGQUIT', 'SIGKILL']);
  return {
    children,
    alive: () => children.filter((c) => !c.exited),
    spawn: (spawnOpts) => {
      const child = new FakeChild(spawnOpts, dieOn);
      children.push(child);
      if (opts.readyAtOnce) setImmediate(() => child.say({ t: 'ready' }));
      return child;
    },
  };
}
