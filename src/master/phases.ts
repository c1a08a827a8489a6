// The master's phases, and what each signal does in each (docs/signals.md has this table for
// people). The arbiter derives its phase from its state and looks signals up here.

import type { MasterSignal } from './signal-queue.js';

/** Where the master is; what a signal does depends on it (EFFECTS). */
export type Phase = 'booting' | 'running' | 'reloading' | 'upgrading' | 'handed off' | 'rolling back' | 'stopping';

/**
 * What each signal does in each phase, where it does not take effect at once: `later`, when the
 * operation under way ends (one pending of each; repeats coalesce, with a log line), or
 * `ignored`, with a log line saying why. TERM, INT and QUIT take effect at once in every phase.
 * docs/signals.md has this table for people.
 */
export const EFFECTS: Record<Phase, Partial<Record<MasterSignal, 'later' | 'ignored'>>> = {
  booting: { SIGHUP: 'later', SIGUSR2: 'later', SIGWINCH: 'later' },
  running: {},
  reloading: { SIGHUP: 'later', SIGUSR2: 'later', SIGWINCH: 'later' },
  upgrading: { SIGHUP: 'later', SIGUSR2: 'later', SIGWINCH: 'later' },
  'handed off': { SIGUSR2: 'ignored' },
  'rolling back': { SIGHUP: 'later', SIGUSR2: 'later', SIGWINCH: 'later' },
  stopping: { SIGHUP: 'ignored', SIGUSR2: 'ignored', SIGTTIN: 'ignored', SIGTTOU: 'ignored', SIGWINCH: 'ignored' },
};

export const signalName = (sig: MasterSignal): string => sig.slice(3);
