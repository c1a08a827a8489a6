// The deploy bench's load generator, a process of its own (forked by bench/deploys.ts, so that its
// CPU is not the bench's and a busy bench never delays a request). Node's client: a request is
// never retried, and each failure is counted by kind. The bench names the current segment
// (`reload:deploy`, `reload:steady`, ...); each request is counted, with its latency, in the
// segment it started in. Messages: {t:'segment', name} (acknowledged with {t:'segment'}) and
// {t:'stop'} in, {t:'report', ...} out.

import { Agent, request, type RequestOptions } from 'node:http';
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';

export type Shape = 'keepalive' | 'fresh' | 'mix' | 'cpu';

export interface LoadSpec {
  readonly port: number;
  /** Concurrent request loops: keep-alive connections, or loops of one request per new connection. */
  readonly connections: number;
  readonly shape: Shape;
  /** Count the connections and requests each worker (its X-Worker) answered. */
  readonly tally?: boolean;
}

export const FAILURE_KINDS = ['refused', 'reset', '5xx', 'timeout', 'other'] as const;
export type FailureKind = (typeof FAILURE_KINDS)[number];

export interface SegmentReport {
  readonly ok: number;
  readonly failed: Record<FailureKind, number>;
  /** Latency of answered requests (but GET /slow), in ms. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** With `tally`: by X-Worker, the connections (their first answer) and requests it answered. */
  readonly byWorker?: Record<string, { connections: number; requests: number }>;
}

export type LoadReport = Record<string, SegmentReport>;

/**
 * The mix: 10 % slow requests (2 s), 45 % POSTs with a 4 KiB body, the rest plain GETs. The CPU
 * shape: one request per new connection, 2 % of them GET /busy (50 ms of the worker's CPU).
 */
const BODY = Buffer.alloc(4096, 'x');
const TIMEOUT_MS = 15_000;

class Segment {
  ok = 0;
  readonly failed: Record<FailureKind, number> = { refused: 0, reset: 0, '5xx': 0, timeout: 0, other: 0 };
  readonly latency: RecordableHistogram = createHistogram();
  readonly byWorker = new Map<string, { connections: number; requests: number }>();

  answered(worker: string, newConnection: boolean): void {
    const w = this.byWorker.get(worker) ?? { connections: 0, requests: 0 };
    this.byWorker.set(worker, w);
    w.requests++;
    if (newConnection) w.connections++;
  }

  report(): SegmentReport {
    const pct = (p: number): number => (this.latency.count ? this.latency.percentile(p) / 1000 : NaN);
    return { ok: this.ok, failed: { ...this.failed }, p50Ms: pct(50), p99Ms: pct(99), ...(this.byWorker.size ? { byWorker: Object.fromEntries(this.byWorker) } : {}) };
  }
}

function kindOf(err: NodeJS.ErrnoException): FailureKind {
  if (err.code === 'ECONNREFUSED') return 'refused';
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return 'reset';
  if (err.code === 'TIMEOUT') return 'timeout';
  return 'other';
}

class DeployLoad {
  private running = true;
  private current: Segment;
  private readonly segments = new Map<string, Segment>();
  private readonly agent: Agent | false;
  private readonly loops: Promise<void>[];

  constructor(private readonly spec: LoadSpec) {
    this.current = this.segment('warmup');
    this.agent = spec.shape === 'fresh' || spec.shape === 'cpu' ? false : new Agent({ keepAlive: true, maxSockets: spec.connections });
    this.loops = Array.from({ length: spec.connections }, () => this.loop());
  }

  segment(name: string): Segment {
    let s = this.segments.get(name);
    if (!s) this.segments.set(name, (s = new Segment()));
    return (this.current = s);
  }

  private options(): { opts: RequestOptions; body?: Buffer } {
    const r = this.spec.shape === 'mix' ? Math.random() : 1;
    const base: RequestOptions = { host: '127.0.0.1', port: this.spec.port, agent: this.agent, path: '/' };
    if (this.spec.shape === 'fresh') return { opts: { ...base, headers: { Connection: 'close' } } };
    if (this.spec.shape === 'cpu') return { opts: { ...base, path: Math.random() < 0.02 ? '/busy' : '/', headers: { Connection: 'close' } } };
    if (r < 0.1) return { opts: { ...base, path: '/slow' } };
    if (r < 0.55) return { opts: { ...base, method: 'POST', headers: { 'Content-Length': BODY.length } }, body: BODY };
    return { opts: base };
  }

  private one(): Promise<void> {
    const seg = this.current;
    const t0 = process.hrtime.bigint();
    const { opts, body } = this.options();
    // The slow requests' 2 s (and the busy ones' 50 ms) would be every percentile worth reading:
    // their latency is not recorded.
    const timed = opts.path === '/';
    return new Promise((resolve) => {
      let done = false;
      const finish = (kind: FailureKind | null): void => {
        if (done) return;
        done = true;
        if (kind) seg.failed[kind]++;
        else {
          seg.ok++;
          if (timed) seg.latency.record(Math.max(1, Number((process.hrtime.bigint() - t0) / 1000n)));
        }
        resolve();
      };
      const req = request(opts, (res) => {
        res.resume();
        if (this.spec.tally) seg.answered(String(res.headers['x-worker']), !req.reusedSocket);
        res.on('end', () => finish(res.statusCode! >= 500 ? '5xx' : res.statusCode! >= 400 ? 'other' : null));
        res.on('error', (e: NodeJS.ErrnoException) => finish(kindOf(e)));
      });
      req.on('error', (e: NodeJS.ErrnoException) => finish(kindOf(e)));
      req.setTimeout(TIMEOUT_MS, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
      req.end(body);
    });
  }

  private async loop(): Promise<void> {
    while (this.running) await this.one();
  }

  async stop(): Promise<LoadReport> {
    this.running = false;
    await Promise.all(this.loops);
    if (this.agent) this.agent.destroy();
    return Object.fromEntries([...this.segments].map(([name, s]) => [name, s.report()]));
  }
}

/** Run as a forked process: the load starts at once from the spec in argv[2]. */
if (process.send) {
  const load = new DeployLoad(JSON.parse(process.argv[2]!) as LoadSpec);
  process.on('message', (m: { t: 'segment'; name: string } | { t: 'stop' }) => {
    if (m.t === 'segment') {
      load.segment(m.name);
      process.send!({ t: 'segment' });
    }
    else void load.stop().then((report) => process.send!({ t: 'report', report }, () => process.exit(0)));
  });
  // The bench is gone (it failed): so is its load.
  process.once('disconnect', () => process.exit(1));
}
