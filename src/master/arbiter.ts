// The master (Gunicorn's arbiter): owns the listeners, starts and supervises workers, and reacts to
// signals. Signal handlers only enqueue; one loop drains the queue and dispatches by name, then
// kills late workers and brings the worker count to its target.

import { SETTINGS, type Settings, type WorkerSettings } from '../config/settings.js';
import { resolveConfig, type ResolvedConfig } from '../config/resolve-config.js';
import { EXIT, TsgunicornError } from '../core/errors.js';
import { runHook } from '../config/hooks.js';
import { WORKER_EXIT, type WorkerMessage } from '../ipc/protocol.js';
import type { Logger } from '../logging/logger.js';
import type { Pidfile } from './pidfile.js';
import { kernelMigratesQueued, type ListenerSet } from '../sockets/listener-set.js';
import { ServiceStatus, type MasterSnapshot } from '../systemd/service-status.js';
import { VERSION } from '../core/program.js';
import type { Identity } from '../config/identity.js';
import type { MasterSignal, SignalQueue } from './signal-queue.js';
import { ControlSocket, controlPath, rssBytes, type MasterStatus } from './control-socket.js';
import type { MasterMetrics } from './metrics-server.js';
import { prepareLogFiles } from './log-files.js';
import { NewMaster, type OldMaster } from './upgrade.js';
import { WorkerProcess } from './worker-process.js';

/** Where the master is; what a signal does depends on it (EFFECTS). */
export type Phase = 'booting' | 'running' | 'reloading' | 'upgrading' | 'handed off' | 'rolling back' | 'stopping';

/**
 * What each signal does in each phase, where it does not take effect at once: `later`, when the
 * operation under way ends (one pending of each; repeats coalesce, with a log line), or
 * `ignored`, with a log line saying why. TERM, INT and QUIT take effect at once in every phase.
 * docs/signals.md has this table for people.
 */
const EFFECTS: Record<Phase, Partial<Record<MasterSignal, 'later' | 'ignored'>>> = {
  booting: { SIGHUP: 'later', SIGUSR2: 'later', SIGWINCH: 'later' },
  running: {},
  reloading: { SIGHUP: 'later', SIGUSR2: 'later', SIGWINCH: 'later' },
  upgrading: { SIGHUP: 'later', SIGUSR2: 'later', SIGWINCH: 'later' },
  'handed off': { SIGUSR2: 'ignored' },
  'rolling back': { SIGHUP: 'later', SIGUSR2: 'later', SIGWINCH: 'later' },
  stopping: { SIGHUP: 'ignored', SIGUSR2: 'ignored', SIGTTIN: 'ignored', SIGTTOU: 'ignored', SIGWINCH: 'ignored' },
};

const signalName = (sig: MasterSignal): string => sig.slice(3);

const TICK_MS = 200;
const KILL_AFTER_ABORT_MS = 1000;
const MAX_BOOT_FAILURES = 5;
/** A worker that exits on its own sooner than this after starting failed to boot, really. */
const MIN_LIFETIME_MS = 2000;
const QUICK_STOP_MS = 2000;
/** A worker whose last heartbeat is older than this does not count as answering (watchdog). */
const UNRESPONSIVE_MS = 2000;

export interface ArbiterOptions {
  readonly argv: readonly string[];
  /** Where the process started: what relative paths in argv mean, for HUP and for a new master. */
  readonly startDir: string;
  readonly config: ResolvedConfig;
  readonly log: Logger;
  readonly listeners: ListenerSet;
  readonly pidfile: Pidfile | null;
  /** The signals since the process's first instruction (bin/tsgunicorn.js). */
  readonly signals: SignalQueue;
  /** Set when this master was started by another one's USR2. */
  readonly oldMaster: OldMaster | null;
}

interface Reload {
  readonly prevConfig: ResolvedConfig;
  readonly prevGen: number;
}

function workerSettings(s: Settings): WorkerSettings {
  const out: Record<string, unknown> = { ...s };
  for (const spec of SETTINGS) if (spec.type === 'hook') delete out[spec.name];
  return out as WorkerSettings;
}

export class Arbiter {
  private config: ResolvedConfig;
  private settings: Settings;
  private identity: Identity | null;
  private readonly log: Logger;
  private readonly listeners: ListenerSet;
  private readonly pidfile: Pidfile | null;
  private readonly workers = new Map<number, WorkerProcess>();
  private target: number;
  private gen = 0;
  private age = 0;
  /** Every initial worker has been ready once. */
  private booted = false;
  private stopping = false;
  /** From HUP until the new generation serves or the reload failed. */
  private reloading = false;
  /** What a reload falls back to, once the new settings are in force. */
  private reload: Reload | null = null;
  /** From USR2 until the new master took over or the upgrade failed. */
  private upgrading = false;
  /** A new master whose workers serve, until the old one has handed the unit over. */
  private takingOver = false;
  /** An upgrade failed (or a handed-off master was told HUP): until the new master has exited. */
  private rollingBack = false;
  /** HUP and USR2 to carry out once the operation under way ends. */
  private readonly pending = new Set<MasterSignal>();
  private bootFailures = 0;
  /** Said once: closing a reuse-port socket resets what is queued on it (tcp_migrate_req off). */
  private warnedResets = false;
  /** Slots of workers being started (between manageWorkers and their spawn). */
  private readonly pendingSlots = new Set<number>();
  private nextSpawnAt = 0;
  private readonly queue: MasterSignal[] = [];
  private tick: NodeJS.Timeout | undefined;
  private readonly status: ServiceStatus;
  /** Requests served by workers that have exited. */
  private pastRequests = 0;
  /** The new master started by USR2, while it runs. */
  private upgrade: NewMaster | null = null;
  /** A new master has become the unit's main process; this one is on its way out. */
  private handedOff = false;
  private readonly pidfilePath: string | null;
  private readonly control: ControlSocket | null;
  private readonly startedAt = Date.now();
  private metrics: MasterMetrics | null = null;
  private finish!: (code: number) => void;
  private readonly done = new Promise<number>((resolve) => { this.finish = resolve; });
  /** What hooks receive as `server`: the same shape in the master and in workers. */
  readonly server: { readonly pid: number; readonly settings: Settings; readonly log: Logger; readonly workers: number };

  constructor(private readonly opts: ArbiterOptions) {
    this.config = opts.config;
    this.settings = opts.config.settings;
    this.identity = opts.config.identity;
    this.log = opts.log;
    this.listeners = opts.listeners;
    this.pidfile = opts.pidfile;
    this.target = opts.config.settings.workers;
    this.pidfilePath = opts.pidfile?.file ?? null;
    this.control = this.pidfilePath ? new ControlSocket(controlPath(this.pidfilePath, process.pid), () => this.report()) : null;
    this.status = new ServiceStatus(opts.log, () => this.snapshot(), opts.oldMaster === null);
    const self = this;
    this.server = {
      pid: process.pid,
      get settings() { return self.settings; },
      get log() { return self.log; },
      get workers() { return self.target; },
    };
  }

  /** Runs until the master stops; resolves with the exit code. */
  async run(): Promise<number> {
    for (const sig of this.opts.signals.attach((sig) => this.enqueue(sig))) this.enqueue(sig);
    process.title = `tsgunicorn: master [${this.settings.proc_name}]`;
    // prom-client loads only where metrics are on (~11 MiB of memory with its dependencies).
    if (this.settings.metrics_bind !== null) {
      const { MasterMetrics } = await import('./metrics-server.js');
      this.metrics = new MasterMetrics({
        workerCount: () => this.workers.size,
        workerSnapshots: async (ms) => (await Promise.all([...this.workers.values()].map((w) => w.metrics(ms)))).filter((x) => x !== null),
      });
    }
    await this.hook('on_starting', this.server);
    this.log.info(`Starting tsgunicorn ${VERSION} (node ${process.version})`);
    this.log.info(`Listening at: ${this.listeners.describe().join(', ')} (${process.pid})`);
    this.log.info(`Using ${this.target} worker(s)`);
    this.status.start();
    await this.control?.listen().catch((err: Error) => this.log.warning(`control socket ${this.control!.path}: ${err.message}; \`tsgunicorn status\` will not reach this master`));
    // A new master started by USR2 takes the metrics address over once the old one hands off.
    if (!this.opts.oldMaster) await this.listenMetrics();
    this.tick = setInterval(() => this.loop(), TICK_MS);
    this.loop();
    return this.done;
  }

  private async hook(name: Parameters<typeof runHook>[1], ...args: unknown[]): Promise<void> {
    await runHook(this.settings, name, this.log, ...args);
  }

  private snapshot(): MasterSnapshot {
    const now = Date.now();
    let requests = this.pastRequests;
    let answering = false;
    for (const w of this.workers.values()) {
      requests += w.requests;
      if (now - w.lastBeat < UNRESPONSIVE_MS) answering = true;
    }
    return {
      phase: this.stopping ? 'stopping' : this.booted ? 'running' : 'booting',
      ready: this.current().filter((w) => w.state === 'ready').length,
      target: this.target,
      requests,
      healthy: answering || this.target === 0 || this.workers.size === 0,
    };
  }

  /** What `tsgunicorn status` shows. */
  private report(): MasterStatus {
    return {
      pid: process.pid,
      name: this.settings.proc_name,
      version: VERSION,
      node: process.version,
      startedAt: this.startedAt,
      phase: this.phase,
      target: this.target,
      listeners: this.listeners.describe(),
      workers: [...this.workers.values()].sort((a, b) => a.age - b.age).map((w) => ({
        pid: w.pid, age: w.age, startedAt: w.spawnedAt, requests: w.requests, rssBytes: rssBytes(w.pid),
        state: w.retiring || w.gen !== this.gen ? `${w.state} (retiring)` : w.state,
      })),
      upgradingTo: this.upgrade?.pid ?? null,
    };
  }

  private async listenMetrics(): Promise<void> {
    if (!this.metrics) return;
    const where = this.settings.metrics_bind!;
    await this.metrics.listen(this.config.metricsBind!).then(
      () => this.log.info(`Metrics at ${where}, path /metrics`),
      (err: Error) => this.log.error(`metrics_bind ${where}: ${err.message}; metrics are off`));
  }

  get phase(): Phase {
    if (this.stopping) return 'stopping';
    if (this.rollingBack) return 'rolling back';
    if (this.handedOff) return 'handed off';
    if (this.upgrading) return 'upgrading';
    if (!this.booted || this.takingOver) return 'booting';
    if (this.reloading) return 'reloading';
    return 'running';
  }

  private enqueue(sig: MasterSignal): void {
    this.queue.push(sig);
    this.wake();
  }

  /**
   * Runs the loop soon: a signal came, or a phase ended and something may be pending. Not before
   * run() has started the master (on_starting runs first): signals wait in the queue until then.
   */
  private wake(): void {
    if (this.tick) setImmediate(() => this.loop());
  }

  private loop(): void {
    // What waited for the phase that just ended goes first, before signals that came since.
    if (!this.stopping) this.runPending();
    for (let sig = this.queue.shift(); sig; sig = this.queue.shift()) this.dispatch(sig);
    if (this.stopping) return;
    this.murderWorkers();
    this.manageWorkers();
  }

  /** The one place that decides what a signal does now (EFFECTS). */
  private dispatch(sig: MasterSignal): void {
    const phase = this.phase;
    const effect = EFFECTS[phase][sig];
    const name = signalName(sig);
    if (effect === 'ignored') {
      this.log.warning(`${name} ignored: ${phase === 'stopping' ? 'the master is stopping' : `the new master (pid ${this.upgrade?.pid}) serves; send ${name} to it`}`);
    } else if (effect === 'later') {
      if (this.pending.has(sig)) this.log.info(`${name} while ${phase}: coalesced with the ${name} already pending`);
      else this.log.info(`${name} while ${phase}: carried out when that ends`);
      this.pending.add(sig);
    } else {
      this.handle(sig);
    }
  }

  /** Carries out the pending signals the phase now allows. */
  private runPending(): void {
    for (const sig of this.pending) {
      if (EFFECTS[this.phase][sig] !== undefined) continue;
      this.pending.delete(sig);
      this.log.info(`Carrying out the pending ${signalName(sig)}`);
      this.handle(sig);
    }
  }

  /**
   * A new master became the main process: a pending reload or upgrade is its business now. A
   * pending WINCH stays: it is meant for this master's workers.
   */
  private forwardPending(to: number): void {
    for (const sig of ['SIGHUP', 'SIGUSR2'] as const) {
      if (!this.pending.delete(sig)) continue;
      this.log.info(`Passing the pending ${signalName(sig)} on to the new master (pid ${to})`);
      try { process.kill(to, sig); } catch { /* it is gone: the rollback says so */ }
    }
  }

  private handle(sig: MasterSignal): void {
    switch (sig) {
      case 'SIGHUP': this.guard('reload', this.handleHup()); break;
      case 'SIGTERM': this.guard('stop', this.stop(true)); break;
      case 'SIGINT':
      case 'SIGQUIT': this.guard('stop', this.stop(false)); break;
      case 'SIGTTIN': this.setTarget(this.target + 1); break;
      case 'SIGTTOU': this.setTarget(Math.max(1, this.target - 1)); break;
      case 'SIGUSR1': this.handleUsr1(); break;
      case 'SIGUSR2': this.guard('upgrade', this.startUpgrade()); break;
      case 'SIGWINCH':
        this.log.info('WINCH: stopping all workers gracefully; the master stays (TTIN or HUP starts workers again)');
        this.setTarget(0);
        break;
    }
  }

  /** An action that failed in a way nobody planned for: log it and stop cleanly, never silently. */
  private guard(what: string, action: Promise<void>): void {
    action.catch((err: unknown) => {
      this.log.critical(`Unexpected error during ${what}: ${(err as Error)?.stack ?? String(err)}`);
      // A stop that failed would never finish: it starts again, quick; any other action stops.
      if (what === 'stop') this.stopping = false;
      void this.stop(false, EXIT.RUNTIME).catch(() => this.finish(EXIT.RUNTIME));
    });
  }

  private setTarget(n: number): void {
    if (this.stopping || n === this.target) return;
    const old = this.target;
    this.target = n;
    this.log.info(`Workers: ${old} -> ${n}`);
    void this.hook('nworkers_changed', this.server, n, old);
    this.manageWorkers();
  }

  private handleUsr1(): void {
    this.log.info('USR1: reopening log files');
    prepareLogFiles(this.settings, this.identity);
    this.log.reopen();
    for (const w of this.workers.values()) w.signal('SIGUSR1');
  }

  // ---- workers -------------------------------------------------------------------------------

  /** Workers of the current generation that count towards the target. */
  private current(): WorkerProcess[] {
    return [...this.workers.values()].filter((w) => w.gen === this.gen && !w.retiring && w.state !== 'draining');
  }

  private manageWorkers(): void {
    if (this.stopping) return;
    const current = this.current();
    const starting = current.length + this.pendingSlots.size;
    if (starting < this.target && Date.now() >= this.nextSpawnAt) {
      for (let i = starting; i < this.target; i++) void this.spawnWorker();
    } else if (current.length > this.target) {
      // The oldest go, as in Gunicorn; with a socket per worker, those in the highest slots, whose
      // sockets go with them.
      const order = this.listeners.perWorker ? (a: WorkerProcess, b: WorkerProcess) => b.slot - a.slot : (a: WorkerProcess, b: WorkerProcess) => a.age - b.age;
      for (const w of current.sort(order).slice(0, current.length - this.target)) w.drain();
    }
    // Retire old generations and recycled workers once their replacements serve.
    const ready = this.current().filter((w) => w.state === 'ready').length;
    if (ready >= this.target) {
      for (const w of this.workers.values()) if ((w.gen !== this.gen || w.retiring) && w.state !== 'draining') w.drain();
      if (this.reload) this.finishReload();
    }
    this.closeSpareSlots();
  }

  /**
   * With a socket per worker: closes the sockets of the slots that no worker (of any generation,
   * not draining) takes and no worker about to start will take.
   */
  private closeSpareSlots(): void {
    if (!this.listeners.perWorker) return;
    const taken = [...this.workers.values()].filter((w) => w.state !== 'draining').map((w) => w.slot);
    const keep = new Set([...taken, ...this.pendingSlots, ...this.freeSlots(this.target - this.current().length - this.pendingSlots.size)]);
    const closed = this.listeners.closeSlotsExcept(keep);
    // Only a master that holds its sockets alone resets anything by closing them (not while a
    // new master shares them after USR2, nor a new one that took over more slots than it needs).
    if (closed > 0 && this.phase === 'running' && !this.warnedResets && !kernelMigratesQueued()) {
      this.warnedResets = true;
      this.log.warning('reuse_port: fewer workers, so their sockets close, and the kernel resets connections still queued on them: '
        + 'set net.ipv4.tcp_migrate_req = 1 (sysctl.d) to have it hand them to the other workers instead');
    }
  }

  /** The `n` lowest slots no current worker holds or is starting in: where new workers go. */
  private freeSlots(n: number): number[] {
    const used = new Set([...this.current().map((w) => w.slot), ...this.pendingSlots]);
    const out: number[] = [];
    for (let slot = 0; out.length < n; slot++) if (!used.has(slot)) out.push(slot);
    return out;
  }

  private async spawnWorker(): Promise<void> {
    const slot = this.freeSlots(1)[0]!;
    const age = ++this.age;
    this.pendingSlots.add(slot);
    let w: WorkerProcess;
    const gen = this.gen;
    try {
      const fds = this.listeners.fdsFor(slot);
      await this.hook('pre_fork', this.server, { age });
      if (this.stopping) return;
      w = WorkerProcess.spawn({ settings: workerSettings(this.settings), identity: this.identity, fds, listenerInodes: this.listeners.inodes(), age, gen, slot });
    } catch (err) {
      // Not started at all (EPERM switching users, out of processes): a boot failure like any other.
      this.onBootFailure(gen, 'A worker', `it could not be started (${(err as Error).message})`, false);
      return;
    } finally {
      this.pendingSlots.delete(slot);
    }
    this.workers.set(w.pid, w);
    this.log.debug(`Booting worker with pid: ${w.pid}`);
    w.onMessage((m) => this.onWorkerMessage(w, m));
    w.child.once('exit', (code, signal) => this.onWorkerExit(w, code, signal));
  }

  private onWorkerMessage(w: WorkerProcess, m: WorkerMessage): void {
    w.lastBeat = Date.now();
    switch (m.t) {
      case 'hb':
        w.requests = m.requests;
        break;
      case 'ready':
        if (w.state !== 'booting') break;
        w.state = 'ready';
        this.log.info(`Booted worker with pid: ${w.pid}`);
        if (!this.booted && this.current().filter((x) => x.state === 'ready').length >= this.target) {
          this.booted = true;
          this.log.info(`Ready: ${this.target} worker(s) serving on ${this.listeners.describe().join(', ')}`);
          if (this.opts.oldMaster) this.guard('takeover', this.takeOverFrom(this.opts.oldMaster));
          else this.status.ready();
          void this.hook('when_ready', this.server);
        }
        this.manageWorkers();
        break;
      case 'metrics':
        if (m.final) void this.metrics?.retire(m.data);
        break;
      case 'recycle':
        if (!this.booted || this.stopping || w.state !== 'ready') break;
        this.log.info(`Worker ${w.pid} ${m.reason}: replacing it`);
        w.retiring = true;
        this.manageWorkers();
        break;
    }
  }

  private onWorkerExit(w: WorkerProcess, code: number | null, signal: NodeJS.Signals | null): void {
    this.workers.delete(w.pid);
    this.pastRequests += w.requests;
    void this.hook('child_exit', this.server, { pid: w.pid, age: w.age });
    const how = signal ? `signal ${signal}` : `code ${code}`;
    if (this.stopping) {
      this.log.debug(`Worker ${w.pid} exited (${how})`);
      return;
    }
    if (w.state === 'draining') {
      this.log.info(`Worker exiting (pid: ${w.pid})`);
    } else if (w.state === 'booting' || (code !== null && Date.now() - w.spawnedAt < MIN_LIFETIME_MS)) {
      const appLoad = code === WORKER_EXIT.APP_LOAD_ERROR;
      this.onBootFailure(w.gen, `Worker ${w.pid}`, appLoad ? 'the application failed to load' : `it exited (${how})`, appLoad);
    } else {
      this.log.warning(`Worker ${w.pid} exited unexpectedly (${how}); starting a new one`);
      this.metrics?.restarts.inc();
    }
    this.manageWorkers();
  }

  /** A worker of generation `gen` failed to boot: `who` (for the log), `why`. */
  private onBootFailure(gen: number, who: string, why: string, appLoad: boolean): void {
    if (this.reload && gen === this.gen) {
      this.abortReload(`a new worker failed to boot: ${why}`);
      return;
    }
    if (gen !== this.gen) return;
    if (!this.booted) {
      this.halt(appLoad ? 'App failed to load.' : `Worker failed to boot: ${why}.`, appLoad ? EXIT.APP_LOAD : EXIT.WORKER_BOOT);
      return;
    }
    this.bootFailures++;
    if (this.bootFailures >= MAX_BOOT_FAILURES) {
      this.halt(`Workers failed to boot ${this.bootFailures} times in a row (${why}).`, appLoad ? EXIT.APP_LOAD : EXIT.WORKER_BOOT);
      return;
    }
    const delay = Math.min(100 * 2 ** (this.bootFailures - 1), 3000);
    this.nextSpawnAt = Date.now() + delay;
    this.log.error(`${who} failed to boot: ${why}; retrying in ${delay} ms`);
  }

  /** Kills workers that missed their heartbeat for `timeout` (SIGABRT, then SIGKILL). */
  private murderWorkers(): void {
    const now = Date.now();
    if (this.bootFailures > 0 && [...this.workers.values()].some((w) => w.state === 'ready' && now - w.spawnedAt >= MIN_LIFETIME_MS)) {
      this.bootFailures = 0;
    }
    const timeoutMs = this.settings.timeout * 1000;
    const graceMs = this.settings.graceful_timeout * 1000;
    for (const w of this.workers.values()) {
      if (w.abortedAt > 0) {
        if (now - w.abortedAt >= KILL_AFTER_ABORT_MS) w.signal('SIGKILL');
      } else if (w.state === 'booting' && now - w.spawnedAt > timeoutMs) {
        this.log.critical(`Worker ${w.pid} did not boot within timeout (${this.settings.timeout} s)`);
        w.abortedAt = now;
        w.signal('SIGKILL');
      } else if (now - w.lastBeat > timeoutMs) {
        this.log.critical(`WORKER TIMEOUT (pid:${w.pid})`);
        w.abortedAt = now;
        w.signal('SIGABRT');
      } else if (w.state === 'draining' && now - w.drainStartedAt > graceMs + KILL_AFTER_ABORT_MS) {
        w.signal('SIGKILL');
      }
    }
  }

  // ---- reload (HUP) --------------------------------------------------------------------------

  private async handleHup(): Promise<void> {
    if (this.handedOff) {
      this.log.info(`HUP: rolling back: starting workers again; stop the new master (pid ${this.upgrade?.pid}) with QUIT or TERM`);
      this.rollingBack = true;
      this.setTarget(this.settings.workers);
      return;
    }
    this.log.info('Handling signal: hup');
    this.reloading = true;
    this.status.reloading();
    let config: ResolvedConfig;
    try {
      config = await resolveConfig(this.opts.argv, process.env, this.opts.startDir);
    } catch (err) {
      this.reloading = false;
      this.wake();
      if (!(err instanceof TsgunicornError)) throw err;
      this.log.error(`Reload failed, keeping the running configuration: ${err.message}`);
      this.status.reloadFailed(err.message);
      return;
    }
    if (this.stopping) return;
    const next = config.settings;
    const identity = config.identity;
    if (next.bind.join(' ') !== this.settings.bind.join(' ') || next.reuse_port !== this.settings.reuse_port) {
      this.log.warning('bind and reuse_port changes take effect at the next restart; keeping the current sockets');
    }
    await this.hook('on_reload', this.server);
    this.reload = { prevConfig: this.config, prevGen: this.gen };
    this.config = config;
    process.chdir(config.appDir);
    this.settings = next;
    this.identity = identity;
    prepareLogFiles(next, identity);
    this.log.reconfigure({ errorlog: next.errorlog, loglevel: next.loglevel });
    this.gen++;
    if (next.workers !== this.target) void this.hook('nworkers_changed', this.server, next.workers, this.target);
    this.target = next.workers;
    this.manageWorkers();
  }

  private finishReload(): void {
    this.reload = null;
    this.reloading = false;
    this.log.info(`Reloaded: ${this.target} new worker(s) serving`);
    this.metrics?.reloads.inc();
    this.status.reloaded();
    this.wake();
  }

  private abortReload(why: string): void {
    const prev = this.reload!;
    this.reload = null;
    this.reloading = false;
    for (const w of this.workers.values()) if (w.gen === this.gen) { w.state = 'draining'; w.signal('SIGKILL'); }
    this.gen = prev.prevGen;
    this.config = prev.prevConfig;
    process.chdir(this.config.appDir);
    this.settings = this.config.settings;
    this.identity = this.config.identity;
    this.log.reconfigure({ errorlog: this.settings.errorlog, loglevel: this.settings.loglevel });
    this.target = this.settings.workers;
    this.log.error(`Reload failed (${why}); the previous workers keep serving`);
    this.status.reloadFailed(why);
    this.wake();
  }

  // ---- upgrade on the fly (USR2) --------------------------------------------------------------

  private async startUpgrade(): Promise<void> {
    this.log.info('Handling signal: usr2: starting a new master from the program on disk');
    this.upgrading = true;
    if (this.pidfile && this.pidfilePath) {
      try { this.pidfile.rename(`${this.pidfilePath}.oldbin`); } catch (err) { this.log.warning(`pidfile: ${(err as Error).message}`); }
    }
    await this.hook('pre_exec', this.server);
    if (this.stopping) return;
    try {
      this.upgrade = NewMaster.start(this.opts.argv, this.opts.startDir, this.listeners.handover(), this.settings.upgrade_timeout * 1000, {
        onTakeover: () => this.handOff(),
        onFailure: (why) => this.upgradeFailed(why),
        onExit: () => this.newMasterExited(),
      });
    } catch (err) {
      this.upgradeFailed((err as Error).message);
      return;
    }
    this.log.info(`Started new master (pid ${this.upgrade.pid})`);
  }

  private handOff(): void {
    const next = this.upgrade!;
    this.status.handOff();
    this.upgrading = false;
    this.handedOff = true;
    this.metrics?.upgrades.inc();
    this.metrics?.close();
    next.handOff();
    this.forwardPending(next.pid);
    if (this.settings.upgrade_handoff === 'auto') {
      this.log.info(`New master (pid ${next.pid}) is serving: stopping this old master`);
      // The new master holds the sockets it serves. A reuse-port socket it has no worker for then
      // goes as soon as this master's worker on it stops listening, not after every worker here
      // has drained: meanwhile it would take its share of the reconnecting clients, for nobody.
      this.listeners.close(false);
      this.guard('stop', this.stop(true));
    } else {
      this.log.info(`New master (pid ${next.pid}) is serving; upgrade_handoff = manual: this master stays until WINCH (stop its workers), QUIT/TERM (exit) or HUP (roll back)`);
    }
  }

  private restorePidfile(): void {
    if (!this.pidfile || !this.pidfilePath || this.pidfile.file === this.pidfilePath) return;
    try { this.pidfile.rename(this.pidfilePath); } catch (err) { this.log.warning(`pidfile: ${(err as Error).message}`); }
  }

  private upgradeFailed(why: string): void {
    this.upgrading = false;
    // Until the new master has exited (NewMaster stops it), nothing else starts.
    this.rollingBack = this.upgrade !== null;
    this.restorePidfile();
    this.wake();
    if (this.stopping) return;
    this.log.error(`Upgrade failed: ${why}; this master keeps serving`);
    this.status.upgradeFailed(why);
  }

  private newMasterExited(): void {
    const pid = this.upgrade?.pid;
    this.upgrade = null;
    this.rollingBack = false;
    this.wake();
    if (!this.handedOff || this.stopping) return;
    // Manual handoff, and the new master is gone: this master is the main process again.
    this.handedOff = false;
    this.restorePidfile();
    this.status.takeOver();
    if (this.target === 0) this.setTarget(this.settings.workers);
    this.log.warning(`New master (pid ${pid}) exited: this master is the main process again`);
  }

  /** A new master started by USR2: ask the old one to step back, then speak for the unit. */
  private async takeOverFrom(old: OldMaster): Promise<void> {
    this.takingOver = true;
    await old.takeOver();
    this.takingOver = false;
    this.wake();
    this.status.takeOver();
    await this.listenMetrics();
    this.log.info(`Upgrade complete: this master (pid ${process.pid}) took over from pid ${old.pid}`);
  }

  // ---- stopping ------------------------------------------------------------------------------

  private waitForWorkers(ms: number): Promise<void> {
    return new Promise((done) => {
      const deadline = Date.now() + ms;
      const check = (): void => {
        if (this.workers.size === 0 || Date.now() >= deadline) done();
        else setTimeout(check, 20);
      };
      check();
    });
  }

  private async stop(graceful: boolean, code: number = EXIT.OK): Promise<void> {
    if (this.stopping) {
      if (graceful) {
        this.log.info('TERM: already stopping');
      } else {
        this.log.info('Quick stop: the workers still draining stop now');
        for (const w of this.workers.values()) w.signal('SIGQUIT');
      }
      return;
    }
    for (const sig of this.pending) this.log.warning(`The pending ${signalName(sig)} is not carried out: the master is stopping`);
    this.pending.clear();
    const unfinished = this.upgrade && !this.handedOff ? this.upgrade : null;
    if (unfinished) {
      this.log.info(`Stopping the new master (pid ${unfinished.pid}) of the unfinished upgrade`);
      unfinished.stop();
      this.restorePidfile();
    }
    this.stopping = true;
    clearInterval(this.tick);
    this.status.stopping();
    this.log.info(this.handedOff ? 'Handing over: stopping this master\'s workers gracefully' : graceful ? 'Graceful stop' : 'Quick stop');
    for (const w of this.workers.values()) {
      if (graceful) w.drain();
      else w.signal('SIGQUIT');
    }
    await this.waitForWorkers(graceful ? this.settings.graceful_timeout * 1000 + KILL_AFTER_ABORT_MS : QUICK_STOP_MS);
    for (const w of this.workers.values()) w.signal('SIGKILL');
    await this.waitForWorkers(QUICK_STOP_MS);
    // A unix socket's path goes with the last master that serves on it (never at a handoff): that
    // is this one, once the new master of an unfinished upgrade is gone too.
    await unfinished?.exited;
    this.listeners.close(true);
    this.control?.close();
    this.metrics?.close();
    this.pidfile?.unlink();
    await this.hook('on_exit', this.server);
    this.log.info('Shutting down: Master');
    this.status.stop();
    this.finish(code);
  }

  /** Stops because of an unrecoverable worker failure (exit 3 or 4). */
  private halt(reason: string, code: number): void {
    this.log.error(`${reason} Shutting down (exit ${code}).`);
    this.guard('stop', this.stop(false, code));
  }
}
