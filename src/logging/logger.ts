// The error log: one winston logger per process, for its whole life, with Gunicorn's levels
// (winston custom levels) and line shape (`[2026-01-02 10:00:00 +0000] [1234] [INFO] message`, a
// winston timestamp and printf format). While lines go to standard error and it is the journal
// (JOURNAL_STREAM names it), every line (stack traces too) carries an sd-daemon(3) `<N>` priority
// prefix and no timestamp: journald stamps it. Its one transport writes to a Destination (USR1
// reopen, flush, fallback to standard error). A reload reconfigures that logger: winston's level,
// and the Destination retargeted when the path changed; no second logger or destination is made.
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
  /** A reload: the same logger, with the new settings (a new path: it is opened, the old file closed). */
  reconfigure(opts: LoggerOptions): void;
}

/** True when fd 2 is the stream systemd's JOURNAL_STREAM (`DEV:INODE`) describes. */
function stderrIsJournal(env: NodeJS.ProcessEnv = process.env): boolean {
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

export interface LoggerOptions {
  readonly errorlog: string;
  readonly loglevel: Level;
}

/** Gunicorn's `%Y-%m-%d %H:%M:%S %z`, in fecha's tokens (winston's timestamp format). */
const TIME = 'YYYY-MM-DD HH:mm:ss ZZ';

function createWinston(dest: Destination, loglevel: Level): Winston.Logger {
  const winston = createRequire(import.meta.url)('winston') as typeof Winston;
  const { combine, printf, timestamp } = winston.format;
  // Whether standard error is the journal is asked once; whether a line goes there, per line (a
  // reload can move the log to or from standard error, a failed file falls back to it).
  const journal = stderrIsJournal();
  const line = printf((i) => {
    const msg = String(i.message);
    if (!(journal && dest.toStderr)) return `[${String(i['timestamp'])}] [${process.pid}] [${i.level.toUpperCase()}] ${msg}`;
    const p = `<${PRIORITY[i.level as Level]}>`;
    return p + msg.replace(/\n/g, `\n${p}`);
  });
  return winston.createLogger({
    levels: LEVELS,
    level: loglevel,
    format: combine(timestamp({ format: TIME }), line),
    transports: [new winston.transports.Stream({ stream: dest })],
  });
}

export function createLogger(opts: LoggerOptions): Logger {
  const dest = new Destination(opts.errorlog, process.stderr);
  // The level until winston is loaded; from then on, winston's own.
  let level = opts.loglevel;
  let w: Winston.Logger | null = null;
  const log = (at: Level) => (msg: string) => {
    if (w === null) {
      if (LEVELS[at] > LEVELS[level]) return;
      w = createWinston(dest, level);
    } else if (!w.isLevelEnabled(at)) {
      return;
    }
    // winston hands the line to its transport's stream, and so the Destination, before log() returns.
    w.log(at, msg);
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
      level = next.loglevel;
      if (w !== null) w.level = next.loglevel;
      dest.retarget(next.errorlog);
    },
  };
}
