// What /proc says about a process: state, parent, CPU time, command line. Shared by the tests and the
// benchmarks, which both find a master's workers and clean up by pid.

import { readFileSync, readdirSync } from 'node:fs';

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

export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}
