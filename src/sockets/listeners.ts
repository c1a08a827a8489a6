// The master's listening sockets. The master binds (or adopts) them and hands the descriptors to
// its workers; it never calls listen() or accept() itself, so it never takes a connection. Each
// worker calls listen() on its copy, and the kernel queues connections while workers change.

import { connect, _createServerHandle as createServerHandle } from 'node:net';
import { fstatSync, linkSync, lstatSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { closeFd, createReuseportFd } from 'node-unix-socket';
import { ListenError } from '../core/errors.js';
import { bindOf, type BindAddress } from './address.js';
import { otherHolders, socketInode } from './holders.js';
import { tcpAddressInUse } from './port-in-use.js';

declare module 'node:net' {
  // Node's own cluster module binds without listening through this (lib/net.js); there is no
  // public API that creates a unix stream socket without also accepting on it.
  function _createServerHandle(address: string | null, port: number | null, addressType: number | null, fd?: number): { fd: number; close(): void } | number;
}

/** The file a unix socket was bound at, as it was then (lstat): its device and inode. */
export interface SocketPath {
  readonly path: string;
  readonly dev: string;
  readonly ino: string;
}

export class Listener {
  constructor(
    readonly fd: number,
    readonly kind: 'tcp' | 'unix' | 'fd',
    /**
     * As it was bound (`127.0.0.1:8000`, `unix:/run/x.sock`, `fd://3`), also in a new master that
     * inherited it; or the name systemd gave it (LISTEN_FDNAMES).
     */
    readonly name: string,
    /**
     * Set for a unix socket this master, or the master it took over from, bound at a path: that
     * path is this lineage's to remove. Never for fd:// or systemd's sockets: whoever passed them
     * owns them.
     */
    readonly ownPath: SocketPath | null = null,
    /** Closes the descriptor (a unix socket's through the libuv handle that made it). */
    private readonly release: () => void = () => closeFd(fd),
  ) {}

  private closed = false;
  /** Someone else keeps the socket for a later master (systemd's store): its path stays. */
  private pathKept = false;

  /** What a person reads in logs and status: the bind address, or `fd://N (name)` for systemd's. */
  get label(): string {
    return bindOf(this.name) ? this.name : `fd://${this.fd} (${this.name})`;
  }

  /** The socket outlives this process elsewhere (systemd's store): never remove its path. */
  keepPath(): void {
    this.pathKept = true;
  }

  /** Closes the descriptor (never the path: see removeOwnPath). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.release();
  }

  /**
   * At a final stop: removes the socket's path if it is ours, still names the socket we bound
   * (same device and inode), and no other process (a new or an old master, their workers) still
   * holds the socket. Before close(): the holders are found by the socket's inode.
   */
  removeOwnPath(): void {
    const own = this.ownPath;
    if (!own || this.closed || this.pathKept) return;
    try {
      const st = lstatSync(own.path, { bigint: true });
      if (!st.isSocket() || String(st.dev) !== own.dev || String(st.ino) !== own.ino) return;
      if (otherHolders(socketInode(this.fd))) return;
      unlinkSync(own.path);
    } catch {
      /* gone already, or in doubt: the path stays (a stale socket is replaced at the next start) */
    }
  }
}

function errnoMessage(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code === 'EADDRINUSE' ? 'address in use' : e.code === 'EACCES' ? 'permission denied' : e.message;
}

/** Binds a TCP socket with SO_REUSEPORT, synchronously (so it can be recorded before anything else runs). */
export function bindTcp(addr: Extract<BindAddress, { kind: 'tcp' }>, checkInUse: boolean): Listener {
  if (checkInUse && tcpAddressInUse(addr.host, addr.port)) {
    throw new ListenError(`cannot listen on ${addr.text}: address in use (another server listens there)`);
  }
  let fd: number;
  try {
    fd = createReuseportFd(addr.port, addr.host);
  } catch (err) {
    throw new ListenError(`cannot listen on ${addr.text}: ${errnoMessage(err)}`);
  }
  return new Listener(fd, 'tcp', addr.text);
}

/** A unix socket path left by a dead server is removed; one a live server answers on is not. */
async function clearStaleUnixSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) throw new ListenError(`cannot listen on unix:${path}: the path exists and is not a socket`);
  const alive = await new Promise<boolean>((done) => {
    const s = connect(path);
    s.once('connect', () => { s.destroy(); done(true); });
    s.once('error', () => done(false));
  });
  if (alive) throw new ListenError(`cannot listen on unix:${path}: address in use (a server answers on it)`);
  unlinkSync(path);
}

/**
 * Binds a unix socket. libuv unlinks the path a pipe handle was bound at when the handle closes
 * (and when Node closes its handles at exit), whoever serves on that path by then: a master that
 * handed its sockets to a new one would take the path from under it. So the socket is bound at a
 * name of its own beside the path (`.tsg-PID`), linked to the path (which fails, like bind(2),
 * if anything is there by then) and unlinked from its own name: libuv only ever knows that name,
 * and the path is removed by removeOwnPath alone. (`ss -xl` shows the name it was bound at.)
 */
async function bindUnix(addr: Extract<BindAddress, { kind: 'unix' }>, umask: number): Promise<Listener> {
  await clearStaleUnixSocket(addr.path);
  const bound = join(dirname(addr.path), `.tsg-${process.pid}`);
  try { unlinkSync(bound); } catch { /* none left from an earlier process with our pid */ }
  const old = process.umask(umask);
  const handle = createServerHandle(bound, -1, -1);
  process.umask(old);
  if (typeof handle === 'number') throw new ListenError(`cannot listen on ${addr.text}: bind failed (errno ${-handle})`);
  try {
    linkSync(bound, addr.path);
  } catch (err) {
    handle.close();
    const e = err as NodeJS.ErrnoException;
    throw new ListenError(`cannot listen on ${addr.text}: ${e.code === 'EEXIST' ? 'address in use' : errnoMessage(err)}`);
  }
  unlinkSync(bound);
  const st = lstatSync(addr.path, { bigint: true });
  return new Listener(handle.fd, 'unix', addr.text, { path: addr.path, dev: String(st.dev), ino: String(st.ino) }, () => handle.close());
}

/** A socket passed in by number (fd://N, systemd, an upgrading master, which passes its path too). */
export function adoptFd(fd: number, name = `fd://${fd}`, ownPath: SocketPath | null = null): Listener {
  let st;
  try {
    st = fstatSync(fd);
  } catch {
    throw new ListenError(`fd://${fd}: no such file descriptor`);
  }
  if (!st.isSocket()) throw new ListenError(`fd://${fd}: not a socket`);
  return new Listener(fd, 'fd', name, ownPath);
}

export interface BindOptions {
  readonly umask: number;
  /** Check the kernel's listening table for a conflict first (off for extra reuse-port sockets). */
  readonly checkInUse: boolean;
}

export async function bindAddress(addr: BindAddress, opts: BindOptions): Promise<Listener> {
  switch (addr.kind) {
    case 'tcp':
      return bindTcp(addr, opts.checkInUse);
    case 'unix':
      return bindUnix(addr, opts.umask);
    case 'fd':
      return adoptFd(addr.fd);
  }
}
