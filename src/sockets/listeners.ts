// The master's listening sockets. The master binds (or adopts) them and hands the descriptors to
// its workers; it never calls listen() or accept() itself, so it never takes a connection. Each
// worker calls listen() on its copy, and the kernel queues connections while workers change.

import { connect, _createServerHandle as createServerHandle } from 'node:net';
import { fstatSync, lstatSync, unlinkSync } from 'node:fs';
import { closeFd, createReuseportFd } from 'node-unix-socket';
import { ListenError } from '../errors.js';
import type { BindAddress } from './address.js';
import { tcpAddressInUse } from './port-in-use.js';

declare module 'node:net' {
  // Node's own cluster module binds without listening through this (lib/net.js); there is no
  // public API that creates a unix stream socket without also accepting on it.
  function _createServerHandle(address: string | null, port: number | null, addressType: number | null, fd?: number): { fd: number; close(): void } | number;
}

export class Listener {
  constructor(
    /** What a person reads in logs: `127.0.0.1:8000`, `unix:/run/x.sock`, `fd://3`. */
    readonly text: string,
    readonly fd: number,
    readonly kind: 'tcp' | 'unix' | 'fd',
    /** Closes the descriptor; `removePath`: also unlink a unix socket we created. */
    private readonly release: (removePath: boolean) => void,
    /** Name from LISTEN_FDNAMES / TSGUNICORN_FDS, or the bind text. */
    readonly name: string = text,
  ) {}

  private closed = false;

  /** `removePath: false` when a new master goes on serving on the same unix socket. */
  close(removePath = true): void {
    if (this.closed) return;
    this.closed = true;
    this.release(removePath);
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
  return new Listener(addr.text, fd, 'tcp', () => closeFd(fd));
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

async function bindUnix(addr: Extract<BindAddress, { kind: 'unix' }>, umask: number): Promise<Listener> {
  await clearStaleUnixSocket(addr.path);
  const old = process.umask(umask);
  const handle = createServerHandle(addr.path, -1, -1);
  process.umask(old);
  if (typeof handle === 'number') throw new ListenError(`cannot listen on ${addr.text}: bind failed (errno ${-handle})`);
  return new Listener(addr.text, handle.fd, 'unix', (removePath) => {
    handle.close();
    if (!removePath) return;
    try { unlinkSync(addr.path); } catch { /* already gone */ }
  });
}

/** A socket passed in by number (fd://N, systemd, an upgrading master). */
export function adoptFd(fd: number, name?: string): Listener {
  let st;
  try {
    st = fstatSync(fd);
  } catch {
    throw new ListenError(`fd://${fd}: no such file descriptor`);
  }
  if (!st.isSocket()) throw new ListenError(`fd://${fd}: not a socket`);
  return new Listener(`fd://${fd}`, fd, 'fd', () => closeFd(fd), name);
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
