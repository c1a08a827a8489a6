// The master's workers: how many there should be (the target), which generation they run (a HUP
// starts a new one), their ages and socket slots, boot back-off and deadlines. The pool starts,
// replaces and retires workers on its own; what the arbiter must decide about (a generation now
// serves, a worker of the current generation failed to boot) it reports through PoolEvents.
//
// A generation is the configuration its workers were started with. Workers of older generations,
// and retiring ones, are drained once the current generation has `target` ready workers, so the
// number serving never drops during a reload or a recycle.

import type { ResolvedConfig } from '../config/resolve-config.js';
import { SETTINGS, type WorkerSettings } from '../config/settings.js';
import { WORKER_EXIT, type MetricsSnapshot, type WorkerMessage } from '../ipc/protocol.js';
import type { Logger } from '../logging/logger.js';
import type { ListenerSet } from '../sockets/listener-set.js';
import { KILL_AFTER_ABORT_MS, WorkerProcess, spawnWorker, type Spawner } from './worker-process.js';

const MAX_BOOT_FAILURES = 5;
/** A worker that exits on its own sooner than this after starting failed to boot, really. */
const MIN_LIFETIME_MS = 2000;
/** A worker whose last heartbeat is older than this does not count as answering (watchdog). */
const UNRESPONSIVE_MS = 2000;

/** The configuration a generation of workers runs, as the pool needs it. */
export interface Generation {
  readonly config: ResolvedConfig;
  /** The settings sent to its workers (no hook functions). */
  readonly workerSettings: WorkerSettings;
}

/** A generation for `config`: what its workers are sent is the settings less the hook functions. */
export function generation(config: ResolvedConfig): Generation {
  const out: Record<string, unknown> = { ...config.settings };
  for (const spec of SETTINGS) if (spec.type === 'hook') delete out[spec.name];
  return { config, workerSettings: out as WorkerSettings };
}

export interface BootFailure {
  /** For the log: `Worker PID`, or `A worker` when it could not be started. */
  readonly who: string;
  readonly why: string;
  /** The application failed to load (exit 4), rather than the worker (exit 3). */
  readonly appLoad: boolean;
}

export interface PoolEvents {
  /** Every worker the current generation needs serves (once per generation). */
  generationReady(gen: number): void;
  /** A worker of the current generation failed to boot. */
  bootFailed(failure: BootFailure): void;
  /** Before a worker is started (the pre_fork hook). */
  preFork(age: number): Promise<void>;
  /** After a worker exited (the child_exit hook, metrics). */
  workerExited(pid: number, age: number, unexpected: boolean): void;
  /** A worker's last metrics, sent as it stops. */
  finalMetrics(data: MetricsSnapshot): void;
  /** Reuse-port sockets were closed because fewer workers need them. */
  slotsClosed(count: number): void;
}

export interface PoolOptions {
  readonly log: Logger;
  readonly listeners: ListenerSet;
  readonly events: PoolEvents;
  readonly spawn?: Spawner;
  /** Runs an asynchronous action nothing waits for (the arbiter stops on its unexpected errors). */
  readonly guard: (what: string, action: Promise<void>) => void;
}

export class WorkerPool {
  private readonly workers = new Map<number, WorkerProcess>();
  private targetCount: number;
  private gen = 0;
  /** The newest generation number given out (never reused, even when a reload is abandoned). */
  private lastGen = 0;
  private generation: Generation;
  private readyGen = -1;
  private age = 0;
  private bootFailures = 0;
  private nextSpawnAt = 0;
  /** Slots of workers being started (between manage() and their spawn). */
  private readonly pendingSlots = new Set<number>();
  /** Requests served by workers that have exited. */
  private pastRequests = 0;
  /** Set when the master stops: nothing more is started. */
  private closed = false;
  private readonly log: Logger;
  private readonly listeners: ListenerSet;
  private readonly events: PoolEvents;
  private readonly spawner: Spawner;
  private readonly guard: PoolOptions['guard'];

  constructor(first: Generation, opts: PoolOptions) {
    this.generation = first;
    this.targetCount = first.config.settings.workers;
    this.log = opts.log;
    this.listeners = opts.listeners;
    this.events = opts.events;
    this.spawner = opts.spawn ?? spawnWorker;
    this.guard = opts.guard;
  }

  get target(): number { return this.targetCount; }
  get size(): number { return this.workers.size; }
  get currentGeneration(): number { return this.gen; }
  /** The configuration of the current generation. */
  get inForce(): Generation { return this.generation; }

  /** Workers of the current generation that count towards the target. */
  private current(): WorkerProcess[] {
    return [...this.workers.values()].filter((w) => w.gen === this.gen && !w.retiring && w.state !== 'draining');
  }

  readyCount(): number {
    return this.current().filter((w) => w.state === 'ready').length;
  }

  /** Workers that serve now, of any generation (a reload's old ones until they drain): what /health counts. */
  servingCount(): number {
    let n = 0;
    for (const w of this.workers.values()) if (w.state === 'ready') n++;
    return n;
  }

  /** Requests served by all workers, present and past. */
  requests(): number {
    let n = this.pastRequests;
    for (const w of this.workers.values()) n += w.requests;
    return n;
  }

  /** Some worker sent a heartbeat lately (or there is none to ask). */
  answering(now: number = Date.now()): boolean {
    if (this.targetCount === 0 || this.workers.size === 0) return true;
    for (const w of this.workers.values()) if (now - w.lastBeat < UNRESPONSIVE_MS) return true;
    return false;
  }

  /** Every worker, oldest first, for `tsgunicorn status`. */
  list(): WorkerProcess[] {
    return [...this.workers.values()].sort((a, b) => a.age - b.age);
  }

  isRetiring(w: WorkerProcess): boolean {
    return w.retiring || w.gen !== this.gen;
  }

  setTarget(n: number): void {
    this.targetCount = n;
    this.manage();
  }

  /** Starts a new generation (HUP): its workers replace the current ones once they all serve. */
  startGeneration(next: Generation): number {
    this.generation = next;
    this.gen = ++this.lastGen;
    this.targetCount = next.config.settings.workers;
    this.manage();
    return this.gen;
  }

  /** Drops the current generation (a reload failed): back to `prev`, whose workers still serve. */
  abandonGeneration(prev: Generation, prevGen: number): void {
    for (const w of this.workers.values()) if (w.gen === this.gen) w.discard();
    this.generation = prev;
    this.gen = prevGen;
    this.targetCount = prev.config.settings.workers;
  }

  /**
   * A boot failure after the first boot: wait before the next start, doubling each time. False
   * when workers failed MAX_BOOT_FAILURES times in a row: the master should give up.
   */
  backOff(failure: BootFailure): boolean {
    this.bootFailures++;
    if (this.bootFailures >= MAX_BOOT_FAILURES) return false;
    const delay = Math.min(100 * 2 ** (this.bootFailures - 1), 3000);
    this.nextSpawnAt = Date.now() + delay;
    this.log.error(`${failure.who} failed to boot: ${failure.why}; retrying in ${delay} ms`);
    return true;
  }

  get failuresInARow(): number { return this.bootFailures; }

  /** Brings the workers to the target: starts, drains and retires, then closes spare slots. */
  manage(): void {
    if (this.closed) return;
    const current = this.current();
    const starting = current.length + this.pendingSlots.size;
    if (starting < this.targetCount && Date.now() >= this.nextSpawnAt) {
      for (let i = starting; i < this.targetCount; i++) this.guard('starting a worker', this.spawnOne());
    } else if (current.length > this.targetCount) {
      // The oldest go, as in Gunicorn; with a socket per worker, those in the highest slots, whose
      // sockets go with them.
      const order = this.listeners.perWorker ? (a: WorkerProcess, b: WorkerProcess) => b.slot - a.slot : (a: WorkerProcess, b: WorkerProcess) => a.age - b.age;
      for (const w of current.sort(order).slice(0, current.length - this.targetCount)) w.drain();
    }
    // Retire old generations and recycled workers once their replacements serve. A generation
    // serves once no older one takes new connections: after a reload (and systemd's READY=1),
    // every new connection gets the new configuration.
    if (this.readyCount() >= this.targetCount) {
      for (const w of this.workers.values()) if (this.isRetiring(w) && w.state !== 'draining') w.drain();
      const olderAccept = [...this.workers.values()].some((w) => w.gen !== this.gen && !w.closed);
      if (this.readyGen !== this.gen && this.targetCount > 0 && !olderAccept) {
        this.readyGen = this.gen;
        this.events.generationReady(this.gen);
      }
    }
    this.closeSpareSlots();
  }

  /** Kills workers past their deadlines; a worker that served a while ends a boot failure streak. */
  enforceDeadlines(now: number = Date.now()): void {
    if (this.bootFailures > 0 && [...this.workers.values()].some((w) => w.state === 'ready' && now - w.spawnedAt >= MIN_LIFETIME_MS)) {
      this.bootFailures = 0;
    }
    const s = this.generation.config.settings;
    for (const w of this.workers.values()) {
      const overdue = w.enforceDeadlines(now, s.timeout * 1000, s.graceful_timeout * 1000);
      if (overdue === 'boot timeout') this.log.critical(`Worker ${w.pid} did not boot within timeout (${s.timeout} s)`);
      else if (overdue === 'silent') this.log.critical(`WORKER TIMEOUT (pid:${w.pid})`);
    }
  }

  /** Tells every worker the master is in lame duck: responses are marked `Connection: close`. */
  lameDuckAll(): void {
    for (const w of this.workers.values()) w.lameDuck();
  }

  /** Sends every worker `sig` (USR1: reopen the logs; QUIT: stop now; KILL). */
  signalAll(sig: NodeJS.Signals): void {
    for (const w of this.workers.values()) w.signal(sig);
  }

  /**
   * Stops every worker (the master stops): TERM and up to graceful_timeout to drain, or QUIT and
   * `quickMs`; whoever is left is killed. Resolves when none is left (or they would not die).
   */
  async stopAll(graceful: boolean, quickMs: number): Promise<void> {
    this.closed = true;
    for (const w of this.workers.values()) {
      if (graceful) w.drain();
      else w.signal('SIGQUIT');
    }
    await this.waitEmpty(graceful ? this.generation.config.settings.graceful_timeout * 1000 + KILL_AFTER_ABORT_MS : quickMs);
    this.signalAll('SIGKILL');
    await this.waitEmpty(quickMs);
  }

  private waitEmpty(ms: number): Promise<void> {
    return new Promise((done) => {
      const deadline = Date.now() + ms;
      const check = (): void => {
        if (this.workers.size === 0 || Date.now() >= deadline) done();
        else setTimeout(check, 20);
      };
      check();
    });
  }

  /** Their metrics, from the workers that answer within `ms`. */
  async metrics(ms: number): Promise<MetricsSnapshot[]> {
    return (await Promise.all([...this.workers.values()].map((w) => w.metrics(ms)))).filter((x) => x !== null);
  }

  /**
   * With a socket per worker: closes the sockets of the slots that no worker (of any generation,
   * not draining) takes and no worker about to start will take.
   */
  private closeSpareSlots(): void {
    if (!this.listeners.perWorker) return;
    const taken = [...this.workers.values()].filter((w) => w.state !== 'draining').map((w) => w.slot);
    const keep = new Set([...taken, ...this.pendingSlots, ...this.freeSlots(this.targetCount - this.current().length - this.pendingSlots.size)]);
    const closed = this.listeners.closeSlotsExcept(keep);
    if (closed > 0) this.events.slotsClosed(closed);
  }

  /** The `n` lowest slots no current worker holds or is starting in: where new workers go. */
  private freeSlots(n: number): number[] {
    const used = new Set([...this.current().map((w) => w.slot), ...this.pendingSlots]);
    const out: number[] = [];
    for (let slot = 0; out.length < n; slot++) if (!used.has(slot)) out.push(slot);
    return out;
  }

  private async spawnOne(): Promise<void> {
    const slot = this.freeSlots(1)[0]!;
    const age = ++this.age;
    const gen = this.gen;
    const { config, workerSettings } = this.generation;
    this.pendingSlots.add(slot);
    let w: WorkerProcess;
    try {
      const fds = this.listeners.fdsFor(slot);
      await this.events.preFork(age);
      if (this.closed) return;
      const child = this.spawner({ settings: workerSettings, identity: config.identity, cwd: config.appDir, fds, listenerInodes: this.listeners.inodes(), age });
      w = new WorkerProcess(child, age, gen, slot);
    } catch (err) {
      // Not started at all (EPERM switching users, out of processes): a boot failure like any other.
      this.bootFailed(gen, { who: 'A worker', why: `it could not be started (${(err as Error).message})`, appLoad: false });
      return;
    } finally {
      this.pendingSlots.delete(slot);
    }
    this.workers.set(w.pid, w);
    this.log.debug(`Booting worker with pid: ${w.pid}`);
    w.onMessage((m) => this.onMessage(w, m));
    w.onExit((code, signal) => this.onExit(w, code, signal));
  }

  private bootFailed(gen: number, failure: BootFailure): void {
    if (gen === this.gen && !this.closed) this.events.bootFailed(failure);
  }

  private onMessage(w: WorkerProcess, m: WorkerMessage): void {
    switch (m.t) {
      case 'ready':
        if (!w.markReady()) break;
        this.log.info(`Booted worker with pid: ${w.pid}`);
        this.manage();
        break;
      case 'metrics':
        if (m.final) this.events.finalMetrics(m.data);
        break;
      case 'recycle':
        // Only once the first generation served (until then nothing is replaced, only retried).
        if (this.readyGen < 0 || this.closed || !w.retire()) break;
        this.log.info(`Worker ${w.pid} ${m.reason}: replacing it`);
        this.manage();
        break;
      case 'closed':
        this.manage();
        break;
      case 'hb':
        break;
    }
  }

  private onExit(w: WorkerProcess, code: number | null, signal: NodeJS.Signals | null): void {
    this.workers.delete(w.pid);
    this.pastRequests += w.requests;
    const how = signal ? `signal ${signal}` : `code ${code}`;
    let unexpected = false;
    if (this.closed) {
      this.log.debug(`Worker ${w.pid} exited (${how})`);
    } else if (w.state === 'draining') {
      this.log.info(`Worker exiting (pid: ${w.pid})`);
    } else if (w.state === 'booting' || (code !== null && Date.now() - w.spawnedAt < MIN_LIFETIME_MS)) {
      const appLoad = code === WORKER_EXIT.APP_LOAD_ERROR;
      this.bootFailed(w.gen, { who: `Worker ${w.pid}`, why: appLoad ? 'the application failed to load' : `it exited (${how})`, appLoad });
    } else {
      this.log.warning(`Worker ${w.pid} exited unexpectedly (${how}); starting a new one`);
      unexpected = true;
    }
    this.events.workerExited(w.pid, w.age, unexpected);
    this.manage();
  }
}
