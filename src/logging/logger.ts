// The error log: one winston logger per process with Gunicorn's levels and line shape
// (`[2026-01-02 10:00:00 +0000] [1234] [INFO] message`). When standard error is the journal
// (JOURNAL_STREAM names it), every line (stack traces too) carries an sd-daemon(3) `<N>` priority
// prefix and no timestamp: journald stamps it.
//
// winston is loaded on the first message the level lets through, not at import: a worker that
// logs nothing (the usual case: the master logs boots and exits) starts ~80 ms sooner and uses
// ~10 MiB less. It is a CommonJS package, so loading it then is synchronous and no message waits.

import { fstatSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as Winston from 'winston';
import { Destination } from './destination.js';

export type Level = 'debug' | 'info' | 'warning' | 'error' | 'critical';

const LEVELS: Record<Level, number> = { critical: 0, error: 1, warning: 2, info: 3, debug: 4 };
/** syslog priorities for journald prefixes. */
const PRIORITY: Record<Level, number> = { critical: 2, error: 3, warning: 4, info: 6, debug: 7 };

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warning(msg: string): void;
  error(msg: string): void;
  critical(msg: string): void;
  /** Reopen log files (USR1). */
  reopen(): void;
  /** Resolves once everything logged so far is written, to the file too (before process.exit). */
  flush(): Promise<void>;
  /** A reload: the same logger, with the new settings (a new file is opened, the old one closed). */
  reconfigure(opts: LoggerOptions): void;
}

/** True when fd 2 is the stream systemd's JOURNAL_STREAM (`DEV:INODE`) describes. */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  const js = env['JOURNAL_STREAM'];
  if (!js) return false;
  const [dev, ino] = js.split(':');
  try {
    const st = fstatSync(2, { bigint: true });
    return String(st.dev) === dev && String(st.ino) === ino;
  } catch {
    return false;
  }
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** Gunicorn's `%Y-%m-%d %H:%M:%S %z`. */
export function timestamp(d: Date = new Date()): string {
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const tz = `${sign}${pad(Math.floor(Math.abs(off) / 60))}${pad(Math.abs(off) % 60)}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${tz}`;
}

export interface LoggerOptions {
  readonly errorlog: string;
  readonly loglevel: Level;
}

function createWinston(dest: Destination, loglevel: Level): Winston.Logger {
  const winston = createRequire(import.meta.url)('winston') as typeof Winston;
  const line = dest.isStd && stderrIsJournal()
    ? winston.format.printf((i) => { const p = `<${PRIORITY[i.level as Level]}>`; return p + String(i.message).replace(/\n/g, `\n${p}`); })
    : winston.format.printf((i) => `[${timestamp()}] [${process.pid}] [${i.level.toUpperCase()}] ${String(i.message)}`);
  return winston.createLogger({
    levels: LEVELS,
    level: loglevel,
    format: line,
    transports: [new winston.transports.Stream({ stream: dest })],
  });
}

export function createLogger(opts: LoggerOptions): Logger {
  let current = opts;
  let dest = new Destination(opts.errorlog, process.stderr);
  let w: Winston.Logger | null = null;
  const log = (level: Level) => (msg: string) => {
    if (LEVELS[level] > LEVELS[current.loglevel]) return;
    w ??= createWinston(dest, current.loglevel);
    w.log(level, msg);
  };
  return {
    debug: log('debug'),
    info: log('info'),
    warning: log('warning'),
    error: log('error'),
    critical: log('critical'),
    reopen: () => dest.reopen(),
    flush: () => dest.flushed(),
    reconfigure: (next) => {
      if (next.errorlog !== current.errorlog) {
        const old = dest;
        dest = new Destination(next.errorlog, process.stderr);
        void old.flushed().then(() => old.close());
      }
      current = next;
      w = null;
    },
  };
}
