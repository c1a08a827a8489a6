// Per-worker request metrics for the Prometheus endpoint (metrics_bind). Each worker counts into
// its own prom-client registry; the master gathers the registries over IPC and adds them up.
// Nothing here is loaded or runs per request unless metrics_bind is set.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Histogram, Registry } from 'prom-client';
import type { MetricsSnapshot } from '../ipc/protocol.js';

export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: 'tsgunicorn_http_requests_total',
    help: 'HTTP requests answered, by status class and protocol (HTTP/1.0, HTTP/1.1, HTTP/2.0)',
    labelNames: ['status_class', 'protocol'],
    registers: [this.registry],
  });
  private readonly duration = new Histogram({
    name: 'tsgunicorn_http_request_duration_seconds',
    help: 'Time from the request to the end of its response',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  private readonly proxyRejections = new Counter({
    name: 'tsgunicorn_proxy_protocol_rejected_total',
    help: 'Connections closed before HTTP (proxy_protocol): a peer not in proxy_allow_ips, a malformed header, or none within header_timeout',
    labelNames: ['reason'],
    registers: [this.registry],
  });

  proxyRejected(reason: string): void {
    this.proxyRejections.inc({ reason });
  }

  /** Call when a request arrives; records it when its response finishes. */
  observe(req: IncomingMessage, res: ServerResponse): void {
    const start = process.hrtime.bigint();
    res.once('finish', () => {
      this.requests.inc({ status_class: `${Math.floor(res.statusCode / 100)}xx`, protocol: `HTTP/${req.httpVersion}` });
      this.duration.observe(Number(process.hrtime.bigint() - start) / 1e9);
    });
  }

  snapshot(): Promise<MetricsSnapshot> {
    return this.registry.getMetricsAsJSON() as Promise<MetricsSnapshot>;
  }
}
