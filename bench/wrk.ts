// The load generator: wrk, run as its own process with keep-alive connections, reporting through
// a Lua done() hook as one JSON line (bench/wrk/*.lua).

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './procs.js';

const run = promisify(execFile);

export interface WrkOptions {
  readonly port: number;
  readonly seconds: number;
  readonly connections: number;
  readonly threads: number;
}

export interface WrkResult {
  readonly requests: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  readonly maxMs: number;
  /** Socket errors, timeouts and non-2xx/3xx responses. */
  readonly errors: number;
}

function args(o: WrkOptions, script: string): string[] {
  return ['-t', String(o.threads), '-c', String(o.connections), '-d', `${Math.max(1, Math.round(o.seconds))}s`, '--latency', '-s', join(ROOT, 'bench', 'wrk', script), `http://127.0.0.1:${o.port}/`];
}

async function wrk(o: WrkOptions, script: string): Promise<Record<string, unknown>> {
  const { stdout } = await run('wrk', args(o, script), { timeout: (o.seconds + 30) * 1000, maxBuffer: 1 << 20 });
  const line = stdout.split('\n').reverse().find((l) => l.startsWith('{'));
  if (!line) throw new Error(`wrk printed no summary:\n${stdout}`);
  return JSON.parse(line) as Record<string, unknown>;
}

/** A throughput and latency run. */
export async function load(o: WrkOptions): Promise<WrkResult> {
  const r = await wrk(o, 'report.lua') as { requests: number; duration_us: number; errors: Record<string, number>; p50_us: number; p90_us: number; p99_us: number; mean_us: number; max_us: number };
  return {
    requests: r.requests,
    rps: r.requests / (r.duration_us / 1e6),
    p50Ms: r.p50_us / 1000,
    p90Ms: r.p90_us / 1000,
    p99Ms: r.p99_us / 1000,
    meanMs: r.mean_us / 1000,
    maxMs: r.max_us / 1000,
    errors: Object.values(r.errors).reduce((a, b) => a + b, 0),
  };
}

/** A balance run: requests answered by each worker pid (from the X-Worker header). */
export async function countWorkers(o: WrkOptions): Promise<Record<string, number>> {
  const r = await wrk(o, 'count-workers.lua') as { workers: Record<string, number> };
  return r.workers;
}

export async function wrkVersion(): Promise<string> {
  // `wrk -v` prints its version and usage, then exits 1.
  const out = await run('wrk', ['-v']).then((r) => r.stdout, (e: { stdout?: string }) => e.stdout ?? '');
  return /^wrk (\S+)/m.exec(out)?.[1] ?? 'unknown';
}
