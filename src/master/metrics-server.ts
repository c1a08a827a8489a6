// The master's own HTTP endpoint (metrics_bind): Prometheus metrics at /metrics and the load
// balancers' health check at /health. On each scrape it asks every worker for its registry over IPC
// and sums them with prom-client's AggregatorRegistry, adding the master's own counters (worker
// restarts, reloads, upgrades). The last snapshot of each worker that exited is kept, so request
// counters never go backwards when workers are replaced. /health asks no worker: the master knows.

import { createServer, type Server } from 'node:http';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import type { BindAddress } from '../sockets/address.js';
import type { MetricsSnapshot } from '../ipc/protocol.js';
import type { Health } from './health.js';

const ASK_TIMEOUT_MS = 1000;

export interface MetricsSource {
  /** Snapshots of the live workers (each answering within a timeout, or left out). */
  workerSnapshots(timeoutMs: number): Promise<MetricsSnapshot[]>;
  workerCount(): number;
  /** What is pending on disk: node, tsgunicorn, app (master/on-disk.ts). */
  pending(): readonly { readonly what: string }[];
  health(): Health;
}

const HANDOFF_RETRY_MS = 5000;

export class MasterMetrics {
  private readonly registry = new Registry();
  readonly restarts = new Counter({ name: 'tsgunicorn_worker_restarts_total', help: 'Workers that exited unexpectedly and were replaced', registers: [this.registry] });
  readonly reloads = new Counter({ name: 'tsgunicorn_reloads_total', help: 'Reloads (HUP) completed', registers: [this.registry] });
  readonly upgrades = new Counter({ name: 'tsgunicorn_upgrades_total', help: 'Upgrades on the fly (USR2) started by this master that completed', registers: [this.registry] });
  /** Sum of the final snapshots of workers that are gone. */
  private retired: MetricsSnapshot = [];
  private server: Server | null = null;
  /** Closed (the master stops or handed off): a listen still being retried gives up. */
  private closed = false;

  constructor(private readonly source: MetricsSource) {
    new Gauge({ name: 'tsgunicorn_workers', help: 'Worker processes alive', registers: [this.registry], collect() { this.set(source.workerCount()); } });
    new Gauge({
      name: 'tsgunicorn_upgrade_pending',
      help: 'Whether what runs differs from what is on disk: node or tsgunicorn (USR2 applies it), app (HUP applies it)',
      labelNames: ['what'],
      registers: [this.registry],
      collect() {
        const now = new Set(source.pending().map((p) => p.what));
        for (const what of ['node', 'tsgunicorn', 'app']) this.set({ what }, now.has(what) ? 1 : 0);
      },
    });
  }

  /** Keeps a departed worker's last numbers (summed with the others already gone). */
  async retire(snapshot: MetricsSnapshot): Promise<void> {
    const sum = AggregatorRegistry.aggregate([this.retired, snapshot]);
    this.retired = (await sum.getMetricsAsJSON()) as unknown as MetricsSnapshot;
  }

  async render(): Promise<string> {
    const live = await this.source.workerSnapshots(ASK_TIMEOUT_MS);
    const own = (await this.registry.getMetricsAsJSON()) as unknown as MetricsSnapshot;
    return AggregatorRegistry.aggregate([...live, this.retired, own]).metrics();
  }

  /**
   * Serves /metrics and /health at `addr`. After a handoff (USR2) an address still in use is tried
   * again for up to HANDOFF_RETRY_MS: the old master has closed it, but its descriptor closes a
   * moment later (before, the new master logged `metrics are off` and a balancer's health checks
   * on it failed from then on).
   */
  async listen(addr: BindAddress, afterHandoff = false): Promise<void> {
    const deadline = Date.now() + (afterHandoff ? HANDOFF_RETRY_MS : 0);
    for (;;) {
      try {
        return await this.listenOnce(addr);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || Date.now() >= deadline || this.closed) throw err;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  private listenOnce(addr: BindAddress): Promise<void> {
    this.server ??= createServer((req, res) => {
      if (req.url === '/health' && (req.method === 'GET' || req.method === 'HEAD')) {
        const health = this.source.health();
        res.writeHead(health.status === 'serving' ? 200 : 503, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
        res.end(`${JSON.stringify(health)}\n`);
        return;
      }
      if (req.url !== '/metrics') { res.writeHead(404).end('see /metrics and /health\n'); return; }
      this.render().then((text) => {
        res.writeHead(200, { 'Content-Type': this.registry.contentType });
        res.end(text);
      }, (err: Error) => { res.writeHead(500).end(`${err.message}\n`); });
    });
    const server = this.server;
    return new Promise((resolve, reject) => {
      const failed = (err: Error): void => { server.off('listening', done); reject(err); };
      const done = (): void => { server.off('error', failed); resolve(); };
      server.once('error', failed);
      server.once('listening', done);
      if (addr.kind === 'unix') server.listen(addr.path);
      else if (addr.kind === 'tcp') server.listen(addr.port, addr.host);
      else server.listen({ fd: addr.fd });
    });
  }

  close(): void {
    this.closed = true;
    this.server?.close();
  }
}
