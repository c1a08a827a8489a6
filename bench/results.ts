// What a bench run records (written as JSON next to the report, so the report can be rendered
// again without running), and the statistics the report takes from it.

import type { ContenderId } from './contenders.js';
import type { Pm2ReloadResult, SignalResult } from './lifecycle.js';
import type { Range } from './svg.js';

export type AppId = 'hello' | 'json';

export interface Settings {
  readonly rounds: number;
  /** The worker count of the main comparison. */
  readonly workers: number;
  /** Other worker counts measured with the hello app. */
  readonly scaleWorkers: readonly number[];
  readonly readyWorkers: readonly number[];
  readonly seconds: number;
  readonly scaleSeconds: number;
  readonly warmupSeconds: number;
  readonly balanceSeconds: number;
  readonly connections: number;
  readonly threads: number;
}

export interface LoadSample {
  readonly round: number;
  readonly app: AppId;
  readonly contender: ContenderId;
  readonly workers: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly errors: number;
  /** CPU time the server's processes (master included) used per request during the measured run. */
  readonly cpuUsPerRequest: number;
  readonly masterRssMiB: number | null;
  readonly workerRssMiB: readonly number[];
  /** Requests each worker answered in the balance run (pid → count, 0 for a worker never seen). */
  readonly balance: Readonly<Record<string, number>> | null;
  /** Connections each worker held halfway through the balance run (absent in runs before it was counted). */
  readonly connections?: Readonly<Record<string, number>> | null;
}

export interface ReadySample {
  readonly round: number;
  readonly contender: ContenderId;
  readonly workers: number;
  readonly readyMs: number;
  readonly firstMs: number;
}

export interface Meta {
  readonly date: string;
  readonly command: string;
  readonly settings: Settings;
  readonly machine: { readonly nproc: number; readonly cpu: string; readonly kernel: string; readonly memGiB: number };
  readonly versions: { readonly node: string; readonly npm: string; readonly wrk: string; readonly pm2: string; readonly tsgunicorn: string; readonly commit: string; readonly srcChanges: string };
  readonly loadavg: { start: string; end: string; rounds: string[] };
  readonly quiet: { readonly threshold: number; readonly waitedS: number; readonly reached: boolean };
  /** CPUs of the load generator and of the servers (absent in runs before placement existed). */
  readonly placement?: { readonly load: string; readonly servers: string; readonly all: string } | null;
  /** Environment variables the servers did not get. */
  readonly unsetEnv?: readonly string[];
  durationS: number;
}

export interface Results {
  readonly meta: Meta;
  readonly load: LoadSample[];
  readonly ready: ReadySample[];
  readonly hup: (SignalResult & { round: number })[];
  readonly usr2: (SignalResult & { round: number })[];
  readonly pm2Reload: (Pm2ReloadResult & { round: number })[];
  /** Cells that failed, with why. */
  readonly failures: string[];
}

/** The median, NaNs left out (Infinity, a worker without requests, counts as the largest value). */
export function median(xs: readonly number[]): number {
  const v = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

export function range(xs: readonly number[]): Range | null {
  const v = xs.filter((x) => Number.isFinite(x));
  return v.length === 0 ? null : { median: median(v), min: Math.min(...v), max: Math.max(...v) };
}

/** max/min of the requests (or connections) per worker (Infinity when a worker had none). */
export function imbalance(b: Readonly<Record<string, number>>): number {
  const v = Object.values(b);
  if (v.length < 2) return 1;
  const min = Math.min(...v);
  return min === 0 ? Infinity : Math.max(...v) / min;
}
