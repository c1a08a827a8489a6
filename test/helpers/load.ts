// A keep-alive HTTP load: N connections, each sending requests back to back, counting every
// request that fails (a connection error or a non-2xx status). Node's client never retries, so
// a connection closed under a request shows up here.

import { Agent, request } from 'node:http';

export interface LoadResult {
  readonly ok: number;
  readonly failed: number;
  readonly errors: Record<string, number>;
  /** Distinct `X-Worker` values seen (the fixture apps send their pid). */
  readonly workers: Set<string>;
}

export class Load {
  private running = true;
  private ok = 0;
  private failed = 0;
  private readonly errors: Record<string, number> = {};
  private readonly workers = new Set<string>();
  private readonly agent: Agent;
  private readonly loops: Promise<void>[];

  constructor(private readonly url: string, connections = 20) {
    this.agent = new Agent({ keepAlive: true, maxSockets: connections });
    this.loops = Array.from({ length: connections }, () => this.loop());
  }

  private one(): Promise<void> {
    return new Promise((resolve) => {
      const fail = (why: string): void => {
        this.failed++;
        this.errors[why] = (this.errors[why] ?? 0) + 1;
        resolve();
      };
      const req = request(this.url, { agent: this.agent }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode! >= 200 && res.statusCode! < 300) {
            this.ok++;
            const w = res.headers['x-worker'];
            if (typeof w === 'string') this.workers.add(w);
            resolve();
          } else fail(`status ${res.statusCode}`);
        });
        res.on('error', (e: NodeJS.ErrnoException) => fail(e.code ?? e.message));
      });
      req.on('error', (e: NodeJS.ErrnoException) => fail(e.code ?? e.message));
      req.setTimeout(10000, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
      req.end();
    });
  }

  private async loop(): Promise<void> {
    while (this.running) await this.one();
  }

  get served(): number {
    return this.ok;
  }

  async stop(): Promise<LoadResult> {
    this.running = false;
    await Promise.all(this.loops);
    this.agent.destroy();
    return { ok: this.ok, failed: this.failed, errors: this.errors, workers: this.workers };
  }
}
