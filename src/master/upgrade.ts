// Upgrade on the fly (USR2; README "Upgrading on the fly", docs/signals.md). The old master starts a new master from the program as it is
// on disk now, handing it every listening socket (TSGUNICORN_FDS keeps their names whatever numbers
// they land on). The two talk over an IPC channel:
//   new → old  {t: 'takeover'}  every new worker serves; may I become the unit's main process?
//   old → new  {t: 'handoff'}   I have stopped speaking to systemd; go ahead (MAINPID=, READY=1).
// The old master rolls back when the new one exits or is not ready within upgrade_timeout.

import { spawn, type ChildProcess } from 'node:child_process';
import type { Handover } from '../sockets/listener-set.js';
import { INHERITED_FDS_START, upgradeEnv } from '../sockets/handover.js';

const UPGRADE_ENV = 'TSGUNICORN_UPGRADE';
/** How long a new master waits for the old one's handoff before taking over anyway. */
const HANDOFF_WAIT_MS = 3000;
const KILL_GRACE_MS = 5000;

type UpgradeMessage = { readonly t: 'takeover' } | { readonly t: 'handoff' };

export interface UpgradeEvents {
  /** The new master serves and asks to become the main process. */
  readonly onTakeover: () => void;
  /** The upgrade failed before that (the new master is being stopped). */
  readonly onFailure: (why: string) => void;
  readonly onExit: (code: number | null, signal: NodeJS.Signals | null) => void;
}

/** The old master's side: the new master it started. */
export class NewMaster {
  readonly child: ChildProcess;
  /** Resolves when the new master has exited (stop() kills it after KILL_GRACE_MS at the latest). */
  readonly exited: Promise<void>;
  private timer: NodeJS.Timeout;
  private settled = false;

  private constructor(child: ChildProcess, timeoutMs: number, private readonly events: UpgradeEvents) {
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
  static start(argv: readonly string[], cwd: string, listeners: readonly Handover[], timeoutMs: number, events: UpgradeEvents): NewMaster {
    const env: NodeJS.ProcessEnv = { ...process.env, ...upgradeEnv(listeners.map((h, i) => ({ fd: INHERITED_FDS_START + i, name: h.listener.name, slot: h.slot, ownPath: h.listener.ownPath }))) };
    env[UPGRADE_ENV] = String(process.pid);
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

/** The new master's side: the old master that started it, if we were started by USR2. */
export class OldMaster {
  private constructor(readonly pid: number) {}

  static fromEnv(env: NodeJS.ProcessEnv = process.env): OldMaster | null {
    const pid = Number(env[UPGRADE_ENV]);
    delete env[UPGRADE_ENV];
    if (!pid || !process.send) return null;
    // The old master going away must not stop us: we are the one that stays.
    process.on('disconnect', () => { /* expected after the handoff */ });
    return new OldMaster(pid);
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
