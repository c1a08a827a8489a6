// Which processes hold a socket: /proc/PID/fd/N links read `socket:[INODE]`. A master removes a
// unix socket's path at its final stop only when it is the last holder (after USR2 the other
// master, old or new, may still serve on it). Processes we may not look into (another user's) are
// not ours: masters of one instance and their workers run as one user, or the master is root.

import { fstatSync, readdirSync, readlinkSync } from 'node:fs';

export function socketInode(fd: number): string {
  return String(fstatSync(fd, { bigint: true }).ino);
}

/** Whether a process other than this one has the socket with this inode open. */
export function otherHolders(inode: string): boolean {
  const link = `socket:[${inode}]`;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === link) return true;
      } catch { /* closed meanwhile */ }
    }
  }
  return false;
}
