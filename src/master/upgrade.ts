// Upgrade on the fly (USR2; README "Upgrading on the fly", docs/signals.md), the whole protocol in
// one file. The old master moves its pidfile aside (P.oldbin) and starts a new master from the
// program as it is on disk now, handing it every listening socket (sockets/handover.ts keeps
// their names and slots whatever numbers they land on). The two talk over an IPC channel:
//   new -> old  {t: 'takeover'}  every new worker serves; may I become the unit's main process?
//   old -> new  {t: 'handoff'}   I have stopped speaking to systemd; go ahead (MAINPID=, READY=1).
// The old master rolls back (pidfile back to P, keeps serving) when the new one exits or is not
// ready within upgrade_timeout. After the handoff it stops (upgrade_handoff = auto) or stays until
// WINCH, QUIT/TERM or HUP (manual; HUP rolls back, and it takes over again when the new one exits).

import { spawn, type ChildProcess } from 'node:child_process';
import { UpgradeError } from '../core/errors.js';
import type { Logger } from '../logging/logger.js';
import type { Handover } from '../sockets/listener-set.js';
import type { ServiceStatus } from '../systemd/service-status.js';
import type { Pidfile } from './pidfile.js';
import { INHERITED_FDS_START, upgradeEnv } from '../sockets/handover.js';

const UPGRADE_ENV = 'TSGUNICORN_UPGRADE';
/** Set to 1 by an old master systemd never heard (NOTIFY_SOCKET set, no sd-notify addon). */
const UPGRADE_MUTE_ENV = 'TSGUNICORN_UPGRADE_MUTE';
/** How long a new master waits for the old one's handoff before taking over anyway. */
const HANDOFF_WAIT_MS = 3000;
const KILL_GRACE_MS = 5000;

type UpgradeMessage = { readonly t: 'takeover' } | { readonly t: 'handoff' };

interface NewMasterEvents {
  /** The new master serves and asks to become the main process. */
  readonly onTakeover: () => void;
  /** The upgrade failed before that (the new master is being stopped). */
  readonly onFailure: (why: string) => void;
  readonly onExit: (code: number | null, signal: NodeJS.Signals | null) => void;
}

/** The old master's side: the new master it started. */
class NewMaster {
  readonly child: ChildProcess;
  /** Resolves when the new master has exited (stop() kills it after KILL_GRACE_MS at the latest). */
  readonly exited: Promise<void>;
  private timer: NodeJS.Timeout;
  private settled = false;

  private constructor(child: ChildProcess, timeoutMs: number, private readonly events: NewMasterEvents) {
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    this.timer = setTimeout(() => this.fail(`the new master was not ready within upgrade_timeout (${timeoutMs / 1000} s)`), timeoutMs);
    child.on('message', (m: UpgradeMessage) => {
      if (m.t !== 'takeover' || this.settled) return;
      this.settled = true;
      clearTimeout(this.timer);
      events.onTakeover();
    });
    child.once('exit', (code, signal) => {
      clearTimeout(this.timer);
      if (!this.settled) this.fail(`the new master exited (${signal ? `signal ${signal}` : `code ${code}`}) before it was ready`);
      events.onExit(code, signal);
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Starts `argv` (this program, re-read from disk) in `cwd` with the listeners at fds 3, 4, ... */
  static start(argv: readonly string[], cwd: string, listeners: readonly Handover[], heard: boolean, timeoutMs: number, events: NewMasterEvents): NewMaster {
    const env: NodeJS.ProcessEnv = { ...process.env, ...upgradeEnv(listeners.map((h, i) => ({ fd: INHERITED_FDS_START + i, name: h.listener.name, slot: h.slot, ownPath: h.listener.ownPath }))) };
    env[UPGRADE_ENV] = String(process.pid);
    if (heard) delete env[UPGRADE_MUTE_ENV];
    else env[UPGRADE_MUTE_ENV] = '1';
    // The watchdog belongs to whoever is the main process; the new master takes it over unnamed.
    delete env['WATCHDOG_PID'];
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...argv], {
      stdio: ['ignore', 'inherit', 'inherit', ...listeners.map((h) => h.listener.fd), 'ipc'],
      cwd,
      env,
      serialization: 'json',
    });
    if (child.pid === undefined) {
      child.once('error', () => { /* reported by the caller */ });
      throw new Error(`could not start ${process.execPath}`);
    }
    return new NewMaster(child, timeoutMs, events);
  }

  private fail(why: string): void {
    if (this.settled) return;
    this.settled = true;
    this.events.onFailure(why);
    this.stop();
  }

  /** Tells the new master it is now the main process. */
  handOff(): void {
    if (this.child.connected) this.child.send({ t: 'handoff' } satisfies UpgradeMessage);
  }

  /** Stops the new master and its workers (QUIT, then KILL). */
  stop(): void {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGQUIT');
    const kill = setTimeout(() => this.child.kill('SIGKILL'), KILL_GRACE_MS);
    this.child.once('exit', () => clearTimeout(kill));
  }
}

/** What the upgrade needs of the master that runs it. */
export interface UpgradeHost {
  readonly log: Logger;
  readonly pidfile: Pidfile | null;
  readonly status: ServiceStatus;
  /** The command line and the directory it started in: what the new master runs. */
  readonly argv: readonly string[];
  readonly startDir: string;
  /** The listening sockets to hand over, and how long the new master gets (upgrade_timeout). */
  handover(): readonly Handover[];
  timeoutMs(): number;
  /** The pre_exec hook. */
  preExec(): Promise<void>;
  stopping(): boolean;
  /** The upgrade's state changed: what waited for it may run now. */
  changed(): void;
  /** The new master serves and is the unit's main process now. */
  handedOff(newPid: number): void;
  /** After a manual handoff the new master exited: this master is the main process again. */
  mainAgain(): void;
}

export type UpgradeState = 'idle' | 'upgrading' | 'handed off' | 'rolling back';

/** The old master's side of USR2, from start to handoff or rollback. */
export class Upgrade {
  private next: NewMaster | null = null;
  private upgrading = false;
  private handedOffTo = false;
  /** Failed, or rolled back by HUP after a handoff: until the new master has exited. */
  private rollingBack = false;

  constructor(private readonly host: UpgradeHost) {}

  get state(): UpgradeState {
    if (this.rollingBack) return 'rolling back';
    if (this.handedOffTo) return 'handed off';
    return this.upgrading ? 'upgrading' : 'idle';
  }

  /** A new master is the unit's main process (rolled back or not). */
  get handedOff(): boolean {
    return this.handedOffTo;
  }

  /** The new master while it runs. */
  get pid(): number | null {
    return this.next?.pid ?? null;
  }

  /** USR2: moves the pidfile aside and starts the new master. */
  async start(): Promise<void> {
    const { log, pidfile } = this.host;
    log.info('Handling signal: usr2: starting a new master from the program on disk');
    this.upgrading = true;
    try { pidfile?.moveAside(); } catch (err) { log.warning(`pidfile: ${(err as Error).message}`); }
    await this.host.preExec();
    if (this.host.stopping()) return;
    try {
      this.next = NewMaster.start(this.host.argv, this.host.startDir, this.host.handover(), this.host.status.heard, this.host.timeoutMs(), {
        onTakeover: () => this.handOff(),
        onFailure: (why) => this.failed(why),
        onExit: () => this.exited(),
      });
    } catch (err) {
      this.failed((err as Error).message);
      return;
    }
    log.info(`Started new master (pid ${this.next.pid})`);
  }

  private handOff(): void {
    this.host.status.handOff();
    this.upgrading = false;
    this.handedOffTo = true;
    this.next!.handOff();
    this.host.handedOff(this.next!.pid);
  }

  /** HUP after a manual handoff: this master's workers start again; the operator stops the new one. */
  rollBack(): void {
    this.host.log.info(`HUP: rolling back: starting workers again; stop the new master (pid ${this.pid}) with QUIT or TERM`);
    this.rollingBack = true;
  }

  /**
   * This master stops: the new master of an unfinished upgrade is stopped too, and P names this
   * master again until it exits. Resolves when that new master has exited (a unix socket's path
   * goes with the last master serving on it).
   */
  abandon(): Promise<void> {
    const unfinished = this.handedOffTo ? null : this.next;
    if (!unfinished) return Promise.resolve();
    this.host.log.info(`Stopping the new master (pid ${unfinished.pid}) of the unfinished upgrade`);
    unfinished.stop();
    this.restorePidfile();
    return unfinished.exited;
  }

  private restorePidfile(): void {
    try { this.host.pidfile?.restore(); } catch (err) { this.host.log.warning(`pidfile: ${(err as Error).message}`); }
  }

  private failed(why: string): void {
    this.upgrading = false;
    // Until the new master has exited (NewMaster stops it), nothing else starts.
    this.rollingBack = this.next !== null;
    this.restorePidfile();
    this.host.changed();
    if (this.host.stopping()) return;
    this.host.log.error(`Upgrade failed: ${why}; this master keeps serving`);
    this.host.status.upgradeFailed(why);
  }

  private exited(): void {
    const pid = this.next?.pid;
    this.next = null;
    this.rollingBack = false;
    this.host.changed();
    if (!this.handedOffTo || this.host.stopping()) return;
    this.handedOffTo = false;
    this.restorePidfile();
    this.host.status.takeOver();
    this.host.log.warning(`New master (pid ${pid}) exited: this master is the main process again`);
    this.host.mainAgain();
  }
}

/** The new master's side: the old master that started it, if we were started by USR2. */
export class OldMaster {
  /**
   * @param heard whether systemd heard the old master: then it knows the old one as the unit's
   *   main process, and this one must say MAINPID= before the old one exits. (An older version,
   *   which does not say, is taken as heard.)
   */
  private constructor(readonly pid: number, readonly heard: boolean) {}

  static fromEnv(env: NodeJS.ProcessEnv = process.env): OldMaster | null {
    const pid = Number(env[UPGRADE_ENV]);
    const heard = env[UPGRADE_MUTE_ENV] !== '1';
    delete env[UPGRADE_ENV];
    delete env[UPGRADE_MUTE_ENV];
    if (!pid || !process.send) return null;
    // The old master going away must not stop us: we are the one that stays.
    process.on('disconnect', () => { /* expected after the handoff */ });
    return new OldMaster(pid, heard);
  }

  /**
   * Under systemd a new master must say MAINPID= before the old one exits, or systemd takes the
   * old one's exit for the unit's and stops everything: one that cannot (a Node whose ABI the
   * sd-notify addon was not built for) refuses to start, and the old master serves on. Where
   * systemd never heard the old master either (no addon anywhere, a NOTIFY_SOCKET such as
   * systemd-nspawn's), there is no voice to lose, and the upgrade goes on as without systemd.
   */
  mayTakeOver(status: ServiceStatus): void {
    if (this.heard && status.mute) {
      throw new UpgradeError(`cannot take over from the old master (pid ${this.pid}): systemd needs MAINPID= from this master, and the sd-notify addon does not load under node ${process.version}; the old master keeps serving`);
    }
  }

  /** Asks to take over; resolves when the old master hands off (or has gone, or is slow). */
  takeOver(): Promise<void> {
    return new Promise((resolve) => {
      let finished = false;
      const done = (): void => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        process.off('message', onMessage);
        if (process.connected) process.disconnect();
        resolve();
      };
      const onMessage = (m: UpgradeMessage): void => { if (m.t === 'handoff') done(); };
      const timer = setTimeout(done, HANDOFF_WAIT_MS);
      process.on('message', onMessage);
      process.once('disconnect', done);
      if (process.connected) process.send!({ t: 'takeover' } satisfies UpgradeMessage);
      else done();
    });
  }
}

/**
 * The new master's side, once every one of its workers serves: asks the old master to step back,
 * then speaks for the unit (MAINPID=, READY=1).
 */
export async function takeOverFrom(old: OldMaster, status: ServiceStatus, log: Logger): Promise<void> {
  await old.takeOver();
  status.takeOver();
  log.info(`Upgrade complete: this master (pid ${process.pid}) took over from pid ${old.pid}`);
}
