// Lame duck (lame_duck, before a TERM's graceful stop): for a while the master serves on while
// /health says 503 and STATUS= `lame duck`, and the workers mark every response `Connection:
// close`, so that load balancers take the instance out and move their pooled connections before
// anything stops accepting. An INT or QUIT cuts it short, and the stop after it is quick.

import type { Logger } from '../logging/logger.js';

export class LameDuck {
  private end: (() => void) | null = null;
  private cutShortNow = false;

  constructor(private readonly log: Logger) {}

  /** Serving as a lame duck now. */
  get active(): boolean {
    return this.end !== null;
  }

  /** An INT or QUIT ended it early. */
  get cutShort(): boolean {
    return this.cutShortNow;
  }

  /** Resolves after `ms`, or when cut short; `announce(ms)` runs once it is active (tell the workers, systemd). */
  async serve(ms: number, announce: (ms: number) => void): Promise<void> {
    this.log.info(`TERM: lame duck for ${ms / 1000} s (/health answers 503, responses close their connections), then a graceful stop`);
    await new Promise<void>((done) => {
      const timer = setTimeout(done, ms);
      this.end = () => { clearTimeout(timer); done(); };
      announce(ms);
    });
    this.end = null;
  }

  cut(): void {
    if (!this.end) return;
    this.log.info('Quick stop: the lame duck is cut short');
    this.cutShortNow = true;
    this.end();
  }
}
