// systemd's file descriptor store (FDSTORE=1, docs/deploy.md "Restarts and crashes"). With
// FileDescriptorStoreMax= set, systemd sets $FDSTORE, and the master puts every listening socket it
// bound there, named so that a later master knows it again: `tsgunicorn~SLOT~PATHID~ADDRESS`
// (SLOT: `s` for a shared socket or a reuse-port slot number; PATHID: `DEV.INO` of a unix socket
// path this lineage owns, or `-`; ADDRESS: the bind address, percent-encoded, as FDNAME= allows no
// `:`). systemd keeps a duplicate of each across `systemctl restart` and a restart after the
// master died, and passes them back in LISTEN_FDS with those names: the sockets, and the
// connections queued on them, outlive the master. Sockets from a socket unit are systemd's
// already and are never stored.
//
// The messages go through systemd-notify(1) (--fd, --fdname): the sd-notify addon cannot pass
// descriptors. systemd-notify waits until systemd has read each one (sd_notify_barrier), and
// NotifyAccess=all lets it speak for the unit.

import { spawn } from 'node:child_process';
import type { Logger } from '../logging/logger.js';
import type { InheritedFd } from '../sockets/handover.js';

const PREFIX = 'tsgunicorn~';

/** What a stored socket is: its bind address, its reuse-port slot, the unix path it owns. */
export interface StoredSocket {
  readonly name: string;
  readonly slot: number | null;
  readonly ownPath: { readonly path: string; readonly dev: string; readonly ino: string } | null;
}

/** The FDNAME= a socket is stored under. */
export function storeName(s: StoredSocket): string {
  const pathId = s.ownPath ? `${s.ownPath.dev}.${s.ownPath.ino}` : '-';
  return `${PREFIX}${s.slot ?? 's'}~${pathId}~${encodeURIComponent(s.name)}`;
}

/** A socket systemd passed back from the store, or null for another (a socket unit's). */
export function fromStore(f: InheritedFd): InheritedFd | null {
  if (!f.name.startsWith(PREFIX)) return null;
  const [slot, pathId, encoded] = f.name.slice(PREFIX.length).split('~');
  if (slot === undefined || pathId === undefined || encoded === undefined) return null;
  let name: string;
  try {
    name = decodeURIComponent(encoded);
  } catch {
    return null;
  }
  const [dev, ino] = pathId.split('.');
  const ownPath = dev && ino && name.startsWith('unix:') ? { path: name.slice(5), dev, ino } : null;
  return { fd: f.fd, name, slot: slot === 's' ? null : Number(slot), ownPath };
}

export class FdStore {
  /** Store operations in order (a removal must not overtake the store it undoes). */
  private queue: Promise<void> = Promise.resolve();
  private warned = false;

  private constructor(private readonly log: Logger) {}

  /** The store systemd offers this process ($FDSTORE > 0 under NOTIFY_SOCKET), or null. */
  static offered(log: Logger, env: NodeJS.ProcessEnv = process.env): FdStore | null {
    return env['NOTIFY_SOCKET'] && Number(env['FDSTORE']) > 0 ? new FdStore(log) : null;
  }

  /** Puts `fd` in the store (systemd drops a duplicate of a socket it holds already). */
  add(fd: number, s: StoredSocket): void {
    this.notify(['--fd=3', `--fdname=${storeName(s)}`, 'FDSTORE=1'], fd);
  }

  /** Takes the socket stored as `s` out of the store (systemd closes its copy). */
  remove(s: StoredSocket): void {
    this.notify(['FDSTOREREMOVE=1', `FDNAME=${storeName(s)}`], null);
  }

  /** Resolves once every message so far has been delivered (or has failed, with a warning). */
  settled(): Promise<void> {
    return this.queue;
  }

  private notify(args: string[], fd: number | null): void {
    this.queue = this.queue.then(() => new Promise<void>((done) => {
      const child = spawn('systemd-notify', args, { stdio: ['ignore', 'ignore', 'pipe', ...(fd === null ? [] : [fd])] });
      let err = '';
      child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
      child.once('error', (e) => { this.warn(e.message); done(); });
      child.once('exit', (code) => { if (code !== 0) this.warn(err.trim() || `exit ${code}`); done(); });
    }));
  }

  private warn(why: string): void {
    if (this.warned) return;
    this.warned = true;
    this.log.warning(`systemd's file descriptor store: systemd-notify failed (${why}); a restart will bind the sockets anew`);
  }
}
