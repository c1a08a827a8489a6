// Checks the master makes about the process before it starts workers: a loud warning when the
// workers would run as root, and whether the open-file limit lets each worker hold worker_connections connections (raised with
// setrlimit when it does not).

import { readFileSync } from 'node:fs';
import type { Settings } from '../config/settings.js';
import type { Identity } from '../config/identity.js';
import { posixAddon } from '../core/posix.js';
import { ACCEPT_HANDLES } from '../ipc/protocol.js';
import type { Logger } from '../logging/logger.js';

/** Descriptors a worker needs beyond its connections and listeners: IPC, logs, the app's own files. */
const FD_HEADROOM = 64;

/** Says so when the workers would run as root. */
export function warnIfRoot(id: Identity | null, log: Logger): void {
  if (process.getuid!() === 0 && (id === null || id.uid === 0)) {
    log.warning('Workers will run as root: set `user` (and `group`) so the application does not run with root\'s rights');
  }
}

/** RLIMIT_NOFILE as /proc shows it (null: unlimited), for when the posix addon is not there. */
function procFileLimit(): { soft: number | null; hard: number | null } | null {
  try {
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    const value = (x: string): number | null => (x === 'unlimited' ? null : Number(x));
    return m ? { soft: value(m[1]!), hard: value(m[2]!) } : null;
  } catch {
    return null;
  }
}

export function raiseFileLimit(s: Settings, log: Logger): void {
  // Each listening socket is ACCEPT_HANDLES descriptors in a worker.
  const need = s.worker_connections + FD_HEADROOM + ACCEPT_HANDLES * s.bind.length;
  const posix = posixAddon();
  // Node itself raises the soft limit to the hard one at start, in the master and in every worker.
  const limit = posix ? posix.getrlimit('nofile') : procFileLimit();
  if (limit === null || limit.soft === null || limit.soft >= need) return;
  const { soft, hard } = limit;
  let why: string;
  if (hard !== null && hard < need && process.getuid!() !== 0) {
    why = `hard limit ${hard}`;
  } else if (!posix) {
    why = 'the posix addon, which could raise it, is not installed';
  } else {
    try {
      posix.setrlimit('nofile', { soft: need, hard: hard !== null && hard < need ? need : hard });
      log.info(`Raised the open-file limit (RLIMIT_NOFILE) from ${soft} to ${need} for worker_connections = ${s.worker_connections}`);
      return;
    } catch (err) {
      why = (err as Error).message;
    }
  }
  log.warning(`The open-file limit (RLIMIT_NOFILE ${soft}) is below what worker_connections = ${s.worker_connections} needs (${need}) and cannot be raised (${why}); set LimitNOFILE= in the unit`);
}
