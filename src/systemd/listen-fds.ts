// Inherited listening sockets: systemd socket activation (sd_listen_fds(3): LISTEN_PID, LISTEN_FDS,
// LISTEN_FDNAMES, descriptors from 3) and an upgrading master's handoff (TSGUNICORN_FDS, a list of
// `FD:NAME` pairs, so names survive whatever numbers the descriptors land on, `FD:NAME:SLOT` for a
// reuse-port socket of worker slot SLOT, and `FD:NAME:SLOT:DEV.INO` (SLOT may be empty) for a unix
// socket whose path the master owns, with the device and inode of that path as it was bound).

import { parseBind } from '../sockets/address.js';
import type { SocketPath } from '../sockets/listeners.js';

export const LISTEN_FDS_START = 3;
export const UPGRADE_FDS_ENV = 'TSGUNICORN_FDS';

export interface InheritedFd {
  readonly fd: number;
  readonly name: string;
  /** The worker slot of a reuse-port socket (upgrades only); null for a shared one. */
  readonly slot: number | null;
  /** The path an upgrading master owned, handed on with the socket; null for the others. */
  readonly ownPath: SocketPath | null;
}

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
    fd: LISTEN_FDS_START + i,
    name: names[i] || `fd://${LISTEN_FDS_START + i}`,
    slot: null,
    ownPath: null,
  }));
}

/** Sockets handed over by the master that started us on USR2. */
export function upgradeFds(env: NodeJS.ProcessEnv = process.env): InheritedFd[] {
  const text = env[UPGRADE_FDS_ENV];
  delete env[UPGRADE_FDS_ENV];
  if (!text) return [];
  const fds = text.split(',').map((entry): InheritedFd => {
    const [fd, encoded, slot, own] = entry.split(':');
    const name = decodeURIComponent(encoded ?? '');
    const [dev, ino] = (own ?? '').split('.');
    const ownPath = dev && ino && name.startsWith('unix:') ? { path: name.slice(5), dev, ino } : null;
    return { fd: Number(fd), name, slot: slot === undefined || slot === '' ? null : Number(slot), ownPath };
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
    if (fds.filter((g) => g.name === f.name).length < 2 || !isTcpBind(f.name)) return f;
    const slot = seen.get(f.name) ?? 0;
    seen.set(f.name, slot + 1);
    return { ...f, slot };
  });
}

function isTcpBind(text: string): boolean {
  try {
    return parseBind(text).kind === 'tcp';
  } catch {
    return false;
  }
}

export function encodeUpgradeFds(fds: readonly InheritedFd[]): string {
  return fds.map((f) => {
    const fields = [String(f.fd), encodeURIComponent(f.name)];
    if (f.slot !== null || f.ownPath) fields.push(f.slot === null ? '' : String(f.slot));
    if (f.ownPath) fields.push(`${f.ownPath.dev}.${f.ownPath.ino}`);
    return fields.join(':');
  }).join(',');
}
