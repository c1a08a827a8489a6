// What master and workers tell each other. The master starts a worker with its settings in the
// environment (WORKER_ENV); the worker answers over Node's IPC channel. Stop requests travel as
// signals (TERM graceful, QUIT quick), so they work even when the channel is busy.

import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { WorkerSettings } from '../config/settings.js';

export const WORKER_ENV = 'TSGUNICORN_WORKER';

/**
 * How many descriptors of each listening socket a worker gets, and accepts on: libuv accepts one
 * connection per handle per event-loop iteration (worker/accept.ts).
 */
export const ACCEPT_HANDLES = 8;

/** A worker's prom-client registry as JSON: what it sends the master to add up. */
export type MetricsSnapshot = MetricObjectWithValues<MetricValue<string>>[];

export interface WorkerInit {
  readonly settings: WorkerSettings;
  /**
   * Listening descriptors in the worker, from 3 upwards: for each socket, ACCEPT_HANDLES
   * descriptors of it (worker/accept.ts).
   */
  readonly fds: number[][];
  /** Inode numbers of all the master's listening sockets: copies of them are closed at start. */
  readonly listenerInodes: string[];
  /** The worker's age: a counter the master increments for each worker it starts. */
  readonly age: number;
}

export type WorkerMessage =
  | { readonly t: 'ready' }
  | { readonly t: 'hb'; readonly requests: number }
  | { readonly t: 'recycle'; readonly reason: string }
  /** Told to drain, it has closed its listeners: no new connection reaches it. */
  | { readonly t: 'closed' }
  /** Its metrics registry, asked for by `id`, or `final` just before a graceful exit. */
  | { readonly t: 'metrics'; readonly id: number; readonly data: MetricsSnapshot; readonly final: boolean };

export type MasterMessage =
  | { readonly t: 'metrics'; readonly id: number }
  /** The master is in lame duck (lame_duck): mark every response `Connection: close`, keep accepting. */
  | { readonly t: 'lame-duck' };

/** Boot failures are a protocol (Gunicorn's): the master tells them apart by exit code. */
export const WORKER_EXIT = { BOOT_ERROR: 3, APP_LOAD_ERROR: 4 } as const;
