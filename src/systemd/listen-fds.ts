// Sockets from systemd socket activation (sd_listen_fds(3): LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES,
// descriptors from 3).

import { INHERITED_FDS_START, type InheritedFd } from '../sockets/handover.js';

/** Sockets systemd passed to this process; the variables are removed so children never see them. */
export function systemdListenFds(pid: number, env: NodeJS.ProcessEnv = process.env): InheritedFd[] {
  const count = Number(env['LISTEN_FDS']);
  const forUs = Number(env['LISTEN_PID']) === pid;
  const names = (env['LISTEN_FDNAMES'] ?? '').split(':');
  delete env['LISTEN_PID'];
  delete env['LISTEN_FDS'];
  delete env['LISTEN_FDNAMES'];
  if (!forUs || !Number.isSafeInteger(count) || count <= 0) return [];
  return Array.from({ length: count }, (_, i) => ({
    fd: INHERITED_FDS_START + i,
    name: names[i] || `fd://${INHERITED_FDS_START + i}`,
    slot: null,
    ownPath: null,
  }));
}
