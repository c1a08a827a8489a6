// The tsgunicorn command: resolve settings, then check, print, or run the master. Every expected
// failure becomes one line on stderr and the exit status in README "Exit status"; no stack traces for bad input.

import { spawn } from 'node:child_process';
import { parseAppSpec } from '../app/app-spec.js';
import { loadApp } from '../app/load-app.js';
import { helpText, printConfig } from '../config/help.js';
import { loadSettings } from '../config/load-settings.js';
import type { Settings } from '../config/settings.js';
import { AppLoadError, ConfigError, EXIT, TsgunicornError } from '../core/errors.js';
import { createLogger, type Logger } from '../logging/logger.js';
import { Arbiter } from '../master/arbiter.js';
import { prepareLogFiles } from '../master/log-files.js';
import { checkIdentity, raiseFileLimit } from '../master/process-limits.js';
import type { SignalQueue } from '../master/signal-queue.js';
import { OldMaster } from '../master/upgrade.js';
import { Pidfile } from '../master/pidfile.js';
import { parseBind, type BindAddress } from '../sockets/address.js';
import { adoptFd } from '../sockets/listeners.js';
import { closeStrayCopies } from '../sockets/stray-fds.js';
import { upgradeFds } from '../sockets/handover.js';
import { systemdListenFds } from '../systemd/listen-fds.js';
import { ListenerSet } from '../sockets/listener-set.js';
import { statusCommand } from './status.js';
import { VERSION } from '../core/program.js';
import { checkTls } from '../config/tls.js';
import { resolveIdentity } from '../config/identity.js';


const DAEMON_ENV = 'TSGUNICORN_DAEMONIZED';

function fail(err: unknown): never {
  if (err instanceof AppLoadError) {
    const cause = err.cause as Error | undefined;
    process.stderr.write(`tsgunicorn: ${err.message}${cause ? `:\n${cause.stack ?? String(cause)}` : ''}\n`);
  } else if (err instanceof TsgunicornError) {
    process.stderr.write(`tsgunicorn: error: ${err.message}\n`);
  } else {
    process.stderr.write(`tsgunicorn: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
  }
  process.exit(err instanceof TsgunicornError ? err.exitCode : EXIT.RUNTIME);
}

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

async function checkApp(s: Settings): Promise<void> {
  await loadApp(parseAppSpec(s.app!), process.cwd());
}

/** Sockets from systemd or an upgrading master are used as they are; otherwise we bind. */
async function openListeners(s: Settings, binds: BindAddress[], bindGiven: boolean, log: Logger): Promise<ListenerSet> {
  const upgrade = upgradeFds();
  const inherited = upgrade.length > 0 ? upgrade : systemdListenFds(process.pid);
  if (inherited.length === 0) {
    const bound = await ListenerSet.open(binds, s.reuse_port, s.umask, s.backlog);
    // A parent that passed fd://N may have leaked its own copy under another number too.
    closeStrayCopies(bound.all.map((l) => l.fd));
    return bound;
  }
  const from = upgrade.length > 0 ? 'the previous master' : 'systemd';
  const names = [...new Set(inherited.map((f) => f.name))];
  // After USR2 the sockets are the ones the bind setting made, unless the config changed since.
  const changed = bindGiven && (upgrade.length === 0 || binds.map((b) => b.text).sort().join(' ') !== names.sort().join(' '));
  if (changed) log.warning(`bind ${s.bind.join(', ')} ignored: serving on the ${inherited.length} socket(s) passed by ${from} (${names.join(', ')})`);
  // The sockets keep the layout they were made with (one per worker or shared) until a restart.
  const perWorker = inherited.some((f) => f.slot !== null);
  if (s.reuse_port && !perWorker) log.warning(`reuse_port ignored: serving on the sockets passed by ${from} (a restart makes one per worker)`);
  if (!s.reuse_port && perWorker) log.warning(`reuse_port = false takes effect at the next restart: keeping the previous master's socket per worker`);
  const adopted = ListenerSet.adopt(inherited.map((f) => ({ listener: adoptFd(f.fd, f.name, f.ownPath), slot: f.slot })));
  closeStrayCopies(inherited.map((f) => f.fd));
  return adopted;
}

async function run(argv: readonly string[], signals: SignalQueue): Promise<number> {
  const startDir = process.cwd();
  const { settings: s, explicit, help, version } = await loadSettings(argv, process.env, startDir);
  if (help || version || s.print_config || s.check_config) signals.release();
  if (help) { process.stdout.write(helpText(VERSION)); return EXIT.OK; }
  if (version) { process.stdout.write(`tsgunicorn ${VERSION} (node ${process.version})\n`); return EXIT.OK; }
  if (s.print_config) { process.stdout.write(printConfig(s)); return EXIT.OK; }
  if (!s.app) throw new ConfigError('no application given: tsgunicorn [OPTIONS] APP_MODULE (or app = "..." in the config file)');
  parseAppSpec(s.app);
  await checkTls(s);
  resolveIdentity(s);
  const binds = s.bind.map(parseBind);
  if (s.chdir !== null) {
    try {
      process.chdir(s.chdir);
    } catch (err) {
      throw new ConfigError(`chdir: cannot change to ${s.chdir}: ${(err as Error).message}`);
    }
  }
  if (s.check_config) {
    await checkApp(s);
    process.stdout.write('Configuration and application OK\n');
    return EXIT.OK;
  }
  const log = createLogger({ errorlog: s.errorlog, loglevel: s.loglevel });
  const identity = checkIdentity(s, log);
  prepareLogFiles(s, identity);
  raiseFileLimit(s, log);
  if (s.daemon && !process.env[DAEMON_ENV]) {
    if (underSystemd()) log.warning('daemon: ignored under systemd (systemd supervises the process)');
    else daemonize(argv, startDir);
  }
  const pidfile = s.pidfile === null ? null : new Pidfile(s.pidfile);
  pidfile?.create();
  if (pidfile) signals.onEarlyStop(() => pidfile.unlink());
  let listeners: ListenerSet;
  try {
    listeners = await openListeners(s, binds, explicit.has('bind'), log);
  } catch (err) {
    pidfile?.unlink();
    throw err;
  }
  signals.onEarlyStop(() => listeners.close(true));
  const code = await new Arbiter({ argv, startDir, settings: s, identity, log, listeners, pidfile, signals, oldMaster: OldMaster.fromEnv() }).run();
  await log.flush();
  return code;
}

/** `signals`: the queue bin/tsgunicorn.js installed at the process's first instruction. */
export function main(argv: readonly string[], signals: SignalQueue): void {
  if (argv[0] === 'status') signals.release();
  const command = argv[0] === 'status' ? statusCommand(argv.slice(1)) : run(argv, signals);
  command.then((code) => process.exit(code), fail);
}
