// The master's control socket: a unix socket next to the pidfile, readable by the master's owner
// only, that answers every connection with the master's status as JSON and closes. The
// `tsgunicorn status` command reads it.

import { createServer, type Server } from 'node:net';
import { lstatSync, readFileSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface WorkerStatus {
  readonly pid: number;
  readonly age: number;
  readonly startedAt: number;
  readonly requests: number;
  readonly rssBytes: number | null;
  readonly state: string;
}

export interface MasterStatus {
  readonly pid: number;
  readonly name: string;
  readonly version: string;
  readonly node: string;
  readonly startedAt: number;
  readonly phase: string;
  readonly target: number;
  readonly listeners: string[];
  readonly workers: WorkerStatus[];
  readonly upgradingTo: number | null;
  /** What differs between what runs and what is on disk (master/on-disk.ts). */
  readonly pending: string[];
}

/** Where the master with this pid listens, given its pidfile. */
export function controlPath(pidfile: string, pid: number): string {
  return join(dirname(pidfile), `tsgunicorn-${pid}.ctl`);
}

export function rssBytes(pid: number): number | null {
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return kb ? Number(kb[1]) * 1024 : null;
  } catch {
    return null;
  }
}

export class ControlSocket {
  private readonly server: Server;
  private inode: number | null = null;

  constructor(readonly path: string, report: () => MasterStatus) {
    this.server = createServer((conn) => {
      conn.on('error', () => { /* the client went away */ });
      conn.end(`${JSON.stringify(report())}\n`);
    });
  }

  listen(): Promise<void> {
    try { if (lstatSync(this.path).isSocket()) unlinkSync(this.path); } catch { /* none */ }
    return new Promise((resolve, reject) => {
      const old = process.umask(0o077);
      this.server.once('error', reject);
      this.server.listen(this.path, () => {
        process.umask(old);
        this.inode = lstatSync(this.path).ino;
        resolve();
      });
    });
  }

  close(): void {
    this.server.close();
    // Remove the path only while it is still ours.
    try { if (lstatSync(this.path).ino === this.inode) unlinkSync(this.path); } catch { /* gone */ }
  }
}
