// sd_notify(3) from the master, through libsystemd's own sd_notify (the `sd-notify` addon). The
// addon is optional: where it could not be built (no libsystemd-dev at install time) and systemd
// asks for notifications, we say so once and carry on without them.

import { createRequire } from 'node:module';
import type { Logger } from '../logging/logger.js';

interface SdNotifyAddon {
  sendState(state: string): void;
}

function loadAddon(): SdNotifyAddon | Error {
  try {
    return createRequire(import.meta.url)('sd-notify') as SdNotifyAddon;
  } catch (err) {
    return err as Error;
  }
}

/** Microseconds of CLOCK_MONOTONIC, as systemd's MONOTONIC_USEC= wants (libuv's hrtime is it). */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

export interface Watchdog {
  /** Interval at which to ping: half of WATCHDOG_USEC. */
  readonly intervalMs: number;
  readonly usec: number;
}

/** The watchdog systemd set up for this process, if any (sd_watchdog_enabled(3)). */
export function watchdogFor(pid: number, env: NodeJS.ProcessEnv = process.env): Watchdog | null {
  const usec = Number(env['WATCHDOG_USEC']);
  if (!Number.isSafeInteger(usec) || usec <= 0) return null;
  const wpid = env['WATCHDOG_PID'];
  if (wpid && Number(wpid) !== pid) return null;
  return { usec, intervalMs: Math.max(1, Math.floor(usec / 2000)) };
}

export class Notifier {
  private addon: SdNotifyAddon | null = null;
  readonly enabled: boolean;

  constructor(log: Logger, env: NodeJS.ProcessEnv = process.env) {
    this.enabled = Boolean(env['NOTIFY_SOCKET']);
    if (!this.enabled) return;
    const addon = loadAddon();
    if (addon instanceof Error) {
      log.warning(`NOTIFY_SOCKET is set but sd_notify is unavailable (the sd-notify addon was not built: ${addon.message.split('\n')[0]}); systemd will not hear readiness, reloads, watchdog pings or a new main PID after USR2`);
      return;
    }
    this.addon = addon;
  }

  /** systemd asks for notifications (NOTIFY_SOCKET) and this process cannot send them. */
  get mute(): boolean {
    return this.enabled && this.addon === null;
  }

  /** systemd asks for notifications and hears them. */
  get heard(): boolean {
    return this.addon !== null;
  }

  /** Sends newline-separated assignments, e.g. notify('READY=1', 'STATUS=serving'). */
  notify(...assignments: string[]): void {
    this.addon?.sendState(assignments.join('\n'));
  }
}
