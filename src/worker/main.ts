// A worker process: load the app once, serve it on the inherited listening sockets, heartbeat to
// the master, and drain gracefully on TERM. Exit codes 3 and 4 tell the master why a boot failed.

import { parseAppSpec } from '../app/app-spec.js';
import { loadApp } from '../app/load-app.js';
import { AppLoadError } from '../core/errors.js';
import { runHook, type Hooks } from '../config/hooks.js';
import { WORKER_ENV, WORKER_EXIT, type MasterMessage, type WorkerInit, type WorkerMessage } from '../ipc/protocol.js';
import { compileAccessFormat, type AccessEntry } from '../logging/access-log.js';
import { Destination } from '../logging/destination.js';
import { createLogger, type Logger } from '../logging/logger.js';
import { watchUpgrades, type Drain } from './drain.js';
import { closeStrayCopies } from '../sockets/stray-fds.js';
import { createServers } from './http-server.js';

const init = JSON.parse(process.env[WORKER_ENV] ?? 'null') as WorkerInit | null;
if (!init || !process.send) {
  process.stderr.write('tsgunicorn: this is a worker module, started by the tsgunicorn master only\n');
  process.exit(2);
}
delete process.env[WORKER_ENV];
closeStrayCopies(init.fds, init.listenerInodes);
const s = init.settings;
process.title = `tsgunicorn: worker [${s.proc_name}]`;
const log = createLogger({ errorlog: s.errorlog, loglevel: s.loglevel });

function send(msg: WorkerMessage): void {
  if (process.connected) process.send!(msg);
}

function accessWriter(path: string | null, format: string): { write: (e: AccessEntry) => void; dest: Destination } | null {
  if (path === null) return null;
  const dest = new Destination(path, process.stdout);
  const render = compileAccessFormat(format);
  return { dest, write: (e) => { dest.write(`${render(e)}\n`); } };
}

async function workerHooks(): Promise<Partial<Hooks>> {
  if (s.config === null || s.config.endsWith('.toml')) return {};
  // Loaded only here: most workers have no hooks to read, and start faster without the settings table.
  const { loadConfigFile } = await import('../config/config-file.js');
  return Object.fromEntries(await loadConfigFile(s.config)) as Partial<Hooks>;
}

async function main(log: Logger): Promise<void> {
  let requests = 0;
  const beat = Math.max(100, Math.min(1000, (s.timeout * 1000) / 4));
  const maxRss = s.max_worker_memory * 1024 * 1024;
  let memoryRecycle = false;
  setInterval(() => {
    send({ t: 'hb', requests });
    if (maxRss > 0 && !memoryRecycle && process.memoryUsage.rss() > maxRss) {
      memoryRecycle = true;
      send({ t: 'recycle', reason: `uses ${Math.round(process.memoryUsage.rss() / 1048576)} MiB, over max_worker_memory` });
    }
  }, beat);

  // Stop requests and the master's death are handled from the start: a worker the master no
  // longer knows must never go on to serve.
  let hooks: Partial<Hooks> = {};
  let drain: Drain | null = null;
  let access: ReturnType<typeof accessWriter> = null;
  const self = { pid: process.pid, age: init!.age, ppid: process.ppid, log, settings: s };
  const server = { pid: process.ppid, settings: s, log, workers: s.workers };
  let stopping = false;
  let finalMetrics = async (): Promise<void> => { /* metrics off */ };
  const stop = async (graceful: boolean): Promise<void> => {
    if (stopping && graceful) return;
    stopping = true;
    if (graceful && drain) {
      const how = await drain.start(s.graceful_timeout * 1000);
      if (how === 'timeout') log.warning(`Worker ${process.pid}: graceful_timeout reached with connections open`);
    } else if (!graceful) {
      await runHook(hooks, 'worker_int', log, self);
    }
    await runHook(hooks, 'worker_exit', log, server, self);
    await finalMetrics();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop(true));
  process.on('SIGQUIT', () => void stop(false));
  process.on('SIGINT', () => void stop(false));
  process.on('SIGHUP', () => { /* the master reloads; workers are replaced, not reloaded */ });
  process.on('SIGUSR1', () => { log.reopen(); access?.dest.reopen(); });
  process.on('disconnect', () => {
    log.warning(`Worker ${process.pid}: master went away, stopping`);
    void stop(true);
  });
  // An error the app did not catch: log it with what this worker was serving, then have the
  // master replace it (the replacement starts first) instead of dying with requests in flight.
  let failing = false;
  const onFatal = (kind: string, err: unknown): void => {
    const serving = drain ? drain.inflight().map((r) => `${r.req.method} ${r.req.url}`) : [];
    const context = serving.length > 0 ? ` while serving ${serving.slice(0, 5).join(', ')}${serving.length > 5 ? ', ...' : ''}` : '';
    log.error(`${kind} in worker ${process.pid}${context}: ${(err as Error)?.stack ?? String(err)}`);
    if (!drain) {
      void log.flush().then(() => process.exit(WORKER_EXIT.BOOT_ERROR));
    } else if (!failing) {
      failing = true;
      send({ t: 'recycle', reason: `had an ${kind.toLowerCase()}` });
    }
  };
  process.on('uncaughtException', (err) => onFatal('Uncaught exception', err));
  process.on('unhandledRejection', (reason) => onFatal('Unhandled rejection', reason));

  hooks = await workerHooks();
  if (hooks.worker_abort) process.on('SIGABRT', () => void runHook(hooks, 'worker_abort', log, self).then(() => process.exit(1)));
  await runHook(hooks, 'post_fork', log, server, self);

  process.umask(s.umask); // user and groups are the master's doing: it starts workers as that user
  const app = await loadApp(parseAppSpec(s.app ?? ''), process.cwd());
  access = accessWriter(s.accesslog, s.access_log_format);
  const metrics = s.metrics_bind === null ? null : new (await import('./metrics.js')).WorkerMetrics();
  if (metrics) {
    process.on('message', (m: MasterMessage) => {
      if (m.t === 'metrics') void metrics.snapshot().then((data) => send({ t: 'metrics', id: m.id, data, final: false }));
    });
    finalMetrics = async () => {
      const data = await metrics.snapshot();
      await new Promise<void>((done) => { if (process.connected) process.send!({ t: 'metrics', id: 0, data, final: true } satisfies WorkerMessage, () => done()); else done(); });
    };
  }
  const maxRequests = s.max_requests > 0 ? s.max_requests + Math.floor(Math.random() * (s.max_requests_jitter + 1)) : 0;
  const served = await createServers(init!.fds.length, {
    settings: s,
    app: app.listener,
    log,
    access: access?.write ?? null,
    observe: metrics ? (req, res) => metrics.observe(req, res) : null,
    onRequest: (n) => {
      requests = n;
      if (n === maxRequests) send({ t: 'recycle', reason: `served ${n} requests (max_requests)` });
    },
  });
  const { servers } = served;
  if (stopping || !process.connected) return stop(true);
  drain = served.drain;

  // The WebSockets an app accepts on its server are recorded so a drain can close them (1001).
  if (app.onServer) for (const srv of servers) { watchUpgrades(srv); await app.onServer(srv); }
  await Promise.all(servers.map((srv, i) => new Promise<void>((done, fail) => {
    srv.once('error', fail);
    srv.listen({ fd: init!.fds[i]!, backlog: s.backlog }, () => { srv.off('error', fail); done(); });
  })));
  // Accept errors (EMFILE when out of descriptors) must not take the worker down; libuv backs off.
  let lastAcceptError = 0;
  for (const srv of servers) srv.on('error', (err: NodeJS.ErrnoException) => {
    if (Date.now() - lastAcceptError > 5000) log.warning(`Worker ${process.pid}: ${err.code ?? err.message} on accept; connections are refused until descriptors free up`);
    lastAcceptError = Date.now();
  });
  await runHook(hooks, 'post_worker_init', log, self);
  send({ t: 'ready' });
}

main(log).catch(async (err: unknown) => {
  if (err instanceof AppLoadError) {
    const cause = err.cause as Error | undefined;
    log.error(`${err.message}${cause ? `:\n${cause.stack ?? String(cause)}` : ''}`);
  } else {
    log.error(`Worker failed to boot: ${(err as Error)?.stack ?? String(err)}`);
  }
  await log.flush();
  process.exit(err instanceof AppLoadError ? WORKER_EXIT.APP_LOAD_ERROR : WORKER_EXIT.BOOT_ERROR);
});
