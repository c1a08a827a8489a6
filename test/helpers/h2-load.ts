// An HTTP/2 load: N sessions, each keeping M streams in flight back to back, as a proxy in front
// would. A session told to go away (GOAWAY) is replaced by a new one, and its streams still open
// must finish. Every stream that did not end in a 2xx is a failure, by kind, but for one kind: a
// stream refused (REFUSED_STREAM) the moment its session heard GOAWAY. Node's client refuses
// those itself, the requests it had queued but not yet written (nghttp2 sends no new stream
// after a GOAWAY), and RFC 9113 §8.7 makes them safe to send again, as proxies do: they are
// counted (`refused`) and sent again on a new session.

import { connect, constants, type ClientHttp2Session, type SecureClientSessionOptions } from 'node:http2';

export interface H2LoadResult {
  readonly ok: number;
  readonly failed: number;
  /** Streams refused at a GOAWAY (never processed) and sent again. */
  readonly refused: number;
  /** Failures by kind: the error code or `status NNN`. */
  readonly errors: Record<string, number>;
  /** Sessions that ended while the load ran, and of those, the ones that got a GOAWAY before they closed. */
  readonly sessionsClosed: number;
  readonly closedAfterGoaway: number;
  /** Distinct `x-worker` values seen. */
  readonly workers: Set<string>;
}

export class H2Load {
  private running = true;
  private okCount = 0;
  private failedCount = 0;
  private refusedCount = 0;
  private closedCount = 0;
  private goawayCount = 0;
  readonly errors: Record<string, number> = {};
  private readonly workers = new Set<string>();
  private readonly sessions = new Set<ClientHttp2Session>();
  private readonly slots: Promise<void>[];

  constructor(private readonly url: string, sessions = 20, private readonly streams = 10, private readonly opts: SecureClientSessionOptions = {}, private readonly path = '/') {
    this.slots = Array.from({ length: sessions }, () => this.slot());
  }

  get served(): number { return this.okCount; }

  /** The X-Worker values seen so far. */
  get seen(): ReadonlySet<string> { return this.workers; }

  private fail(why: string): void {
    this.failedCount++;
    this.errors[why] = (this.errors[why] ?? 0) + 1;
  }

  /** One session slot: a session at a time, each until it goes away or the load stops. */
  private async slot(): Promise<void> {
    while (this.running) await this.session();
  }

  private session(): Promise<void> {
    return new Promise((done) => {
      const s = connect(this.url, this.opts);
      this.sessions.add(s);
      let goaway = false;
      let inFlight = 0;
      s.on('error', (err: NodeJS.ErrnoException) => { if (inFlight === 0 && !goaway) this.fail(`session ${err.code ?? err.message}`); });
      let goawayAt = 0;
      s.on('goaway', () => { goaway = true; goawayAt = Date.now(); });
      s.on('close', () => {
        this.sessions.delete(s);
        // Those the load closes as it stops are not the server's doing.
        if (this.running) {
          this.closedCount++;
          if (goaway) this.goawayCount++;
        }
        // Back off a little after a failure to connect, so a stopped server is not spun on.
        setTimeout(done, goaway ? 0 : 20);
      });
      const next = (): void => {
        if (!this.running || goaway || s.closed || s.destroyed) {
          if (inFlight === 0 && !s.closed) s.close();
          return;
        }
        let req;
        try {
          req = s.request({ ':path': this.path });
        } catch {
          return; // the session started going away just now: the request was never sent
        }
        inFlight++;
        let status = 0;
        req.on('response', (h) => {
          status = Number(h[':status']);
          const w = h['x-worker'];
          if (typeof w === 'string') this.workers.add(w);
        });
        req.on('error', (err: NodeJS.ErrnoException) => {
          inFlight--;
          if (req.rstCode === constants.NGHTTP2_REFUSED_STREAM && goaway && Date.now() - goawayAt < 50) this.refusedCount++;
          else this.fail(err.code === 'ERR_HTTP2_STREAM_ERROR' ? err.message : err.code ?? err.message);
          next();
        });
        req.on('end', () => {
          inFlight--;
          if (status >= 200 && status < 300) this.okCount++;
          else this.fail(`status ${status}`);
          next();
        });
        req.resume();
        req.end();
      };
      s.once('connect', () => { for (let i = 0; i < this.streams; i++) next(); });
    });
  }

  async stop(): Promise<H2LoadResult> {
    this.running = false;
    for (const s of this.sessions) if (!s.closed) s.close();
    await Promise.all(this.slots);
    return { ok: this.okCount, failed: this.failedCount, refused: this.refusedCount, errors: this.errors, sessionsClosed: this.closedCount, closedAfterGoaway: this.goawayCount, workers: this.workers };
  }
}
