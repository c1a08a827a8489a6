// A keep-alive HTTP load: N connections, each sending requests back to back, counting every
// request that fails (a connection error or a non-2xx status). Node's client never retries, so
// a connection closed under a request shows up here. Optionally also a stream of new
// connections (one request each), which is what a reload's or an upgrade's listening-socket
// handover has to get right, and the requests can go over a unix socket.

import { Agent, request, type RequestOptions } from 'node:http';
import type { ExecutionContext } from 'ava';

export interface LoadOptions {
  /** Send the requests over this unix socket; the url then gives only the path and Host. */
  readonly socketPath?: string;
  /**
   * This many extra loops, each sending one request per new connection (no agent,
   * `Connection: close`) back to back. Counted in the totals, and in `freshOk`.
   */
  readonly fresh?: number;
  /** Send every request as a POST with this body (to exercise request bodies and their buffering). */
  readonly body?: string | Buffer;
}

export interface LoadResult {
  readonly ok: number;
  readonly failed: number;
  /** Failures by kind: the error code (`ECONNRESET`, `TIMEOUT`, ...) or `status NNN`. */
  readonly errors: Record<string, number>;
  /** Requests on new connections that succeeded (0 without `fresh`). */
  readonly freshOk: number;
  /** Distinct `X-Worker` values seen (the fixture apps send their pid). */
  readonly workers: Set<string>;
}

export class Load {
  private running = true;
  private okCount = 0;
  private failedCount = 0;
  private freshOkCount = 0;
  /** Failures so far by kind: the error code or `status NNN`. */
  readonly errors: Record<string, number> = {};
  private readonly workers = new Set<string>();
  private readonly agent: Agent;
  private readonly loops: Promise<void>[];

  constructor(private readonly url: string, connections = 20, private readonly opts: LoadOptions = {}) {
    this.agent = new Agent({ keepAlive: true, maxSockets: connections });
    this.loops = [
      ...Array.from({ length: connections }, () => this.loop(false)),
      ...Array.from({ length: opts.fresh ?? 0 }, () => this.loop(true)),
    ];
  }

  private options(fresh: boolean): RequestOptions {
    const headers: Record<string, string | number> = {};
    // agent: false gives each request a connection of its own, closed after the response.
    if (fresh) headers['Connection'] = 'close';
    if (this.opts.body !== undefined) headers['Content-Length'] = Buffer.byteLength(this.opts.body);
    return {
      agent: fresh ? false : this.agent,
      method: this.opts.body === undefined ? 'GET' : 'POST',
      headers,
      ...(this.opts.socketPath === undefined ? {} : { socketPath: this.opts.socketPath }),
    };
  }

  private one(fresh: boolean): Promise<void> {
    return new Promise((resolve) => {
      const fail = (why: string): void => {
        this.failedCount++;
        this.errors[why] = (this.errors[why] ?? 0) + 1;
        resolve();
      };
      const req = request(this.url, this.options(fresh), (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode! >= 200 && res.statusCode! < 300) {
            this.okCount++;
            if (fresh) this.freshOkCount++;
            const w = res.headers['x-worker'];
            if (typeof w === 'string') this.workers.add(w);
            resolve();
          } else fail(`status ${res.statusCode}`);
        });
        res.on('error', (e: NodeJS.ErrnoException) => fail(e.code ?? e.message));
      });
      req.on('error', (e: NodeJS.ErrnoException) => fail(e.code ?? e.message));
      req.setTimeout(10000, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
      req.end(this.opts.body);
    });
  }

  private async loop(fresh: boolean): Promise<void> {
    while (this.running) await this.one(fresh);
  }

  /** Requests answered with a 2xx so far. */
  get served(): number {
    return this.okCount;
  }

  /** Requests failed so far (snapshot it around one step to see what that step cost). */
  get failed(): number {
    return this.failedCount;
  }

  /** Requests on new connections answered with a 2xx so far. */
  get freshOk(): number {
    return this.freshOkCount;
  }

  async stop(): Promise<LoadResult> {
    this.running = false;
    await Promise.all(this.loops);
    this.agent.destroy();
    return { ok: this.okCount, failed: this.failedCount, errors: this.errors, freshOk: this.freshOkCount, workers: this.workers };
  }
}

/** `load`, stopped by the test's teardown if the test ends first (a failed assertion): a running load keeps the test process alive. */
export function stopAtTeardown<L extends { stop(): Promise<unknown> }>(t: ExecutionContext, load: L): L {
  t.teardown(async () => { await load.stop(); });
  return load;
}

/** A Load stopped at the test's teardown at the latest. */
export function startLoad(t: ExecutionContext, url: string, connections?: number, opts?: LoadOptions): Load {
  return stopAtTeardown(t, new Load(url, connections, opts));
}
