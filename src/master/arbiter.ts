// The master (Gunicorn's arbiter). Signal handlers only enqueue; one loop drains the queue and
// dispatches by name (handleHup, handleUsr2, ...), then enforces the workers' deadlines and brings
// their number to the target. The workers themselves are the pool's (worker-pool.ts), the USR2
// protocol is upgrade.ts's; the arbiter keeps the phase, reload as "start a generation, retire the
// old one", and stopping. docs/architecture.md walks a HUP and a USR2 through these modules.

import type { ResolvedConfig } from '../config/resolve-config.js';
import { resolveConfig } from '../config/resolve-config.js';
import type { HookName, Settings } from '../config/settings.js';
import { runHook } from '../config/hooks.js';
import { EXIT, TsgunicornError } from '../core/errors.js';
import { VERSION } from '../core/program.js';
import type { Logger } from '../logging/logger.js';
import { kernelMigratesQueued, type ListenerSet } from '../sockets/listener-set.js';
import { ServiceStatus, type MasterSnapshot } from '../systemd/service-status.js';
import { ControlSocket, controlPath, rssBytes, type MasterStatus } from './control-socket.js';
import { prepareLogFiles } from './log-files.js';
import { OnDisk, appEntry, type AppWatch } from './on-disk.js';
import { LameDuck } from './lame-duck.js';
import { healthOf } from './health.js';
import type { MasterMetrics } from './metrics-server.js';
import type { Pidfile } from './pidfile.js';
import { EFFECTS, signalName, type Phase } from './phases.js';
import type { MasterSignal } from './signal-queue.js';
import { Upgrade, takeOverFrom, type OldMaster } from './upgrade.js';
import { WorkerPool, generation, type BootFailure, type Generation } from './worker-pool.js';
import type { Spawner } from './worker-process.js';

const TICK_MS = 200;
const QUICK_STOP_MS = 2000;

/** The signals since the process's first instruction: signal-queue.ts, or a test's own. */
export interface SignalSource {
  /** Hands over the signals received so far; every later one goes to `consumer`. */
  attach(consumer: (sig: MasterSignal) => void): MasterSignal[];
}

export interface ArbiterOptions {
  readonly argv: readonly string[];
  /** Where the process started: what relative paths in argv mean, for HUP and for a new master. */
  readonly startDir: string;
  readonly config: ResolvedConfig;
  readonly log: Logger;
  readonly listeners: ListenerSet;
  readonly pidfile: Pidfile | null;
  readonly signals: SignalSource;
  /** Set when this master was started by another one's USR2. */
  readonly oldMaster: OldMaster | null;
  /** How a HUP reads the configuration again (tests inject faults here). */
  readonly resolve?: typeof resolveConfig;
  /** How workers are started (tests use stand-in processes). */
  readonly spawn?: Spawner;
}

export class Arbiter {
  private config: ResolvedConfig;
  private readonly log: Logger;
  private readonly listeners: ListenerSet;
  private readonly pool: WorkerPool;
  private readonly upgrade: Upgrade;
  private readonly status: ServiceStatus;
  private readonly control: ControlSocket | null;
  private metrics: MasterMetrics | null = null;
  /** Every initial worker has been ready once. */
  private booted = false;
  private stopping = false;
  private readonly lameDuck: LameDuck;
  /** From HUP until the new generation serves or the reload failed. */
  private reloading = false;
  /** What a reload falls back to, once the new configuration is in force. */
  private reload: { readonly prev: Generation; readonly prevGen: number; readonly prevApp: AppWatch } | null = null;
  /** A new master whose workers serve, until the old one has handed the unit over. */
  private takingOver = false;
  /** HUP and USR2 to carry out once the operation under way ends. */
  private readonly pending = new Set<MasterSignal>();
  private readonly queue: MasterSignal[] = [];
  private tick: NodeJS.Timeout | undefined;
  private readonly onDisk: OnDisk;
  /** Said once: closing a reuse-port socket resets what is queued on it (tcp_migrate_req off). */
  private warnedResets = false;
  private readonly startedAt = Date.now();
  private finish!: (code: number) => void;
  private readonly done = new Promise<number>((resolve) => { this.finish = resolve; });
  /** What hooks receive as `server`: the same shape in the master and in workers. */
  readonly server: { readonly pid: number; readonly settings: Settings; readonly log: Logger; readonly workers: number };

  constructor(private readonly opts: ArbiterOptions) {
    this.config = opts.config;
    this.log = opts.log;
    this.listeners = opts.listeners;
    this.lameDuck = new LameDuck(opts.log);
    const pidfilePath = opts.pidfile?.file ?? null;
    this.control = pidfilePath ? new ControlSocket(controlPath(pidfilePath, process.pid), () => this.report()) : null;
    this.status = new ServiceStatus(opts.log, () => this.snapshot(), opts.oldMaster === null);
    opts.oldMaster?.mayTakeOver(this.status);
    this.onDisk = new OnDisk(opts.log, (notes) => this.status.setPending(notes));
    this.pool = new WorkerPool(generation(opts.config), {
      log: opts.log,
      listeners: opts.listeners,
      spawn: opts.spawn,
      guard: (what, action) => this.guard(what, action),
      events: {
        generationReady: () => this.generationReady(),
        bootFailed: (f) => this.bootFailed(f),
        preFork: (age) => this.hook('pre_fork', this.server, { age }),
        workerExited: (pid, age, unexpected) => {
          if (unexpected) this.metrics?.restarts.inc();
          this.fireHook('child_exit', this.server, { pid, age });
        },
        finalMetrics: (data) => this.guard('metrics', this.metrics?.retire(data) ?? Promise.resolve()),
        slotsClosed: () => this.warnResets(),
      },
    });
    this.upgrade = new Upgrade({
      log: opts.log,
      pidfile: opts.pidfile,
      status: this.status,
      argv: opts.argv,
      startDir: opts.startDir,
      handover: () => this.listeners.handover(),
      timeoutMs: () => this.settings.upgrade_timeout * 1000,
      preExec: () => this.hook('pre_exec', this.server),
      stopping: () => this.stopping,
      changed: () => this.wake(),
      handedOff: (pid) => this.handedOff(pid),
      mainAgain: () => { if (this.pool.target === 0) this.setTarget(this.settings.workers); },
    });
    const self = this;
    this.server = {
      pid: process.pid,
      get settings() { return self.settings; },
      get log() { return self.log; },
      get workers() { return self.pool.target; },
    };
  }

  private get settings(): Settings { return this.config.settings; }

  /** Runs until the master stops; resolves with the exit code. */
  async run(): Promise<number> {
    for (const sig of this.opts.signals.attach((sig) => this.enqueue(sig))) this.enqueue(sig);
    process.title = `tsgunicorn: master [${this.settings.proc_name}]`;
    // prom-client loads only where metrics are on (~11 MiB of memory with its dependencies).
    if (this.config.metricsBind !== null) {
      const { MasterMetrics } = await import('./metrics-server.js');
      this.metrics = new MasterMetrics({ workerCount: () => this.pool.size, workerSnapshots: (ms) => this.pool.metrics(ms), pending: () => this.onDisk.pending,
        health: () => healthOf(this.snapshot(), this.pool.servingCount(), this.settings.health_min_workers) });
    }
    await this.hook('on_starting', this.server);
    this.log.info(`Starting tsgunicorn ${VERSION} (node ${process.version})`);
    this.log.info(`Listening at: ${this.listeners.describe().join(', ')} (${process.pid})`);
    this.log.info(`Using ${this.pool.target} worker(s)`);
    this.status.start();
    await this.control?.listen().catch((err: Error) => this.log.warning(`control socket ${this.control!.path}: ${err.message}; \`tsgunicorn status\` will not reach this master`));
    // A new master started by USR2 takes the metrics address over once the old one hands off.
    if (!this.opts.oldMaster) await this.listenMetrics();
    this.onDisk.watchApp(appEntry(this.config.appDir, this.config.app.path));
    this.onDisk.start();
    this.tick = setInterval(() => this.loop(), TICK_MS);
    this.loop();
    return this.done;
  }

  private hook(name: HookName, ...args: unknown[]): Promise<void> {
    return runHook(this.settings, name, this.log, ...args);
  }

  /** A hook nothing waits for (its errors are logged by runHook; anything else stops the master). */
  private fireHook(name: HookName, ...args: unknown[]): void {
    this.guard(name, this.hook(name, ...args));
  }

  /** Runs an asynchronous action nothing waits for: an unexpected error in it stops the master. */
  private guard(what: string, action: Promise<void>): void {
    action.catch((err: unknown) => this.failed(what, err));
  }

  /**
   * Something failed in a way nobody planned for (a guarded action, or an exception no handler
   * caught: start.ts routes those here): log it and stop cleanly, never silently.
   */
  failed(what: string, err: unknown): void {
    this.log.critical(`Unexpected error during ${what}: ${(err as Error)?.stack ?? String(err)}`);
    // A stop that failed would never finish: it starts again, quick; any other action stops.
    if (what === 'stop') this.stopping = false;
    this.stop(false, EXIT.RUNTIME).catch(() => this.finish(EXIT.RUNTIME));
  }

  private snapshot(): MasterSnapshot {
    return {
      phase: this.stopping ? (this.lameDuck.active ? 'lame duck' : 'stopping') : this.booted ? 'running' : 'booting',
      ready: this.pool.readyCount(),
      target: this.pool.target,
      requests: this.pool.requests(),
      healthy: this.pool.answering(),
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
      target: this.pool.target,
      listeners: this.listeners.describe(),
      workers: this.pool.list().map((w) => ({
        pid: w.pid, age: w.age, startedAt: w.spawnedAt, requests: w.requests, rssBytes: rssBytes(w.pid),
        state: this.pool.isRetiring(w) ? `${w.state} (retiring)` : w.state,
      })),
      upgradingTo: this.upgrade.pid,
      pending: this.onDisk.pending.map((p) => p.note),
    };
  }

  private async listenMetrics(): Promise<void> {
    if (!this.metrics) return;
    const where = this.settings.metrics_bind;
    await this.metrics.listen(this.config.metricsBind!, this.opts.oldMaster !== null).then(
      () => this.log.info(`Metrics at ${where}, path /metrics`),
      (err: Error) => this.log.error(`metrics_bind ${where}: ${err.message}; metrics are off`));
  }

  get phase(): Phase {
    if (this.stopping) return 'stopping';
    const upgrade = this.upgrade.state;
    if (upgrade !== 'idle') return upgrade;
    if (!this.booted || this.takingOver) return 'booting';
    return this.reloading ? 'reloading' : 'running';
  }

  // ---- signals -------------------------------------------------------------------------------

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
    this.pool.enforceDeadlines();
    this.pool.manage();
  }

  /** The one place that decides what a signal does now (EFFECTS). */
  private dispatch(sig: MasterSignal): void {
    const phase = this.phase;
    const effect = EFFECTS[phase][sig];
    const name = signalName(sig);
    if (effect === 'ignored') {
      this.log.warning(`${name} ignored: ${phase === 'stopping' ? 'the master is stopping' : `the new master (pid ${this.upgrade.pid}) serves; send ${name} to it`}`);
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

  private handle(sig: MasterSignal): void {
    switch (sig) {
      case 'SIGHUP': this.guard('reload', this.handleHup()); break;
      case 'SIGTERM': this.guard('stop', this.stop(true, EXIT.OK, true)); break;
      case 'SIGINT':
      case 'SIGQUIT': this.guard('stop', this.stop(false)); break;
      case 'SIGTTIN': this.setTarget(this.pool.target + 1); break;
      case 'SIGTTOU': this.setTarget(Math.max(1, this.pool.target - 1)); break;
      case 'SIGUSR1': this.handleUsr1(); break;
      case 'SIGUSR2': this.guard('upgrade', this.upgrade.start()); break;
      case 'SIGWINCH':
        this.log.info('WINCH: stopping all workers gracefully; the master stays (TTIN or HUP starts workers again)');
        this.setTarget(0);
        break;
    }
  }

  private setTarget(n: number): void {
    const old = this.pool.target;
    if (this.stopping || n === old) return;
    this.log.info(`Workers: ${old} -> ${n}`);
    this.fireHook('nworkers_changed', this.server, n, old);
    this.pool.setTarget(n);
  }

  private handleUsr1(): void {
    this.log.info('USR1: reopening log files');
    prepareLogFiles(this.settings, this.config.identity);
    this.log.reopen();
    this.pool.signalAll('SIGUSR1');
  }

  // ---- workers -------------------------------------------------------------------------------

  /** Every worker of the current generation serves: the first boot is done, or a reload. */
  private generationReady(): void {
    if (this.booted) {
      if (this.reload) this.finishReload();
      return;
    }
    this.booted = true;
    this.log.info(`Ready: ${this.pool.target} worker(s) serving on ${this.listeners.describe().join(', ')}`);
    if (this.opts.oldMaster) this.guard('takeover', this.takeOver(this.opts.oldMaster));
    else this.status.ready();
    this.fireHook('when_ready', this.server);
  }

  private bootFailed(f: BootFailure): void {
    if (this.reload) {
      this.abortReload(`a new worker failed to boot: ${f.why}`);
    } else if (!this.booted) {
      this.halt(f.appLoad ? 'App failed to load.' : `Worker failed to boot: ${f.why}.`, f.appLoad ? EXIT.APP_LOAD : EXIT.WORKER_BOOT);
    } else if (!this.pool.backOff(f)) {
      this.halt(`Workers failed to boot ${this.pool.failuresInARow} times in a row (${f.why}).`, f.appLoad ? EXIT.APP_LOAD : EXIT.WORKER_BOOT);
    }
  }

  /** Only a master that holds its sockets alone resets anything by closing them. */
  private warnResets(): void {
    if (this.phase !== 'running' || this.warnedResets || kernelMigratesQueued()) return;
    this.warnedResets = true;
    this.log.warning('reuse_port: fewer workers, so their sockets close, and the kernel resets connections still queued on them: '
      + 'set net.ipv4.tcp_migrate_req = 1 (sysctl.d) to have it hand them to the other workers instead');
  }

  // ---- reload (HUP) --------------------------------------------------------------------------

  private async handleHup(): Promise<void> {
    if (this.upgrade.state === 'handed off') {
      this.upgrade.rollBack();
      this.setTarget(this.settings.workers);
      return;
    }
    this.log.info('Handling signal: hup');
    this.reloading = true;
    this.status.reloading();
    let config: ResolvedConfig;
    try {
      config = await (this.opts.resolve ?? resolveConfig)(this.opts.argv, process.env, this.opts.startDir);
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
    if (next.bind.join(' ') !== this.settings.bind.join(' ') || next.reuse_port !== this.settings.reuse_port) {
      this.log.warning('bind and reuse_port changes take effect at the next restart; keeping the current sockets');
    }
    await this.hook('on_reload', this.server);
    const prevTarget = this.pool.target;
    const prevApp = this.onDisk.watchApp(appEntry(config.appDir, config.app.path));
    this.reload = { prev: this.pool.inForce, prevGen: this.pool.currentGeneration, prevApp };
    this.apply(config);
    if (next.workers !== prevTarget) this.fireHook('nworkers_changed', this.server, next.workers, prevTarget);
    this.pool.startGeneration(generation(config));
  }

  /** Puts a configuration in force in the master: the app's directory, the log. */
  private apply(config: ResolvedConfig): void {
    this.config = config;
    process.chdir(config.appDir);
    prepareLogFiles(config.settings, config.identity);
    this.log.reconfigure({ errorlog: config.settings.errorlog, loglevel: config.settings.loglevel });
  }

  private finishReload(): void {
    this.reload = null;
    this.reloading = false;
    this.log.info(`Reloaded: ${this.pool.target} new worker(s) serving`);
    this.metrics?.reloads.inc();
    this.status.reloaded();
    this.onDisk.refresh();
    this.wake();
  }

  private abortReload(why: string): void {
    const { prev, prevGen, prevApp } = this.reload!;
    this.onDisk.restoreApp(prevApp);
    this.reload = null;
    this.reloading = false;
    this.pool.abandonGeneration(prev, prevGen);
    this.apply(prev.config);
    this.log.error(`Reload failed (${why}); the previous workers keep serving`);
    this.status.reloadFailed(why);
    this.onDisk.refresh();
    this.wake();
  }

  // ---- upgrade on the fly (USR2): upgrade.ts -------------------------------------------------

  /** The new master serves and is the main process: pass it what is pending, then stop or stay. */
  private handedOff(pid: number): void {
    this.metrics?.upgrades.inc();
    this.metrics?.close();
    // A pending reload or upgrade is the new master's business now; a pending WINCH stays: it is
    // meant for this master's workers.
    for (const sig of ['SIGHUP', 'SIGUSR2'] as const) {
      if (!this.pending.delete(sig)) continue;
      this.log.info(`Passing the pending ${signalName(sig)} on to the new master (pid ${pid})`);
      try { process.kill(pid, sig); } catch { /* it is gone: the rollback says so */ }
    }
    if (this.settings.upgrade_handoff === 'auto') {
      this.log.info(`New master (pid ${pid}) is serving: stopping this old master`);
      // The new master holds the sockets it serves. A reuse-port socket it has no worker for then
      // goes as soon as this master's worker on it stops listening, not after every worker here
      // has drained: meanwhile it would take its share of the reconnecting clients, for nobody.
      this.listeners.close(false);
      this.guard('stop', this.stop(true));
    } else {
      this.log.info(`New master (pid ${pid}) is serving; upgrade_handoff = manual: this master stays until WINCH (stop its workers), QUIT/TERM (exit) or HUP (roll back)`);
    }
  }

  /** This master was started by USR2 and serves: it becomes the main process. */
  private async takeOver(old: OldMaster): Promise<void> {
    this.takingOver = true;
    await takeOverFrom(old, this.status, this.log);
    this.takingOver = false;
    this.wake();
    await this.listenMetrics();
  }

  // ---- stopping ------------------------------------------------------------------------------

  /** Stops the master; `lameDuck` (TERM): after lame_duck seconds of serving on, if set. */
  private async stop(graceful: boolean, code: number = EXIT.OK, lameDuck = false): Promise<void> {
    if (this.stopping) {
      if (graceful) {
        this.log.info(this.lameDuck.active ? 'TERM: already in lame duck' : 'TERM: already stopping');
      } else if (this.lameDuck.active) {
        this.lameDuck.cut();
      } else {
        this.log.info('Quick stop: the workers still draining stop now');
        this.pool.signalAll('SIGQUIT');
      }
      return;
    }
    for (const sig of this.pending) this.log.warning(`The pending ${signalName(sig)} is not carried out: the master is stopping`);
    this.pending.clear();
    const upgradeGone = this.upgrade.abandon();
    this.stopping = true;
    clearInterval(this.tick);
    this.onDisk.stop();
    // A master that handed over has nothing to announce to load balancers: the new one serves.
    if (lameDuck && this.settings.lame_duck > 0 && !this.upgrade.handedOff) {
      await this.lameDuck.serve(this.settings.lame_duck * 1000, (ms) => { this.pool.lameDuckAll(); this.status.lameDuck(ms, this.settings.graceful_timeout * 1000); });
    }
    const quick = !graceful || this.lameDuck.cutShort;
    this.status.stopping();
    this.log.info(this.upgrade.handedOff ? 'Handing over: stopping this master\'s workers gracefully' : quick ? 'Quick stop' : 'Graceful stop');
    await this.pool.stopAll(!quick, QUICK_STOP_MS);
    // A unix socket's path goes with the last master that serves on it (never at a handoff): that
    // is this one, once the new master of an unfinished upgrade is gone too.
    await upgradeGone;
    this.listeners.close(true);
    this.control?.close();
    this.metrics?.close();
    this.opts.pidfile?.unlink();
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
