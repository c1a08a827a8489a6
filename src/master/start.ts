// Starting a master: from a resolved configuration to a running arbiter. Everything a failed start
// leaves is undone (pidfile, sockets); a TERM, INT or QUIT before the arbiter runs undoes the same
// (signal-queue.ts). Sockets come from the master that started this one on USR2, from systemd, or
// are bound here, in that order.

import { spawn } from 'node:child_process';
import type { ResolvedConfig } from '../config/resolve-config.js';
import { EXIT } from '../core/errors.js';
import { createLogger, type Logger } from '../logging/logger.js';
import { upgradeFds } from '../sockets/handover.js';
import { ListenerSet } from '../sockets/listener-set.js';
import { adoptFd } from '../sockets/listeners.js';
import { closeStrayCopies } from '../sockets/stray-fds.js';
import { systemdListenFds } from '../systemd/listen-fds.js';
import { Arbiter } from './arbiter.js';
import { prepareLogFiles } from './log-files.js';
import { Pidfile } from './pidfile.js';
import { raiseFileLimit, warnIfRoot } from './process-limits.js';
import type { SignalQueue } from './signal-queue.js';
import { OldMaster } from './upgrade.js';

const DAEMON_ENV = 'TSGUNICORN_DAEMONIZED';

function underSystemd(): boolean {
  return Boolean(process.env['INVOCATION_ID'] || process.env['NOTIFY_SOCKET']);
}

/** -D: start ourselves again detached from the terminal, then leave. */
function daemonize(argv: readonly string[], cwd: string): never {
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...argv], {
    detached: true,
    cwd,
    stdio: 'ignore',
    env: { ...process.env, [DAEMON_ENV]: '1' },
  });
  child.unref();
  process.exit(EXIT.OK);
}

/** Sockets from an upgrading master or systemd are used as they are; otherwise we bind. */
async function openListeners(config: ResolvedConfig, log: Logger): Promise<ListenerSet> {
  const s = config.settings;
  const upgrade = upgradeFds();
  const inherited = upgrade.length > 0 ? upgrade : systemdListenFds(process.pid);
  if (inherited.length === 0) {
    const bound = await ListenerSet.open(config.binds, s.reuse_port, s.umask, s.backlog);
    // A parent that passed fd://N may have leaked its own copy under another number too.
    closeStrayCopies(bound.all.map((l) => l.fd));
    return bound;
  }
  const from = upgrade.length > 0 ? 'the previous master' : 'systemd';
  const names = [...new Set(inherited.map((f) => f.name))];
  // After USR2 the sockets are the ones the bind setting made, unless the config changed since.
  const changed = config.explicit.has('bind') && (upgrade.length === 0 || config.binds.map((b) => b.text).sort().join(' ') !== names.sort().join(' '));
  if (changed) log.warning(`bind ${s.bind.join(', ')} ignored: serving on the ${inherited.length} socket(s) passed by ${from} (${names.join(', ')})`);
  // The sockets keep the layout they were made with (one per worker or shared) until a restart.
  const perWorker = inherited.some((f) => f.slot !== null);
  if (s.reuse_port && !perWorker) log.warning(`reuse_port ignored: serving on the sockets passed by ${from} (a restart makes one per worker)`);
  if (!s.reuse_port && perWorker) log.warning(`reuse_port = false takes effect at the next restart: keeping the previous master's socket per worker`);
  const adopted = ListenerSet.adopt(inherited.map((f) => ({ listener: adoptFd(f.fd, f.name, f.ownPath), slot: f.slot })));
  closeStrayCopies(inherited.map((f) => f.fd));
  return adopted;
}

export interface StartOptions {
  /** The command line, for HUP and for a new master on USR2. */
  readonly argv: readonly string[];
  /** Where the process started: what relative paths in argv mean. */
  readonly startDir: string;
  /** The signals since the process's first instruction (bin/tsgunicorn.js). */
  readonly signals: SignalQueue;
}

/** Runs a master until it stops; resolves with its exit code. */
export async function runMaster(config: ResolvedConfig, opts: StartOptions): Promise<number> {
  const s = config.settings;
  process.chdir(config.appDir);
  const log = createLogger({ errorlog: s.errorlog, loglevel: s.loglevel });
  warnIfRoot(config.identity, log);
  prepareLogFiles(s, config.identity);
  raiseFileLimit(s, log);
  if (s.daemon && !process.env[DAEMON_ENV]) {
    if (underSystemd()) log.warning('daemon: ignored under systemd (systemd supervises the process)');
    else daemonize(opts.argv, opts.startDir);
  }
  const pidfile = s.pidfile === null ? null : new Pidfile(s.pidfile);
  pidfile?.create();
  if (pidfile) opts.signals.onEarlyStop(() => pidfile.unlink());
  let listeners: ListenerSet;
  try {
    listeners = await openListeners(config, log);
  } catch (err) {
    pidfile?.unlink();
    throw err;
  }
  opts.signals.onEarlyStop(() => listeners.close(true));
  const arbiter = new Arbiter({ ...opts, config, log, listeners, pidfile, oldMaster: OldMaster.fromEnv() });
  // The master must not die of an error in an event handler with its pidfile and sockets left behind.
  process.on('uncaughtException', (err) => arbiter.failed('an event handler', err));
  process.on('unhandledRejection', (err) => arbiter.failed('a promise nobody awaited', err));
  const code = await arbiter.run();
  await log.flush();
  return code;
}
