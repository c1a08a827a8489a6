// Checks the master makes about the process before it starts workers: who the workers will be
// (refusing unknown users, warning loudly about root) and whether the open-file limit lets each
// worker hold worker_connections connections (raised with setrlimit when it does not).

import type { Settings } from '../config/settings.js';
import { posixAddon, resolveIdentity, type Identity } from '../identity.js';
import type { Logger } from '../logging/logger.js';

/** Descriptors a worker needs beyond its connections: listeners, IPC, logs, the app's own files. */
const FD_HEADROOM = 64;

export function checkIdentity(s: Settings, log: Logger): Identity | null {
  const id = resolveIdentity(s);
  if (process.getuid!() === 0 && (id === null || id.uid === 0)) {
    log.warning('Workers will run as root: set `user` (and `group`) so the application does not run with root\'s rights');
  }
  return id;
}

export function raiseFileLimit(s: Settings, log: Logger): void {
  const need = s.worker_connections + FD_HEADROOM;
  const posix = posixAddon();
  if (!posix) {
    log.debug('posix addon unavailable: not checking RLIMIT_NOFILE');
    return;
  }
  const { soft, hard } = posix.getrlimit('nofile');
  if (soft === null || soft >= need) return;
  const ceiling = hard === null ? need : hard;
  try {
    if (ceiling >= need) posix.setrlimit('nofile', { soft: need, hard });
    else if (process.getuid!() === 0) posix.setrlimit('nofile', { soft: need, hard: need });
    else throw new Error(`hard limit ${hard}`);
    log.info(`Raised the open-file limit (RLIMIT_NOFILE) from ${soft} to ${need} for worker_connections = ${s.worker_connections}`);
  } catch (err) {
    log.warning(`The open-file limit (RLIMIT_NOFILE ${soft}) is below what worker_connections = ${s.worker_connections} needs (${need}) and cannot be raised (${(err as Error).message}); set LimitNOFILE= in the unit`);
  }
}
