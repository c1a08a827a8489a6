// Listening sockets handed from one master to the next on USR2 (docs/signals.md, "USR2"): the old
// master passes them at descriptors 3, 4, ... (as systemd does) and describes them in
// TSGUNICORN_FDS, a list of `FD:NAME` pairs, so names survive whatever numbers the descriptors land
// on, and `FD:NAME:SLOT` for a reuse-port socket of worker slot SLOT; TSGUNICORN_FD_PATHS beside it
// has `FD:DEV.INO` for each unix socket whose path the master owns, the device and inode of that
// path as it was bound. (A variable of its own, so that an older tsgunicorn reads the list as it
// always did.)

import { bindOf } from './address.js';
import type { SocketPath } from './listeners.js';

/** The first inherited descriptor, for systemd's sockets (SD_LISTEN_FDS_START) and a handover alike. */
export const INHERITED_FDS_START = 3;
export const UPGRADE_FDS_ENV = 'TSGUNICORN_FDS';
export const OWNED_PATHS_ENV = 'TSGUNICORN_FD_PATHS';

export interface InheritedFd {
  readonly fd: number;
  readonly name: string;
  /** The worker slot of a reuse-port socket (upgrades only); null for a shared one. */
  readonly slot: number | null;
  /** The path an upgrading master owned, handed on with the socket; null for the others. */
  readonly ownPath: SocketPath | null;
}

/** Sockets handed over by the master that started us on USR2. */
export function upgradeFds(env: NodeJS.ProcessEnv = process.env): InheritedFd[] {
  const text = env[UPGRADE_FDS_ENV];
  const owned = new Map((env[OWNED_PATHS_ENV] ?? '').split(',').filter(Boolean).map((e) => e.split(':') as [string, string]));
  delete env[UPGRADE_FDS_ENV];
  delete env[OWNED_PATHS_ENV];
  if (!text) return [];
  const fds = text.split(',').map((entry): InheritedFd => {
    const [fd, encoded, slot] = entry.split(':');
    const name = decodeURIComponent(encoded ?? '');
    const [dev, ino] = (owned.get(fd ?? '') ?? '').split('.');
    const ownPath = dev && ino && name.startsWith('unix:') ? { path: name.slice(5), dev, ino } : null;
    return { fd: Number(fd), name, slot: slot === undefined ? null : Number(slot), ownPath };
  });
  return fds.some((f) => f.slot !== null) ? fds : legacySlots(fds);
}

/**
 * A master from before slots were passed (tsgunicorn 0.1.0) named each reuse-port socket by its
 * address, in slot order: an address that comes more than once is a socket per slot.
 */
function legacySlots(fds: readonly InheritedFd[]): InheritedFd[] {
  const seen = new Map<string, number>();
  return fds.map((f) => {
    if (fds.filter((g) => g.name === f.name).length < 2 || bindOf(f.name)?.kind !== 'tcp') return f;
    const slot = seen.get(f.name) ?? 0;
    seen.set(f.name, slot + 1);
    return { ...f, slot };
  });
}


/** The variables that hand `fds` to a new master. */
export function upgradeEnv(fds: readonly InheritedFd[]): Record<string, string> {
  return {
    [UPGRADE_FDS_ENV]: fds.map((f) => `${f.fd}:${encodeURIComponent(f.name)}${f.slot === null ? '' : `:${f.slot}`}`).join(','),
    [OWNED_PATHS_ENV]: fds.filter((f) => f.ownPath).map((f) => `${f.fd}:${f.ownPath!.dev}.${f.ownPath!.ino}`).join(','),
  };
}
