// Switches a worker to the configured identity before it loads the application: umask, groups,
// then the user (last, while we may still change groups).

import type { Identity } from '../identity.js';

/** The POSIX-only parts of `process` (present on Linux, optional in Node's types). */
interface PosixProcess {
  setgid(id: number): void;
  setuid(id: number): void;
  getuid(): number;
  setgroups(groups: number[]): void;
  initgroups(user: string, extraGroup: number): void;
}

export function dropPrivileges(umask: number, id: Identity | null, initgroups: boolean): void {
  process.umask(umask);
  if (!id) return;
  const p = process as unknown as PosixProcess;
  if (p.getuid() === 0) {
    if (initgroups && id.user !== null) p.initgroups(id.user, id.gid);
    else p.setgroups([id.gid]);
  }
  p.setgid(id.gid);
  p.setuid(id.uid);
}
