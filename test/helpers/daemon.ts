// Test helpers: start the real tsgunicorn command, wait for what it logs, find its workers, make
// real HTTP requests, and clean up every process by pid.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { request, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import { readPid } from '../../src/master/pidfile.js';
import { ACCEPT_HANDLES } from '../../src/ipc/protocol.js';
import { alive, childrenOf, cmdline, socketInodes, tcpInodes } from './proc.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = join(ROOT, 'bin', 'tsgunicorn.js');
export const FIXTURES = join(ROOT, 'test', 'fixtures');

export function fixture(name: string): string {
  return join(FIXTURES, name);
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'tsg-test-'));
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitUntil(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

export { alive, childrenOf, cmdline, freePort, socketInodes, tcpInodes } from './proc.js';
/** The pid a pidfile names, or null. */
export { readPid as pidIn } from '../../src/master/pidfile.js';

const OURS = /tsgunicorn|worker\/main\.js/;

/** A master's worker processes (not a new master it started for an upgrade). */
export function workersOf(master: number): number[] {
  return childrenOf(master).filter((pid) => /tsgunicorn: worker|worker\/main\.js/.test(cmdline(pid)));
}

/**
 * Follows a pidfile through upgrades and kills every master and worker it saw at teardown: after
 * USR2 the new master is no child of the process the test started, once that one has exited.
 */
export function trackAll(t: ExecutionContext, pidfile: string): () => number[] {
  const seen = new Set<number>();
  const timer = setInterval(() => {
    const p = readPid(pidfile);
    if (p) { seen.add(p); for (const c of childrenOf(p)) seen.add(c); }
  }, 50);
  t.teardown(() => {
    clearInterval(timer);
    // A pid seen earlier may belong to someone else by now: only ours are killed.
    for (const p of seen) if (OURS.test(cmdline(p))) try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
  });
  return () => [...seen];
}

export interface DaemonOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** A command that execs tsgunicorn (e.g. systemd-socket-activate -l PORT). */
  readonly prefix?: readonly string[];
  /** Standard error to this descriptor instead of a pipe the helper reads. */
  readonly stderrFd?: number;
  /** Descriptors of this process passed to the daemon as fds 3, 4, ... (for fd://N). */
  readonly fds?: readonly number[];
  /** The node binary to run it with (default: this test's own). */
  readonly node?: string;
}

export class Daemon {
  readonly proc: ChildProcess;
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitCode: number | null | undefined = undefined;
  /** Every descendant seen (workers, a new master after USR2 and its workers), to kill at the end. */
  private readonly seen = new Set<number>();
  private readonly sampler: NodeJS.Timeout;

  constructor(args: readonly string[], opts: DaemonOptions = {}) {
    const command = [...(opts.prefix ?? []), opts.node ?? process.execPath, BIN, ...args];
    this.proc = spawn(command[0]!, command.slice(1), {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', opts.stderrFd ?? 'pipe', ...(opts.fds ?? [])],
    });
    this.proc.stdout!.on('data', (d: Buffer) => { this.output += d.toString(); });
    this.proc.stderr?.on('data', (d: Buffer) => { this.output += d.toString(); });
    // 'close' comes once the output pipes are drained, but processes that outlive this one (a new
    // master after USR2) share them: wait for it only briefly after 'exit'.
    const closed = new Promise<void>((resolve) => this.proc.once('close', () => resolve()));
    this.sampler = setInterval(() => this.sample(), 50);
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => {
      void Promise.race([closed, sleep(1000)]).then(() => { this.exitCode = code; resolve({ code, signal }); });
    }));
  }

  get pid(): number {
    return this.proc.pid!;
  }

  /** The master's worker processes (not a new master it started for an upgrade). */
  workers(): number[] {
    return workersOf(this.pid);
  }

  async waitForLog(re: RegExp, timeoutMs = 30000): Promise<RegExpMatchArray> {
    let m: RegExpMatchArray | null = null;
    await waitUntil(`log ${re} (output so far:\n${this.output})`, () => {
      m = re.exec(this.output);
      return m !== null || this.exitCode !== undefined;
    }, timeoutMs);
    if (!m) throw new Error(`daemon exited (${this.exitCode}) before logging ${re}:\n${this.output}`);
    return m;
  }

  /** Waits until `n` workers have reported ready since the log position `from`. */
  async waitReady(timeoutMs = 60000): Promise<void> {
    await this.waitForLog(/Ready: \d+ worker/, timeoutMs);
  }

  async waitWorkers(n: number, timeoutMs = 30000): Promise<number[]> {
    await waitUntil(`${n} workers (have ${this.workers().length})`, () => this.workers().length === n, timeoutMs);
    return this.workers();
  }

  signal(sig: NodeJS.Signals): void {
    process.kill(this.pid, sig);
  }

  private sample(): void {
    const visit = (pid: number): void => {
      for (const c of childrenOf(pid)) if (!this.seen.has(c)) { this.seen.add(c); visit(c); }
    };
    visit(this.pid);
    for (const pid of [...this.seen]) if (alive(pid)) visit(pid);
  }

  /** Kills the master and every process it started (workers, new masters and theirs), by pid. */
  kill(): void {
    this.sample();
    clearInterval(this.sampler);
    for (const pid of [this.pid, ...this.seen]) {
      // A pid seen earlier may belong to someone else by now: only ours are killed.
      if (pid !== this.pid && !OURS.test(cmdline(pid))) continue;
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
}

/** Starts a daemon and registers its cleanup with the test. */
export function start(t: ExecutionContext, args: readonly string[], opts: DaemonOptions = {}): Daemon {
  const d = new Daemon(args, opts);
  t.teardown(() => {
    d.kill();
    if (t.passed === false) t.log(d.output);
  });
  return d;
}

/**
 * Runs the command to completion (for flags that exit). One that has not exited after `timeoutMs`
 * (60 s: a loaded machine can be slow to start Node) is killed and the call fails saying so.
 */
export async function runCli(args: readonly string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const timeoutMs = opts.timeoutMs ?? 60000;
  let timedOut = false;
  const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
  // 'close', not 'exit': only then has everything the command wrote been read from its pipes.
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  clearTimeout(timer);
  if (timedOut) throw new Error(`tsgunicorn ${args.join(' ')} did not exit within ${timeoutMs} ms (output so far: ${JSON.stringify(stdout + stderr)})`);
  return { code, stdout, stderr };
}

export interface Response {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** Whether something accepts a TCP connection on 127.0.0.1:`port` (no request is sent). */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export function get(url: string, headers: Record<string, string> = {}, timeoutMs = 10000): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error('request timeout')));
    req.end();
  });
}

export interface RawAnswer {
  readonly text: string;
  /** The server closed the connection (rather than the patience running out). */
  readonly closed: boolean;
}

/** Sends raw bytes, returns what the server answers until it closes the connection (or `timeoutMs`). */
export function rawHttp(port: number, bytes: string | Buffer, timeoutMs = 10000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    let timedOut = false;
    s.setEncoding('latin1');
    s.on('data', (d: string) => { text += d; });
    s.on('close', () => resolve({ text, closed: !timedOut }));
    s.on('error', (e) => { if (!text) reject(e); });
    s.setTimeout(timeoutMs, () => { timedOut = true; s.destroy(); });
    s.write(bytes);
  });
}

/**
 * With reuse_port: the port has `n` listening sockets and each of these workers holds exactly one
 * of them, a different one (no stray copies of the others), as the ACCEPT_HANDLES descriptors it
 * accepts on.
 */
export function assertOneSocketPerWorker(t: ExecutionContext, workers: readonly number[], port: number, n: number): void {
  const listening = tcpInodes(port, 'listen');
  t.is(listening.length, n, `${n} listening sockets on the port`);
  const own = workers.map((w) => socketInodes(w).filter((i) => listening.includes(i)));
  t.deepEqual(own.map((o) => new Set(o).size), workers.map(() => 1), 'each worker holds one listening socket');
  t.deepEqual(own.map((o) => o.length), workers.map(() => ACCEPT_HANDLES), `each through ${ACCEPT_HANDLES} descriptors`);
  t.is(new Set(own.flat()).size, workers.length, 'no two workers hold the same one');
}

/**
 * Opens `n` fresh connections one after another; resolves with how many were answered within 5 s
 * each (one that waits on a socket nobody accepts on never is).
 */
export async function answered(port: number, n = 30): Promise<number> {
  let ok = 0;
  for (let i = 0; i < n; i++) {
    if ((await get(`http://127.0.0.1:${port}/`, {}, 5000).catch(() => null))?.status === 200) ok++;
  }
  return ok;
}
