// The master's signals from its first instruction. bin/tsgunicorn.js installs this queue before
// it loads anything else, so no signal in docs/signals.md meets its default disposition (HUP and USR2
// would terminate the process) while the settings load, the sockets are bound and the workers
// boot: every signal is recorded, and the arbiter takes the queue over once it runs. TERM, INT and
// QUIT always win: before the arbiter runs they undo what was made so far (onEarlyStop: the
// pidfile, the sockets) and end the process at once. A command
// that turns out not to be a master (`status`, `--help`, `--check-config`) releases it: default
// dispositions again, and a HUP that came meanwhile ends it then.
// Node's own bootstrap, before the first instruction, cannot be covered: it resets the signal
// dispositions and mask it inherits. The pid is published (pidfile, MAINPID, control socket) only
// after this queue is in place.
//
// This module imports nothing: it must be evaluated before the rest of the program is loaded.

export const MASTER_SIGNALS = ['SIGHUP', 'SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGTTIN', 'SIGTTOU', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'] as const;
export type MasterSignal = (typeof MASTER_SIGNALS)[number];

export class SignalQueue {
  private readonly early: MasterSignal[] = [];
  private consumer: ((sig: MasterSignal) => void) | null = null;
  private readonly handlers = new Map<MasterSignal, () => void>();
  private readonly undo: (() => void)[] = [];

  private constructor() {
    for (const sig of MASTER_SIGNALS) {
      const handler = (): void => {
        if (this.consumer) this.consumer(sig);
        else if (sig === 'SIGTERM' || sig === 'SIGINT' || sig === 'SIGQUIT') this.stopNow();
        else this.early.push(sig);
      };
      this.handlers.set(sig, handler);
      process.on(sig, handler);
    }
  }

  static install(): SignalQueue {
    return new SignalQueue();
  }

  /** What a stop before the master runs undoes (newest first): remove the pidfile, close the sockets. */
  onEarlyStop(undo: () => void): void {
    this.undo.unshift(undo);
  }

  private stopNow(): never {
    for (const undo of this.undo) {
      try { undo(); } catch { /* the rest still goes */ }
    }
    process.exit(0);
  }

  /** Signals received before the master ran, oldest first; then every new one goes to `consumer`. */
  attach(consumer: (sig: MasterSignal) => void): MasterSignal[] {
    this.consumer = consumer;
    return this.early.splice(0);
  }

  /** Not a master after all: default dispositions again, and a HUP that came (hang-up) applies now. */
  release(): void {
    for (const [sig, handler] of this.handlers) process.off(sig, handler);
    this.handlers.clear();
    if (this.early.splice(0).includes('SIGHUP')) process.kill(process.pid, 'SIGHUP');
  }
}
