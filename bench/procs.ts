// Processes for the bench: start a server command, read what it prints, find its workers and their
// memory in /proc, and stop exactly the processes it started (by pid, never by name).

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { request } from 'node:http';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { alive, childrenOf, cmdline, cpuMs, freePort, socketInodes, tcpInodes } from '../test/helpers/proc.js';

export { alive, childrenOf, cmdline, cpuMs, freePort };

/** The repository root (this file runs from dist/bench/). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resident set size in MiB (VmRSS), or NaN when the process is gone. */
export function rssMiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** How many of the established connections to `port` each of `pids` holds (pid → count). */
export function connectionsPerWorker(port: number, pids: readonly number[]): Record<string, number> {
  const established = new Set(tcpInodes(port, 'established'));
  return Object.fromEntries(pids.map((p) => [String(p), socketInodes(p).filter((i) => established.has(i)).length]));
}

/** One GET with a fresh connection; resolves with the status and X-Worker, or null on error. */
export function probe(port: number, timeoutMs = 1000): Promise<{ status: number; worker: string } | null> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, worker: String(res.headers['x-worker'] ?? '') }));
      res.on('error', () => resolve(null));
    });
    req.on('error', () => resolve(null));
    req.setTimeout(timeoutMs, () => req.destroy());
    req.end();
  });
}

/** Polls until a GET answers 200; resolves with the time it did (performance.now()). */
export async function firstResponse(port: number, deadlineMs = 30000): Promise<number> {
  const end = performance.now() + deadlineMs;
  while (performance.now() < end) {
    const r = await probe(port, 200);
    if (r?.status === 200) return performance.now();
    await sleep(5);
  }
  throw new Error(`port ${port}: no answer within ${deadlineMs} ms`);
}

export async function waitUntil(what: string, cond: () => boolean, timeoutMs = 30000, stepMs = 5): Promise<number> {
  const end = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(stepMs);
  }
  return performance.now();
}

/**
 * Environment the servers do not get. NODE_EXTRA_CA_CERTS (set on some build machines, this one
 * included) makes every Node process read and parse the CA bundle at start: ~70 ms each here,
 * which would be most of a start-to-ready time and says nothing about the servers.
 */
export const UNSET_FOR_SERVERS = ['WEB_CONCURRENCY', 'TSGUNICORN_CMD_ARGS', 'NODE_EXTRA_CA_CERTS', 'NODE_OPTIONS'] as const;

/** CPUs every server process started from now on runs on (`taskset -c`); null: this process's. */
let serverCpus: string | null = null;

export interface Placement {
  /** This process, wrk and the HUP/USR2 load. */
  readonly load: string;
  /** The servers while they are under load. */
  readonly servers: string;
  /** Every CPU: the servers while their start is timed (no load runs then). */
  readonly all: string;
}

/**
 * Puts this process (and so wrk and the HUP/USR2 load, which it starts) on CPU 0 and lets the
 * servers be started on the others, so the load generator never takes a core from the server
 * under test and each contender gets the same CPUs. Null on a single-CPU machine.
 */
export function placeCpus(): Placement | null {
  const n = availableParallelism();
  if (n < 2) return null;
  execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
  return { load: '0', servers: n === 2 ? '1' : `1-${n - 1}`, all: `0-${n - 1}` };
}

/** The CPUs servers started from now on run on (null: wherever this process may run). */
export function serversOn(cpus: string | null): void {
  serverCpus = cpus;
}

/**
 * A command the bench started, with everything it starts in turn (tsgunicorn's workers run in
 * their own sessions, and a USR2 master outlives the one that started it): descendants are
 * sampled every 50 ms and remembered, so stop() can kill them all by pid.
 */
export class Proc {
  readonly child: ChildProcess;
  readonly startedAt = performance.now();
  output = '';
  exitedAt = 0;
  private readonly seen = new Set<number>();
  private readonly sampler: NodeJS.Timeout;
  private readonly listeners: (() => void)[] = [];

  constructor(argv: readonly string[], env: NodeJS.ProcessEnv = {}) {
    const clean = { ...process.env };
    for (const k of UNSET_FOR_SERVERS) delete clean[k];
    const command = serverCpus === null ? argv : ['taskset', '-c', serverCpus, ...argv];
    this.child = spawn(command[0]!, command.slice(1), { cwd: ROOT, env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const onData = (d: Buffer): void => {
      this.output += d.toString();
      for (const l of this.listeners) l();
    };
    this.child.stdout!.on('data', onData);
    this.child.stderr!.on('data', onData);
    this.child.once('exit', () => { this.exitedAt = performance.now(); });
    this.sampler = setInterval(() => this.sample(), 50);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get exited(): boolean {
    return this.exitedAt > 0;
  }

  /** Resolves with the time the output first matches `re` (checked on every chunk, no polling). */
  waitFor(re: RegExp | ((out: string) => boolean), timeoutMs = 30000): Promise<number> {
    const test = typeof re === 'function' ? re : (out: string): boolean => re.test(out);
    return new Promise((resolve, reject) => {
      if (test(this.output)) { resolve(performance.now()); return; }
      const timer = setTimeout(() => { drop(); reject(new Error(`timed out waiting for ${String(re)}; output:\n${this.output.slice(-2000)}`)); }, timeoutMs);
      const check = (): void => { if (test(this.output)) { drop(); resolve(performance.now()); } };
      const onExit = (): void => { drop(); reject(new Error(`exited before ${String(re)}; output:\n${this.output.slice(-2000)}`)); };
      const drop = (): void => {
        clearTimeout(timer);
        this.listeners.splice(this.listeners.indexOf(check), 1);
        this.child.off('exit', onExit);
      };
      this.listeners.push(check);
      this.child.once('exit', onExit);
    });
  }

  sample(): void {
    const visit = (pid: number): void => {
      for (const c of childrenOf(pid)) if (!this.seen.has(c)) { this.seen.add(c); visit(c); }
    };
    visit(this.pid);
    for (const pid of [...this.seen]) if (alive(pid)) visit(pid);
  }

  /** SIGKILLs the command and every descendant seen, then waits until they are all gone. */
  async stop(): Promise<void> {
    this.sample();
    clearInterval(this.sampler);
    const pids = [this.pid, ...this.seen].filter((p) => p === this.pid || /node|gunicorn/.test(cmdline(p)));
    for (const p of pids) {
      try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
    }
    await waitUntil('bench processes to exit', () => pids.every((p) => !alive(p)), 10000, 10);
  }
}

/** Copies bin/ and dist/src/ aside, so that a rebuild by someone else during the run changes nothing. */
export function snapshotTsgunicorn(): string {
  const home = mkdtempSync(join(tmpdir(), 'tsg-bench-'));
  cpSync(join(ROOT, 'bin'), join(home, 'bin'), { recursive: true });
  cpSync(join(ROOT, 'dist', 'src'), join(home, 'dist', 'src'), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(home, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(home, 'node_modules'));
  return home;
}
