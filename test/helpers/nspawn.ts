// Helpers for the end-to-end package test: build the Debian package (cached by the content of
// its sources), boot a cached Debian 13 root with `systemd-nspawn --boot` (real systemd as the
// container's PID 1, a throw-away overlay over the cached root, a private network with only
// loopback), and run commands in it with `nsenter` into its PID 1's namespaces.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, sleep, waitUntil } from './daemon.js';
import { childrenOf, comm } from './proc.js';

export const CACHE = process.env.TSG_CACHE ?? '/var/cache/tsgunicorn-test';
export const SUITE = process.env.TSG_SUITE ?? 'trixie';

/** Why the package test cannot run here, or null when it can. */
export function cannotRunReason(): string | null {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root (debootstrap, systemd-nspawn and nsenter need root)';
  for (const tool of ['systemd-nspawn', 'nsenter']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `no ${tool} (apt-get install systemd-container util-linux)`;
  }
  return null;
}

export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion, collecting its output. */
export function run(cmd: string, args: readonly string[], opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.stdin.on('error', () => { /* the command exited without reading its input */ });
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.once('error', (e) => { clearTimeout(timer); reject(e); });
    child.once('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

// ---------------------------------------------------------------------------------------------
// The package, built by packaging/build-deb.sh in the trixie build root

/** A key for everything a build depends on: the sources as git sees them, and the build root. */
function buildKey(version: string): string {
  const files = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' });
  if (files.status !== 0) throw new Error(`git ls-files failed: ${files.stderr}`);
  const h = createHash('sha256');
  for (const f of files.stdout.split('\0').filter(Boolean).sort()) {
    if (f.startsWith('.ci/') || f.startsWith('test/') || !existsSync(join(ROOT, f))) continue;
    h.update(f).update('\0');
    try { h.update(readFileSync(join(ROOT, f))); } catch { /* a directory (submodule) or unreadable */ }
    h.update('\0');
  }
  const marker = join(CACHE, `${SUITE}-build`, '.tsgunicorn-root-ready');
  h.update(existsSync(marker) ? readFileSync(marker) : 'no-root');
  h.update(version);
  return h.digest('hex').slice(0, 16);
}

/** Forgets packages built more than three days ago. */
function pruneDebCache(dir: string): void {
  if (!existsSync(dir)) return;
  const old = Date.now() - 3 * 24 * 3600_000;
  for (const entry of readdirSync(dir)) {
    try {
      if (statSync(join(dir, entry)).mtimeMs < old) rmSync(join(dir, entry), { recursive: true, force: true });
    } catch { /* raced with another run */ }
  }
}

export interface BuiltDeb {
  readonly deb: string;
  readonly lintian: string;
  readonly cached: boolean;
  readonly log: string;
}

/**
 * Builds the package (or reuses one built from identical sources and build root), optionally as
 * another version. Throws with the build's output when the build or lintian fails.
 */
export async function buildDeb(version: string | null, timeoutMs: number): Promise<BuiltDeb> {
  // make sure the build root exists before computing the key (the key includes its marker)
  const ensure = await run('bash', ['-c', `. packaging/trixie-root.sh && ensure_root build`], { timeoutMs });
  if (ensure.code !== 0) throw new Error(`could not make the ${SUITE} build root:\n${ensure.stderr}`);
  const key = buildKey(version ?? '');
  pruneDebCache(join(CACHE, 'debs'));
  const out = join(CACHE, 'debs', key);
  const done = join(out, 'ok');
  const pick = (): string => {
    const debs = readdirSync(out).filter((f) => f.endsWith('.deb') && !f.includes('-dbgsym_'));
    if (debs.length !== 1) throw new Error(`expected one .deb in ${out}, found ${debs.join(', ') || 'none'}`);
    return join(out, debs[0]!);
  };
  if (existsSync(done)) {
    const now = new Date();
    utimesSync(out, now, now);
    return { deb: pick(), lintian: readFileSync(join(out, 'lintian.txt'), 'utf8'), cached: true, log: readFileSync(done, 'utf8') };
  }
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const args = ['packaging/build-deb.sh', '--out', out];
  if (version) args.push('--version', version);
  const r = await run('bash', args, { timeoutMs });
  const log = `${r.stdout}\n${r.stderr}`;
  if (r.code !== 0) throw new Error(`packaging/build-deb.sh ${args.slice(1).join(' ')} exited ${r.code}:\n${log.slice(-6000)}`);
  writeFileSync(done, log.slice(-20000));
  return { deb: pick(), lintian: readFileSync(join(out, 'lintian.txt'), 'utf8'), cached: false, log };
}

// ---------------------------------------------------------------------------------------------
// The booted container

export class Container {
  private nspawn: ChildProcess | null = null;
  leader = 0;
  readonly logFile: string;

  private constructor(readonly name: string, readonly root: string, private readonly workDir: string) {
    this.logFile = join(workDir, 'console.log');
  }

  /** Makes (or reuses) the bootable root and boots it; `binds` are host:container read-only binds. */
  static async boot(binds: Record<string, string>, timeoutMs = 120_000): Promise<Container> {
    const ensure = await run('bash', ['-c', `. packaging/trixie-root.sh && ensure_root systemd`], { timeoutMs: 900_000 });
    if (ensure.code !== 0) throw new Error(`could not make the ${SUITE} systemd root:\n${ensure.stderr}`);
    const root = ensure.stdout.trim();
    const workDir = mkdtempSync('/var/tmp/tsgunicorn-e2e-');
    const c = new Container(`tsg-e2e-${process.pid}`, root, workDir);
    const args = [
      '--quiet', '--boot', '--register=no', '--keep-unit', '--volatile=overlay', '--private-network',
      `--machine=${c.name}`, '-D', root, '--console=pipe',
      ...Object.entries(binds).map(([host, inside]) => `--bind-ro=${host}:${inside}`),
    ];
    const log = openSync(c.logFile, 'a');
    // in a cgroup of its own (see tsg_nspawn_exec in packaging/trixie-root.sh)
    c.nspawn = spawn('bash', ['-c', '. packaging/trixie-root.sh && tsg_nspawn_exec "$0" "$@"', c.name, ...args], {
      cwd: ROOT,
      env: process.env,
      stdio: ['ignore', log, log],
    });
    const nspawnPid = c.nspawn.pid!;
    let exited = false;
    c.nspawn.once('exit', () => { exited = true; });
    // never leave a container behind, even when the test process ends without shutdown()
    const reap = (): void => c.kill();
    process.once('exit', reap);
    c.nspawn.once('exit', () => process.removeListener('exit', reap));
    try {
      // the container's init: nspawn's child once it runs systemd (before that, nspawn itself
      // may still be the bash that sets its cgroup up, with short-lived children of its own)
      await waitUntil('the container to start its init', () => {
        if (exited) throw new Error(`systemd-nspawn exited:\n${c.console()}`);
        if (comm(nspawnPid) !== 'systemd-nspawn') return false;
        c.leader = childrenOf(nspawnPid).find((pid) => comm(pid) === 'systemd') ?? 0;
        return c.leader !== 0;
      }, timeoutMs);
      // wait for systemd in the container to finish booting
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const r = await c.exec(['systemctl', 'is-system-running', '--wait'], { timeoutMs: Math.max(1000, deadline - Date.now()) });
        const state = r.stdout.trim();
        if (state === 'running' || state === 'degraded') break;
        if (Date.now() > deadline) throw new Error(`container did not boot (state '${state}' ${r.stderr.trim()}):\n${c.console()}`);
        await sleep(250);
      }
    } catch (e) {
      await c.shutdown();
      throw e;
    }
    return c;
  }

  /** The last lines of the container's console. */
  console(lines = 60): string {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** Runs a command inside the container (all of PID 1's namespaces). */
  exec(argv: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<Run> {
    return run('nsenter', ['--target', String(this.leader), '--all', '--', ...argv], {
      ...opts,
      env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', HOME: '/root', TERM: 'dumb', SYSTEMD_COLORS: '0', SYSTEMD_PAGER: '' },
    });
  }

  /** Runs a shell script inside the container; throws (with its output) when it fails. */
  async sh(script: string, opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
    const r = await this.exec(['/bin/sh', '-ec', script], opts);
    if (r.code !== 0) throw new Error(`in the container, exit ${r.code}: ${script}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  /** Like sh(), but returns the result whatever the exit status. */
  shr(script: string, opts: { input?: string; timeoutMs?: number } = {}): Promise<Run> {
    return this.exec(['/bin/sh', '-c', script], opts);
  }

  /** A path inside the container, as the host sees it. */
  path(p: string): string {
    return `/proc/${this.leader}/root${p}`;
  }

  /** One property of a unit (`systemctl show -P`). */
  async prop(unit: string, property: string): Promise<string> {
    return (await this.sh(`systemctl show --property=${property} --value ${unit}`)).trim();
  }

  /** Starts a keep-alive load on URL from inside the container's network namespace. */
  load(url: string, connections = 20, fresh = 0): NetnsLoad {
    return new NetnsLoad(this.leader, url, connections, fresh);
  }

  /** Powers the container off (systemd in it shuts down) and removes the work directory. */
  async shutdown(): Promise<void> {
    const p = this.nspawn;
    if (p && p.exitCode === null && p.signalCode === null) {
      const gone = new Promise<void>((resolve) => p.once('exit', () => resolve()));
      p.kill('SIGTERM'); // nspawn asks the container's systemd to power off
      const timer = setTimeout(() => this.kill(), 20_000);
      await gone;
      clearTimeout(timer);
    }
    rmSync(this.workDir, { recursive: true, force: true });
    // the (now empty) cgroups nspawn and the container's systemd left
    spawnSync('bash', ['-c', `. packaging/trixie-root.sh && tsg_cgroup_remove ${this.name}`], { cwd: ROOT });
  }

  /** Kills the container at once: its init (which ends its PID namespace) and nspawn. */
  kill(): void {
    for (const pid of [this.leader, this.nspawn?.pid ?? 0]) {
      if (pid > 0) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
}

export interface NetnsLoadResult {
  readonly ok: number;
  readonly failed: number;
  readonly errors: Record<string, number>;
  readonly workers: string[];
}

/** test/helpers/netns-load.ts run by the host's node inside the container's network namespace. */
export class NetnsLoad {
  private readonly proc: ChildProcess;
  private out = '';
  private err = '';
  served = 0;
  private readonly done: Promise<void>;

  constructor(leader: number, url: string, connections: number, fresh = 0) {
    const script = join(ROOT, 'dist', 'test', 'helpers', 'netns-load.js');
    this.proc = spawn('nsenter', [`--net=/proc/${leader}/ns/net`, '--', process.execPath, script, url, String(connections), String(fresh)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc.stdout!.on('data', (d: Buffer) => {
      this.out += d.toString();
      const lines = this.out.split('\n');
      for (let i = lines.length - 1; i >= 0; i--) {
        const m = /^served (\d+)$/.exec(lines[i]!);
        if (m) { this.served = Number(m[1]); break; }
      }
      if (this.out.length > 100_000 && !this.out.includes('result ')) this.out = this.out.slice(-1000);
    });
    this.proc.stderr!.on('data', (d: Buffer) => { this.err += d.toString(); });
    this.done = new Promise((resolve) => this.proc.once('exit', () => resolve()));
  }

  /** Waits until `n` more requests than now have been served. */
  async more(n: number, what: string, timeoutMs = 30_000): Promise<void> {
    const target = this.served + n;
    await waitUntil(`${n} more requests ${what} (served ${this.served}; ${this.err.trim()})`, () => this.served >= target, timeoutMs);
  }

  async stop(): Promise<NetnsLoadResult> {
    this.proc.kill('SIGTERM');
    await this.done;
    const m = /result (\{.*\})/.exec(this.out);
    if (!m) throw new Error(`the load process printed no result (stderr: ${this.err})`);
    return JSON.parse(m[1]!) as NetnsLoadResult;
  }

  kill(): void {
    try { this.proc.kill('SIGKILL'); } catch { /* gone */ }
  }
}
