// What the tests and the benchmarks both need about processes: a free port to start a server on,
// what /proc says about a process (state, parent, CPU time, name, command line, sockets), to find
// a master's workers and clean up by pid, and the kernel's table of TCP sockets on a port.

import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function stat(pid: number): { state: string; ppid: number; cpuMs: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat(5) (utime, stime), in clock ticks of 10 ms (CLK_TCK 100 on Linux).
    return { state: f[0]!, ppid: Number(f[1]), cpuMs: (Number(f[11]) + Number(f[12])) * 10 };
  } catch {
    return null;
  }
}

/** CPU time (user + system) a process has used so far, in milliseconds (NaN when gone). */
export function cpuMs(pid: number): number {
  return stat(pid)?.cpuMs ?? NaN;
}

/** Is this pid alive (and not a zombie)? */
export function alive(pid: number): boolean {
  const s = stat(pid);
  return s !== null && s.state !== 'Z';
}

/** Live children of a process, sorted. */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const s = stat(Number(entry));
    if (s && s.ppid === pid && s.state !== 'Z') out.push(Number(entry));
  }
  return out.sort((a, b) => a - b);
}

/** The process's name (comm: the executable's, at most 15 characters), or '' when it is gone. */
export function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

/** Inode numbers of the sockets a process holds. */
export function socketInodes(pid: number): string[] {
  const out: string[] = [];
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) out.push(m[1]!);
      } catch { /* closed meanwhile */ }
    }
  } catch { /* gone */ }
  return out;
}

/** TCP sockets whose local port is `port`, in state LISTEN (`0A`) or ESTABLISHED (`01`): their inodes. */
export function tcpInodes(port: number, state: 'listen' | 'established'): string[] {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const st = state === 'listen' ? '0A' : '01';
  return ['/proc/net/tcp', '/proc/net/tcp6'].flatMap((f) => readFileSync(f, 'utf8').split('\n').slice(1))
    .map((l) => l.trim().split(/\s+/))
    .filter((c) => c[3] === st && c[1]?.endsWith(`:${hex}`))
    .map((c) => c[9]!);
}

/** Inodes of every listening socket on the machine: TCP (state 0A) and unix (__SO_ACCEPTCON). */
export function listeningInodes(): Set<string> {
  const rows = (f: string): string[][] => readFileSync(f, 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/));
  const tcp = ['/proc/net/tcp', '/proc/net/tcp6'].flatMap(rows).filter((c) => c[3] === '0A').map((c) => c[9]!);
  const unix = rows('/proc/net/unix').filter((c) => c[3] === '00010000').map((c) => c[6]!);
  return new Set([...tcp, ...unix]);
}

/** The processes that hold any of these sockets. */
export function holdersOf(inodes: ReadonlySet<string>): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (/^\d+$/.test(entry) && socketInodes(Number(entry)).some((i) => inodes.has(i))) out.push(Number(entry));
  }
  return out.sort((a, b) => a - b);
}

/** How many descriptors a process has open (NaN when it is gone). */
export function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}
