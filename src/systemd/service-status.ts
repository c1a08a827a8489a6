// What the master tells systemd, and when: READY=1 once every initial worker listens; a STATUS=
// line a person reads in `systemctl status`; RELOADING=1 + MONOTONIC_USEC= on HUP, then READY=1;
// STOPPING=1; WATCHDOG=1 every half WATCHDOG_USEC while the master is healthy; and
// EXTEND_TIMEOUT_USEC= while a slow application is still booting. During an upgrade only the master
// that is the unit's main process speaks: the new one stays silent until it takes over with
// MAINPID=, and the old one is silent from then on.

import type { Logger } from '../logging/logger.js';
import { Notifier, monotonicUsec, watchdogFor, type Watchdog } from './notify.js';

export interface MasterSnapshot {
  readonly phase: 'booting' | 'running' | 'lame duck' | 'stopping';
  readonly ready: number;
  readonly target: number;
  readonly requests: number;
  /** The loop runs and the workers answer heartbeats. */
  readonly healthy: boolean;
}

const STATUS_EVERY_MS = 2000;
const EXTEND_AFTER_MS = 5000;
const EXTEND_EVERY_MS = 5000;

function clock(d: Date): string {
  return d.toTimeString().slice(0, 8);
}

export class ServiceStatus {
  private readonly notifier: Notifier;
  private readonly watchdog: Watchdog | null;
  private watchdogTimer: NodeJS.Timeout | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private lastStatus = '';
  private note = '';
  /** What waits for a USR2 or a HUP (master/on-disk.ts): said in every STATUS= line. */
  private pending: readonly string[] = [];
  private readonly bootStarted = Date.now();
  private lastExtend = 0;

  /** Whether this master speaks for the unit (false for a new master until it takes over). */
  private active: boolean;

  constructor(log: Logger, private readonly snapshot: () => MasterSnapshot, active = true) {
    this.active = active;
    this.notifier = new Notifier(log);
    this.watchdog = this.notifier.enabled ? watchdogFor(process.pid) : null;
    if (this.watchdog) log.info(`systemd watchdog: pinging every ${this.watchdog.intervalMs} ms while healthy`);
  }

  /** systemd expects notifications this process cannot send (the sd-notify addon does not load). */
  get mute(): boolean {
    return this.notifier.mute;
  }

  /** systemd hears this process (NOTIFY_SOCKET is set and the addon loads). */
  get heard(): boolean {
    return this.notifier.heard;
  }

  start(): void {
    if (!this.notifier.enabled || !this.active) return;
    if (this.watchdog) this.watchdogTimer = setInterval(() => this.pingWatchdog(), this.watchdog.intervalMs);
    this.statusTimer = setInterval(() => this.refresh(), STATUS_EVERY_MS);
  }

  private pingWatchdog(): void {
    if (this.snapshot().healthy) this.notifier.notify('WATCHDOG=1');
  }

  statusLine(): string {
    const s = this.snapshot();
    const serving = `${s.ready}/${s.target} workers, ${s.requests} requests served`;
    const head = s.phase === 'booting' ? `Booting ${s.ready}/${s.target} workers` : s.phase === 'stopping' ? 'Stopping'
      : s.phase === 'lame duck' ? `lame duck: serving ${serving}; stopping after lame_duck` : `Serving: ${serving}`;
    return [head, this.note, ...this.pending].filter(Boolean).join('; ');
  }

  /** Updates STATUS= when it changed, and extends the start timeout while booting. */
  refresh(): void {
    if (!this.notifier.enabled || !this.active) return;
    const line = this.statusLine();
    if (line !== this.lastStatus) {
      this.lastStatus = line;
      this.notifier.notify(`STATUS=${line}`);
    }
    const now = Date.now();
    if (this.snapshot().phase === 'booting' && now - this.bootStarted > EXTEND_AFTER_MS && now - this.lastExtend >= EXTEND_EVERY_MS) {
      this.lastExtend = now;
      this.notifier.notify(`EXTEND_TIMEOUT_USEC=${EXTEND_EVERY_MS * 2 * 1000}`);
    }
  }

  private send(...assignments: string[]): void {
    if (!this.active) return;
    this.lastStatus = this.statusLine();
    this.notifier.notify(...assignments, `STATUS=${this.lastStatus}`);
  }

  ready(): void {
    this.send('READY=1');
  }

  reloading(): void {
    this.note = '';
    this.send('RELOADING=1', `MONOTONIC_USEC=${monotonicUsec()}`);
  }

  reloaded(): void {
    this.note = `last reload ${clock(new Date())}`;
    this.send('READY=1');
  }

  reloadFailed(why: string): void {
    this.note = `reload failed at ${clock(new Date())}: ${why}`;
    this.send('READY=1');
  }

  /**
   * Becomes the unit's main process (a new master after USR2, or the old one after a rollback).
   * It pings the watchdog at once: systemd's watchdog clock runs on from the last ping of any
   * master, and MAINPID= does not reset it, so waiting a whole interval for the first ping could
   * let two upgrades in quick succession go a whole WatchdogSec= without one.
   */
  takeOver(): void {
    this.active = true;
    const ping = this.watchdog && this.snapshot().healthy ? ['WATCHDOG=1'] : [];
    this.send(`MAINPID=${process.pid}`, 'READY=1', ...ping);
    this.stop();
    this.start();
  }

  /** Another master became the main process: say nothing more. */
  handOff(): void {
    this.stop();
    this.active = false;
  }

  /** Files on disk differ from what runs: an upgrade or a reload is pending. */
  setPending(notes: readonly string[]): void {
    this.pending = notes;
    this.refresh();
  }

  upgradeFailed(why: string): void {
    this.note = `upgrade failed at ${clock(new Date())}: ${why}`;
    this.send();
  }

  /**
   * TERM with lame_duck: the unit is stopping, yet this master serves `forMs` more, then drains for
   * up to `drainMs`; systemd's stop timeout is extended to cover both.
   */
  lameDuck(forMs: number, drainMs: number): void {
    this.send('STOPPING=1', `EXTEND_TIMEOUT_USEC=${(forMs + drainMs + EXTEND_EVERY_MS) * 1000}`);
  }

  stopping(): void {
    clearInterval(this.statusTimer);
    this.send('STOPPING=1');
  }

  stop(): void {
    clearInterval(this.watchdogTimer);
    clearInterval(this.statusTimer);
  }
}
