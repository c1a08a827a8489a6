// Switches a worker to the configured identity before it loads the application: umask, group,
// supplementary groups, then user (the user last, while we still may change groups).

import type { WorkerSettings } from '../ipc.js';

type Id = string | number;
/** The POSIX-only parts of `process` (present on Linux, optional in Node's types). */
interface PosixProcess {
  setgid(id: Id): void;
  setuid(id: Id): void;
  getgid(): number;
  getuid(): number;
  setgroups(groups: Id[]): void;
  initgroups(user: Id, extraGroup: Id): void;
}

const asId = (v: string): Id => (/^\d+$/.test(v) ? Number(v) : v);

export function dropPrivileges(s: WorkerSettings): void {
  const p = process as unknown as PosixProcess;
  process.umask(s.umask);
  if (s.group !== null) p.setgid(asId(s.group));
  if (s.user !== null) {
    if (s.initgroups) p.initgroups(asId(s.user), p.getgid());
    else if (p.getuid() === 0) p.setgroups([p.getgid()]);
    p.setuid(asId(s.user));
  }
}
