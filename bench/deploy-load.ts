// The deploy bench's load generator, a process of its own (forked by bench/deploys.ts, so that its
// CPU is not the bench's and a busy bench never delays a request), with a client of its own
// (http-wire.ts): a request is never retried, and each failure is counted by kind. The bench
// names the current segment (`reload:deploy`, `reload:steady`, ...); each request is counted, with
// its latency, in the segment it started in. Messages: {t:'segment', name} (acknowledged with {t:'segment'}) and
// {t:'stop'} in, {t:'report', ...} out.

import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { WireConnection, type WireError } from './http-wire.js';

export type Shape = 'keepalive' | 'fresh' | 'mix' | 'cpu';

export interface LoadSpec {
  readonly port: number;
  /** Concurrent request loops: keep-alive connections, or loops of one request per new connection. */
  readonly connections: number;
  readonly shape: Shape;
  /** Count the connections and requests each worker (its X-Worker) answered. */
  readonly tally?: boolean;
  /**
   * An open loop at this many requests per second in all (each loop on its own schedule, one
   * request every connections/rate s), instead of each loop sending its next request as soon as
   * it has the answer: a load with headroom. A request's latency counts from when it was due, so
   * a stall also counts for the requests it delayed.
   */
  readonly rate?: number;
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

/** The requests of each shape, as bytes. */
function requests(port: number): Record<'get' | 'close' | 'busy' | 'slow' | 'post', Buffer> {
  const host = `Host: 127.0.0.1:${port}\r\n`;
  return {
    get: Buffer.from(`GET / HTTP/1.1\r\n${host}\r\n`),
    close: Buffer.from(`GET / HTTP/1.1\r\n${host}Connection: close\r\n\r\n`),
    busy: Buffer.from(`GET /busy HTTP/1.1\r\n${host}Connection: close\r\n\r\n`),
    slow: Buffer.from(`GET /slow HTTP/1.1\r\n${host}\r\n`),
    post: Buffer.concat([Buffer.from(`POST / HTTP/1.1\r\n${host}Content-Length: ${BODY.length}\r\n\r\n`), BODY]),
  };
}

class DeployLoad {
  private running = true;
  private current: Segment;
  private readonly segments = new Map<string, Segment>();
  private readonly bytes: ReturnType<typeof requests>;
  private readonly open = new Set<WireConnection>();
  private readonly loops: Promise<void>[];

  constructor(private readonly spec: LoadSpec) {
    this.current = this.segment('warmup');
    this.bytes = requests(spec.port);
    this.loops = Array.from({ length: spec.connections }, () => this.loop());
  }

  segment(name: string): Segment {
    let s = this.segments.get(name);
    if (!s) this.segments.set(name, (s = new Segment()));
    return (this.current = s);
  }

  /** The next request of the shape, and whether its latency counts (not the 2 s or the 50 ms ones). */
  private next(): { bytes: Buffer; timed: boolean } {
    const b = this.bytes;
    if (this.spec.shape === 'fresh') return { bytes: b.close, timed: true };
    if (this.spec.shape === 'cpu') return Math.random() < 0.02 ? { bytes: b.busy, timed: false } : { bytes: b.close, timed: true };
    if (this.spec.shape === 'keepalive') return { bytes: b.get, timed: true };
    const r = Math.random();
    if (r < 0.1) return { bytes: b.slow, timed: false };
    if (r < 0.55) return { bytes: b.post, timed: true };
    return { bytes: b.get, timed: true };
  }

  /**
   * One request on `conn` (a new connection when it is null or done), its latency counted from
   * `t0`; resolves with the connection to use next.
   */
  private async one(conn: WireConnection | null, t0: bigint): Promise<WireConnection | null> {
    const seg = this.current;
    const { bytes, timed } = this.next();
    if (conn === null || conn.done) {
      conn = new WireConnection('127.0.0.1', this.spec.port);
      this.open.add(conn);
    }
    const reused = conn.used;
    try {
      const answer = await conn.request(bytes, TIMEOUT_MS);
      if (this.spec.tally) seg.answered(answer.worker, !reused);
      if (answer.status >= 500) seg.failed['5xx']++;
      else if (answer.status >= 400) seg.failed.other++;
      else {
        seg.ok++;
        if (timed) seg.latency.record(Math.max(1, Number((process.hrtime.bigint() - t0) / 1000n)));
      }
    } catch (e) {
      seg.failed[e as WireError]++;
    }
    if (!conn.done) return conn;
    this.open.delete(conn);
    return null;
  }

  private async loop(): Promise<void> {
    let conn: WireConnection | null = null;
    if (!this.spec.rate) {
      while (this.running) conn = await this.one(conn, process.hrtime.bigint());
      return;
    }
    const every = BigInt(Math.round((this.spec.connections / this.spec.rate) * 1e9));
    // A random phase, so that the loops' requests spread over the interval.
    let due = process.hrtime.bigint() + BigInt(Math.floor(Math.random() * Number(every)));
    while (this.running) {
      const wait = Number(due - process.hrtime.bigint()) / 1e6;
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (!this.running) break;
      conn = await this.one(conn, due);
      due += every;
    }
  }

  async stop(): Promise<LoadReport> {
    this.running = false;
    await Promise.all(this.loops);
    for (const c of this.open) c.close();
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
