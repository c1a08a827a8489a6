// A worker's life, one method per stage (Gunicorn's workers/base.py): boot (hooks, the app, the
// access log, metrics), serve the app on the inherited listening sockets, heartbeat to the master,
// drain or stop on its signals, and have the master replace it (the replacement starts first)
// when the app fails, memory grows past max_worker_memory or max_requests is reached. main.ts
// builds one from the master's WorkerInit and maps a boot that fails to its exit code.

import { parseAppSpec } from '../app/app-spec.js';
import { loadApp, type LoadedApp } from '../app/load-app.js';
import { runHook, type Hooks } from '../config/hooks.js';
import type { WorkerSettings } from '../config/settings.js';
import { WORKER_EXIT, type MasterMessage, type WorkerInit, type WorkerMessage } from '../ipc/protocol.js';
import { compileAccessFormat, type AccessEntry } from '../logging/access-log.js';
import { Destination } from '../logging/destination.js';
import type { Logger } from '../logging/logger.js';
import { acceptOn } from './accept.js';
import { watchUpgrades, type Drain } from './drain.js';
import { createServers } from './http-server.js';
import type { WorkerMetrics } from './metrics.js';

interface AccessWriter {
  readonly dest: Destination;
  readonly write: (e: AccessEntry) => void;
}

function accessWriter(path: string | null, format: string): AccessWriter | null {
  if (path === null) return null;
  const dest = new Destination(path, process.stdout);
  const render = compileAccessFormat(format);
  return { dest, write: (e) => { dest.write(`${render(e)}\n`); } };
}

async function workerHooks(config: string | null): Promise<Partial<Hooks>> {
  if (config === null || config.endsWith('.toml')) return {};
  // Loaded only here: most workers have no hooks to read, and start faster without the settings table.
  const { loadConfigFile } = await import('../config/config-file.js');
  return Object.fromEntries(await loadConfigFile(config)) as Partial<Hooks>;
}

function send(msg: WorkerMessage): void {
  if (process.connected) process.send!(msg);
}

export class Worker {
  private readonly s: WorkerSettings;
  /** What the hooks get: this worker, and the server (the master) it belongs to. */
  private readonly self: { pid: number; age: number; ppid: number; log: Logger; settings: WorkerSettings };
  private readonly server: { pid: number; settings: WorkerSettings; log: Logger; workers: number };
  private readonly maxRss: number;
  /** max_requests with this worker's jitter, so that workers are not all replaced at once; 0: off. */
  private readonly maxRequests: number;
  private hooks: Partial<Hooks>;
  private access: AccessWriter | null;
  private metrics: WorkerMetrics | null;
  /** Set once serving: a fatal error before that is a failed boot. */
  private drain: Drain | null;
  private requests: number;
  private stopping: boolean;
  private failing: boolean;
  private memoryRecycle: boolean;
  private lastAcceptError: number;
  /** The master is in lame duck: every response is marked `Connection: close`. */
  private lameDuck: boolean;

  constructor(private readonly init: WorkerInit, private readonly log: Logger) {
    const s = init.settings;
    this.s = s;
    this.self = { pid: process.pid, age: init.age, ppid: process.ppid, log, settings: s };
    this.server = { pid: process.ppid, settings: s, log, workers: s.workers };
    this.maxRss = s.max_worker_memory * 1024 * 1024;
    this.maxRequests = s.max_requests > 0 ? s.max_requests + Math.floor(Math.random() * (s.max_requests_jitter + 1)) : 0;
    this.hooks = {};
    this.access = null;
    this.metrics = null;
    this.drain = null;
    this.requests = 0;
    this.stopping = false;
    this.failing = false;
    this.memoryRecycle = false;
    this.lastAcceptError = 0;
    this.lameDuck = false;
  }

  /** Boots and serves; rejects when the boot fails. */
  async run(): Promise<void> {
    setInterval(() => this.heartbeat(), Math.max(100, Math.min(1000, (this.s.timeout * 1000) / 4)));
    // Stop requests and the master's death are handled from the start: a worker the master no
    // longer knows must never go on to serve.
    process.on('SIGTERM', () => void this.stop(true));
    process.on('SIGQUIT', () => void this.stop(false));
    process.on('SIGINT', () => void this.stop(false));
    process.on('SIGHUP', () => { /* the master reloads; workers are replaced, not reloaded */ });
    process.on('SIGUSR1', () => { this.log.reopen(); this.access?.dest.reopen(); });
    process.on('disconnect', () => {
      this.log.warning(`Worker ${process.pid}: master went away, stopping`);
      void this.stop(true);
    });
    process.on('message', (m: MasterMessage) => {
      if (m.t !== 'lame-duck') return;
      this.lameDuck = true;
      this.drain?.lameDuck();
    });
    process.on('uncaughtException', (err) => this.fatal('Uncaught exception', err));
    process.on('unhandledRejection', (reason) => this.fatal('Unhandled rejection', reason));
    await this.serve(await this.boot());
  }

  private async boot(): Promise<LoadedApp> {
    const s = this.s;
    this.hooks = await workerHooks(s.config);
    if (this.hooks.worker_abort) process.on('SIGABRT', () => void runHook(this.hooks, 'worker_abort', this.log, this.self).then(() => process.exit(1)));
    await runHook(this.hooks, 'post_fork', this.log, this.server, this.self);
    process.umask(s.umask); // user and groups are the master's doing: it starts workers as that user
    const app = await loadApp(parseAppSpec(s.app ?? ''), process.cwd());
    this.access = accessWriter(s.accesslog, s.access_log_format);
    if (s.metrics_bind !== null) {
      const metrics = new (await import('./metrics.js')).WorkerMetrics();
      process.on('message', (m: MasterMessage) => {
        if (m.t === 'metrics') void metrics.snapshot().then((data) => send({ t: 'metrics', id: m.id, data, final: false }));
      });
      this.metrics = metrics;
    }
    return app;
  }

  private async serve(app: LoadedApp): Promise<void> {
    const metrics = this.metrics;
    const { servers, drain } = await createServers(this.init.fds.length, {
      settings: this.s,
      app: app.listener,
      log: this.log,
      access: this.access?.write ?? null,
      observe: metrics ? (req, res) => metrics.observe(req, res) : null,
      onRequest: (n) => this.counted(n),
      proxyRejected: (kind, why) => {
        metrics?.proxyRejected(kind);
        this.log.debug(`Worker ${process.pid}: closed a connection: ${why}`);
      },
    });
    if (this.stopping || !process.connected) return this.stop(true);
    this.drain = drain;
    if (this.lameDuck) drain.lameDuck();
    // The WebSockets an app accepts on its server are recorded so a drain can close them (1001).
    if (app.onServer) for (const srv of servers) { watchUpgrades(srv); await app.onServer(srv); }
    if (this.stopping) return; // a TERM came while the app set up its servers: the stop under way exits
    const helpers = await Promise.all(servers.map((srv, i) => acceptOn(srv, this.init.fds[i]!, this.s.backlog, this.s.worker_connections)));
    drain.addAcceptHandles(helpers.flat());
    for (const srv of servers) srv.on('error', (err: NodeJS.ErrnoException) => this.acceptError(err));
    await runHook(this.hooks, 'post_worker_init', this.log, this.self);
    send({ t: 'ready' });
  }

  /** Accept errors (EMFILE when out of descriptors) must not take the worker down; libuv backs off. */
  private acceptError(err: NodeJS.ErrnoException): void {
    if (Date.now() - this.lastAcceptError > 5000) {
      this.log.warning(`Worker ${process.pid}: ${err.code ?? err.message} on accept; connections are refused until descriptors free up`);
    }
    this.lastAcceptError = Date.now();
  }

  /** Called with the running count after each request: keep it to a store and a compare. */
  private counted(n: number): void {
    this.requests = n;
    if (n === this.maxRequests) send({ t: 'recycle', reason: `served ${n} requests (max_requests)` });
  }

  private heartbeat(): void {
    send({ t: 'hb', requests: this.requests });
    if (this.maxRss > 0 && !this.memoryRecycle && process.memoryUsage.rss() > this.maxRss) {
      this.memoryRecycle = true;
      send({ t: 'recycle', reason: `uses ${Math.round(process.memoryUsage.rss() / 1048576)} MiB, over max_worker_memory` });
    }
  }

  /** TERM drains (graceful); QUIT and INT stop at once, and win over a drain under way. */
  private async stop(graceful: boolean): Promise<void> {
    if (this.stopping && graceful) return;
    this.stopping = true;
    if (graceful && this.drain) {
      const drained = this.drain.start(this.s.graceful_timeout * 1000);
      send({ t: 'closed' });
      const how = await drained;
      if (how === 'timeout') this.log.warning(`Worker ${process.pid}: graceful_timeout reached with connections open`);
    } else if (!graceful) {
      await runHook(this.hooks, 'worker_int', this.log, this.self);
    }
    await runHook(this.hooks, 'worker_exit', this.log, this.server, this.self);
    await this.finalMetrics();
    process.exit(0);
  }

  /** The last counts go to the master before exiting: its totals must not drop with the worker. */
  private async finalMetrics(): Promise<void> {
    if (this.metrics === null) return;
    const data = await this.metrics.snapshot();
    await new Promise<void>((done) => {
      if (process.connected) process.send!({ t: 'metrics', id: 0, data, final: true } satisfies WorkerMessage, () => done());
      else done();
    });
  }

  /**
   * An error the app did not catch: log it with what this worker was serving, then have the
   * master replace it (the replacement starts first) instead of dying with requests in flight.
   * Before serving, it is a failed boot.
   */
  private fatal(kind: string, err: unknown): void {
    const serving = this.drain ? this.drain.inflight().map((r) => `${r.req.method} ${r.req.url}`) : [];
    const context = serving.length > 0 ? ` while serving ${serving.slice(0, 5).join(', ')}${serving.length > 5 ? ', ...' : ''}` : '';
    this.log.error(`${kind} in worker ${process.pid}${context}: ${(err as Error)?.stack ?? String(err)}`);
    if (!this.drain) {
      void this.log.flush().then(() => process.exit(WORKER_EXIT.BOOT_ERROR));
    } else if (!this.failing) {
      this.failing = true;
      send({ t: 'recycle', reason: `had an ${kind.toLowerCase()}` });
    }
  }
}
