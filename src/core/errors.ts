// Errors with stable codes. Each class maps to one exit status (README "Exit status"), so the CLI can turn any
// of them into "one clear line, no stack trace" and the right exit code.

export const EXIT = {
  OK: 0,
  RUNTIME: 1,
  USAGE: 2,
  WORKER_BOOT: 3,
  APP_LOAD: 4,
} as const;

export class TsgunicornError extends Error {
  readonly code: string;
  readonly exitCode: number;
  constructor(message: string, code: string, exitCode: number, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.exitCode = exitCode;
  }
}

/** A class of errors with one stable code that ends the command with `exitCode`. */
function errorKind(code: string, exitCode: number) {
  return class extends TsgunicornError {
    constructor(message: string, options?: ErrorOptions) {
      super(message, code, exitCode, options);
    }
  };
}

/** A bad flag, config file or setting value: exit 2. */
export class ConfigError extends errorKind('TSG_ERR_CONFIG', EXIT.USAGE) {}

/** The application could not be imported or is not something we can serve: exit 4. */
export class AppLoadError extends errorKind('TSG_ERR_APP_LOAD', EXIT.APP_LOAD) {
  /** The message, then the app's own error with its stack: what a person needs to fix the app. */
  explain(): string {
    const cause = this.cause as Error | undefined;
    return `${this.message}${cause ? `:\n${cause.stack ?? String(cause)}` : ''}`;
  }
}

/** Could not bind or adopt a listening socket (address in use, not a socket...): exit 1. */
export class ListenError extends errorKind('TSG_ERR_LISTEN', EXIT.RUNTIME) {}

/** A pidfile names a live tsgunicorn master: exit 1. */
export class PidfileError extends errorKind('TSG_ERR_PIDFILE', EXIT.RUNTIME) {}

/** A new master started by USR2 that must not take over (the old one keeps serving): exit 1. */
export class UpgradeError extends errorKind('TSG_ERR_UPGRADE', EXIT.RUNTIME) {}

/** `tsgunicorn status` found no running master: exit 1. */
export class NotRunningError extends errorKind('TSG_ERR_NOT_RUNNING', EXIT.RUNTIME) {}
