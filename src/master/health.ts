// What GET /health on metrics_bind answers (load balancers' health checks): 200 while the instance
// serves with enough workers, 503 while it boots, is degraded, in lame duck or stopping.

import type { MasterSnapshot } from '../systemd/service-status.js';

export interface Health {
  /** `serving` (200), or why not (503): booting, degraded, lame duck, stopping. */
  readonly status: string;
  /** Workers serving now, and how many must for `serving` (health_min_workers, or all; at least one). */
  readonly ready: number;
  readonly needed: number;
}

export function healthOf(master: MasterSnapshot, ready: number, minWorkers: number): Health {
  const needed = Math.max(1, minWorkers || master.target);
  return { status: master.phase !== 'running' ? master.phase : ready < needed ? 'degraded' : 'serving', ready, needed };
}
