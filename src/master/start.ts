// Starting a master: from a resolved configuration to a running arbiter. Everything a failed start
// leaves is undone (pidfile, sockets); a TERM, INT or QUIT before the arbiter runs undoes the same
// (signal-queue.ts). Sockets come from the master that started this one on USR2, from systemd, or
// are bound here, in that order.

import { spawn } from 'node:child_process';
import type { ResolvedConfig } from '../config/resolve-config.js';
import { EXIT } from '../core/errors.js';
import { createLogger, type Logger } from '../logging/logger.js';
import { bindOf } from '../sockets/address.js';
import { upgradeFds, type InheritedFd } from '../sockets/handover.js';
import { ListenerSet, type Handover } from '../sockets/listener-set.js';
import { adoptFd } from '../sockets/listeners.js';
import { closeStrayCopies } from '../sockets/stray-fds.js';
import { FdStore, fromStore } from '../systemd/fd-store.js';
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

/**
 * The sockets an earlier master left in systemd's file descriptor store, by address, that the
 * configuration still wants with the same layout (shared, or a socket per worker). The others
 * are closed and taken out of the store: `bind` and `reuse_port` changes apply at a restart.
 */
function keptFromStore(stored: readonly InheritedFd[], config: ResolvedConfig, store: FdStore | null, log: Logger): Map<string, Handover[]> {
  const kept = new Map<string, Handover[]>();
  for (const f of stored) {
    const addr = config.binds.find((b) => b.text === f.name);
    const slotted = config.settings.reuse_port && addr?.kind === 'tcp';
    if (addr && slotted === (f.slot !== null)) {
      kept.set(f.name, [...(kept.get(f.name) ?? []), { listener: adoptFd(f.fd, f.name, f.ownPath), slot: f.slot }]);
      continue;
    }
    log.info(`Dropping the stored socket ${f.name}${f.slot === null ? '' : ` (slot ${f.slot})`}: the configuration no longer has it so`);
    const stale = adoptFd(f.fd, f.name, f.ownPath);
    stale.removeOwnPath();
    stale.close();
    store?.remove(f);
  }
  return kept;
}

/**
 * Sockets from an upgrading master or a socket unit are used as they are; otherwise we bind,
 * taking back what the file descriptor store kept of an earlier master's.
 */
async function openListeners(config: ResolvedConfig, store: FdStore | null, log: Logger): Promise<ListenerSet> {
  const s = config.settings;
  const upgrade = upgradeFds();
  const fromSystemd = upgrade.length > 0 ? [] : systemdListenFds(process.pid);
  const stored = fromSystemd.flatMap((f) => fromStore(f) ?? []);
  const unit = fromSystemd.filter((f) => fromStore(f) === null);
  const inherited = upgrade.length > 0 ? upgrade : unit;
  if (inherited.length === 0) {
    const kept = keptFromStore(stored, config, store, log);
    if (kept.size > 0) log.info(`Serving on the socket(s) systemd kept: ${[...kept.keys()].join(', ')}`);
    const bound = await ListenerSet.open(config.binds, s.reuse_port, s.umask, s.backlog, kept);
    // A parent that passed fd://N may have leaked its own copy under another number too.
    closeStrayCopies(bound.all.map((l) => l.fd));
    return bound;
  }
  // Sockets of a socket unit: whatever the store kept from before is not wanted any more.
  keptFromStore(stored, { ...config, binds: [] }, store, log);
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

/**
 * Puts the sockets this lineage of masters bound (not a socket unit's, nor fd://N) in systemd's
 * store, now and as reuse-port slots come and go. After USR2 the new master stores the same
 * sockets again: systemd keeps one copy of each.
 */
function keepInStore(listeners: ListenerSet, store: FdStore): void {
  const ours = (h: Handover): boolean => bindOf(h.listener.name)?.kind === 'tcp' || h.listener.ownPath !== null;
  const entry = (h: Handover) => ({ name: h.listener.name, slot: h.slot, ownPath: h.listener.ownPath });
  for (const h of listeners.handover()) {
    if (!ours(h)) continue;
    store.add(h.listener.fd, entry(h));
    // A restart finds the socket in the store: its path must still lead to it.
    h.listener.keepPath();
  }
  listeners.watch({
    bound: (h) => { if (ours(h)) store.add(h.listener.fd, entry(h)); },
    closed: (h) => { if (ours(h)) store.remove(entry(h)); },
  });
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
  const store = FdStore.offered(log);
  let listeners: ListenerSet;
  try {
    listeners = await openListeners(config, store, log);
  } catch (err) {
    pidfile?.unlink();
    throw err;
  }
  opts.signals.onEarlyStop(() => listeners.close(true));
  if (store) keepInStore(listeners, store);
  const arbiter = new Arbiter({ ...opts, config, log, listeners, pidfile, oldMaster: OldMaster.fromEnv() });
  // The master must not die of an error in an event handler with its pidfile and sockets left behind.
  process.on('uncaughtException', (err) => arbiter.failed('an event handler', err));
  process.on('unhandledRejection', (err) => arbiter.failed('a promise nobody awaited', err));
  const code = await arbiter.run();
  await log.flush();
  return code;
}
