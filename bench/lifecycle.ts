// Reload and upgrade timings under a light keep-alive load: tsgunicorn's HUP (signal → new
// workers serving, → old workers gone) and USR2 (signal → new master serving, → old master gone),
// and `pm2 reload` for comparison. The load counts failed requests as it goes.

import { Agent, request } from 'node:http';
import type { Contender, Running } from './contenders.js';
import { alive, freePort, waitUntil } from './procs.js';

/** `connections` keep-alive clients sending requests back to back. */
export class Poller {
  private running = true;
  ok = 0;
  failed = 0;
  private readonly agent: Agent;
  private readonly loops: Promise<void>[];
  /** When each worker pid answered first. */
  readonly firstSeen = new Map<string, number>();

  constructor(private readonly port: number, connections = 4) {
    this.agent = new Agent({ keepAlive: true, maxSockets: connections });
    this.loops = Array.from({ length: connections }, () => this.loop());
  }

  private one(): Promise<void> {
    return new Promise((resolve) => {
      const req = request({ host: '127.0.0.1', port: this.port, path: '/', agent: this.agent }, (res) => {
        res.resume();
        res.on('end', () => {
          const w = String(res.headers['x-worker'] ?? '');
          if (!this.firstSeen.has(w)) this.firstSeen.set(w, performance.now());
          if (res.statusCode === 200) this.ok++; else this.failed++;
          resolve();
        });
        res.on('error', () => { this.failed++; resolve(); });
      });
      req.on('error', () => { this.failed++; resolve(); });
      req.setTimeout(5000, () => req.destroy());
      req.end();
    });
  }

  private async loop(): Promise<void> {
    while (this.running) await this.one();
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.agent.destroy();
  }
}

/** A reload (HUP) or an upgrade (USR2), timed from the signal. */
export interface SignalResult {
  /** Signal → the new workers (HUP) or the new master (USR2) serving, as the log says. */
  readonly servingMs: number;
  /** Signal → every old worker (HUP) or the old master (USR2) has exited. */
  readonly oldGoneMs: number;
  readonly failed: number;
  readonly ok: number;
}

export interface Pm2ReloadResult {
  /** `pm2 reload` started → returned. */
  readonly reloadMs: number;
  readonly failed: number;
  readonly ok: number;
}

const count = (s: string, re: RegExp): number => (s.match(re) ?? []).length;

/**
 * Sends `signal` to a tsgunicorn master under the poller's load and times it until `serving`
 * appears once more in the log and until the processes `old` returns (taken just before the
 * signal) have all exited.
 */
async function measureSignal(tsg: Contender, app: string, workers: number, signal: 'SIGHUP' | 'SIGUSR2', serving: RegExp, old: (r: Running) => number[]): Promise<SignalResult> {
  const port = await freePort();
  const { running } = await tsg.start(app, workers, port);
  const poller = new Poller(port);
  try {
    await waitUntil('load to start', () => poller.ok > 50);
    const leaving = old(running);
    const before = count(running.output(), serving);
    const t0 = performance.now();
    process.kill(running.master!, signal);
    const served = await waitUntil(`${signal}: ${serving.source}`, () => count(running.output(), serving) > before, 30000, 2);
    const gone = await waitUntil(`${signal}: the old processes gone`, () => leaving.every((p) => !alive(p)), 60000, 2);
    await poller.stop();
    return { servingMs: served - t0, oldGoneMs: gone - t0, failed: poller.failed, ok: poller.ok };
  } finally {
    await poller.stop();
    await running.stop();
  }
}

/** HUP: the master logs `Reloaded:` once the new workers serve; then the old workers exit. */
export function measureHup(tsg: Contender, app: string, workers: number): Promise<SignalResult> {
  return measureSignal(tsg, app, workers, 'SIGHUP', /Reloaded: /g, (r) => r.workers());
}

/** USR2: the new master logs `Upgrade complete` once it took over; then the old master exits. */
export function measureUsr2(tsg: Contender, app: string, workers: number): Promise<SignalResult> {
  return measureSignal(tsg, app, workers, 'SIGUSR2', /Upgrade complete/g, (r) => [r.master!]);
}

export async function measurePm2Reload(pm2: Contender, app: string, workers: number): Promise<Pm2ReloadResult> {
  const port = await freePort();
  const { running } = await pm2.start(app, workers, port);
  const poller = new Poller(port);
  try {
    await waitUntil('load to start', () => poller.ok > 50);
    const t0 = performance.now();
    await running.pm2!(['reload', 'bench']);
    const t1 = performance.now();
    await poller.stop();
    return { reloadMs: t1 - t0, failed: poller.failed, ok: poller.ok };
  } finally {
    await poller.stop();
    await running.stop();
  }
}
