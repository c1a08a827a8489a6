// Graceful drain, the heart of zero-failure reloads. http.Server#close() also closes idle
// keep-alive connections at once, racing clients that are sending their next request on them.
// Instead we:
//   1. stop listening (net.Server#close: the socket stays open in the master and other workers,
//      so the kernel hands new connections to them),
//   2. mark every response not yet started, and every later one, `Connection: close`, so each
//      keep-alive connection ends right after the next response the client asked for,
//   3. leave idle connections to Node's keep-alive timeout (the same close a client meets in
//      normal operation), and
//   4. exit once the last connection is gone, or when graceful_timeout runs out.

import { Server as NetServer } from 'node:net';
import type { Server, ServerResponse } from 'node:http';

export class Drain {
  /** Responses not finished yet; the hot path adds and removes one entry per request. */
  readonly inflight = new Set<ServerResponse>();
  /** True once draining: every response from now on closes its connection. */
  closing = false;
  private started = false;

  constructor(private readonly servers: readonly Server[]) {}

  get isDraining(): boolean {
    return this.started;
  }

  /** Starts draining; resolves when every connection has closed or `timeoutMs` elapsed. */
  start(timeoutMs: number): Promise<'drained' | 'timeout'> {
    this.started = true;
    this.closing = true;
    for (const res of this.inflight) if (!res.headersSent) res.setHeader('Connection', 'close');
    const closed = this.servers.map((s) => new Promise<void>((done) => {
      if (!s.listening) { done(); return; }
      NetServer.prototype.close.call(s, () => done());
    }));
    return new Promise((done) => {
      const timer = setTimeout(() => done('timeout'), timeoutMs);
      void Promise.all(closed).then(() => { clearTimeout(timer); done('drained'); });
    });
  }
}
