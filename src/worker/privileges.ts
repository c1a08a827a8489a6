// Switches a worker to the configured identity before it loads the application: umask, groups,
// then the user (last, while we may still change groups).

import { posixAddon, type Identity } from '../identity.js';

/** The POSIX-only parts of `process` (present on Linux, optional in Node's types). */
interface PosixProcess {
  setgid(id: number): void;
  setuid(id: number): void;
  getuid(): number;
  setgroups(groups: number[]): void;
  initgroups(user: string, extraGroup: number): void;
}

/**
 * Debian's nodejs (built with the system libuv) refuses process.setuid() and friends ("disabled:
 * io_uring may be enabled", CVE-2024-22017); there the `posix` addon makes the same calls. Without
 * setgroups(2) in the addon, supplementary groups always come from initgroups(3) of the user.
 */
function viaPosixAddon(id: Identity, cause: Error): void {
  const posix = posixAddon();
  if (!posix) throw new Error(`${cause.message}; the posix addon, which could switch users instead, is not installed`);
  if (process.getuid!() === 0) {
    if (id.user === null) throw new Error(`${cause.message}; with this Node.js, user must be a name (for initgroups), not a bare uid`);
    posix.initgroups(id.user, id.gid);
  }
  posix.setgid(id.gid);
  posix.setuid(id.uid);
}

export function dropPrivileges(umask: number, id: Identity | null, initgroups: boolean): void {
  process.umask(umask);
  if (!id) return;
  try {
    viaProcess(id, initgroups);
  } catch (err) {
    if (!/io_uring/.test((err as Error).message)) throw err;
    viaPosixAddon(id, err as Error);
  }
}

function viaProcess(id: Identity, initgroups: boolean): void {
  const p = process as unknown as PosixProcess;
  if (p.getuid() === 0) {
    if (initgroups && id.user !== null) p.initgroups(id.user, id.gid);
    else p.setgroups([id.gid]);
  }
  p.setgid(id.gid);
  p.setuid(id.uid);
}
