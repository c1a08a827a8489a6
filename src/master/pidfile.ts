// The master's pidfile, written atomically (temp file + rename). A pidfile naming a live process is
// respected only when that process really is a tsgunicorn master: pids get reused.

import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { PidfileError } from '../core/errors.js';

const MASTER_TITLE = 'tsgunicorn: master';

/** True when `pid` is alive and its command line is a tsgunicorn master's process title. */
export function isTsgunicornMaster(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith(MASTER_TITLE);
  } catch {
    return false;
  }
}

export function readPid(path: string): number | null {
  try {
    const text = readFileSync(path, 'utf8').trim();
    return /^\d+$/.test(text) ? Number(text) : null;
  } catch {
    return null;
  }
}

function writeAtomically(path: string, pid: number): void {
  const tmp = `${path}.${pid}.tmp`;
  writeFileSync(tmp, `${pid}\n`, { mode: 0o644, flag: 'wx' });
  renameSync(tmp, path);
}

export class Pidfile {
  private path: string;

  constructor(private readonly home: string) {
    this.path = home;
  }

  get file(): string {
    return this.path;
  }

  /** Writes our pid; refuses (PidfileError) when the file names another live master. */
  create(pid: number = process.pid): void {
    const other = readPid(this.path);
    if (other !== null && other !== pid && isTsgunicornMaster(other)) {
      throw new PidfileError(`pidfile ${this.path} names a running tsgunicorn master (pid ${other}); stop it first or use another --pid`);
    }
    try {
      writeAtomically(this.path, pid);
    } catch (err) {
      throw new PidfileError(`cannot write pidfile ${this.path}: ${(err as Error).message}`);
    }
  }

  /** USR2: P becomes P.oldbin, so that P names the new master that will stay (nginx, Unicorn). */
  moveAside(): void {
    this.moveTo(`${this.home}.oldbin`);
  }

  /** The upgrade failed or the new master is gone: P names this master again. */
  restore(): void {
    if (this.path !== this.home) this.moveTo(this.home);
  }

  private moveTo(to: string): void {
    renameSync(this.path, to);
    this.path = to;
  }

  /** Removes the file if it still holds our pid. */
  unlink(pid: number = process.pid): void {
    if (readPid(this.path) !== pid) return;
    try {
      unlinkSync(this.path);
    } catch {
      /* already gone */
    }
  }
}
