// The tsgunicorn command: `status`, or resolve the configuration and then print it, check it, or
// run a master. Every expected failure becomes one line on stderr and its exit status (README
// "Exit status"); no stack traces for bad input.

import { loadApp } from '../app/load-app.js';
import { helpText, printConfig } from '../config/help.js';
import { loadSettings } from '../config/load-settings.js';
import { resolveLoaded } from '../config/resolve-config.js';
import { AppLoadError, EXIT, TsgunicornError } from '../core/errors.js';
import { VERSION } from '../core/program.js';
import type { SignalQueue } from '../master/signal-queue.js';
import { runMaster } from '../master/start.js';
import { statusCommand } from './status.js';

function fail(err: unknown): never {
  if (err instanceof AppLoadError) {
    process.stderr.write(`tsgunicorn: ${err.explain()}\n`);
  } else if (err instanceof TsgunicornError) {
    process.stderr.write(`tsgunicorn: error: ${err.message}\n`);
  } else {
    process.stderr.write(`tsgunicorn: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
  }
  process.exit(err instanceof TsgunicornError ? err.exitCode : EXIT.RUNTIME);
}

async function run(argv: readonly string[], signals: SignalQueue): Promise<number> {
  const startDir = process.cwd();
  const loaded = await loadSettings(argv, process.env, startDir);
  const s = loaded.settings;
  if (loaded.help || loaded.version || s.print_config || s.check_config) signals.release();
  if (loaded.help) { process.stdout.write(helpText(VERSION)); return EXIT.OK; }
  if (loaded.version) { process.stdout.write(`tsgunicorn ${VERSION} (node ${process.version})\n`); return EXIT.OK; }
  if (s.print_config) { process.stdout.write(printConfig(s)); return EXIT.OK; }
  const config = await resolveLoaded(loaded, startDir);
  if (s.check_config) {
    process.chdir(config.appDir);
    await loadApp(config.app, config.appDir);
    process.stdout.write('Configuration and application OK\n');
    return EXIT.OK;
  }
  return runMaster(config, { argv, startDir, signals });
}

/** `signals`: the queue bin/tsgunicorn.js installed at the process's first instruction. */
export function main(argv: readonly string[], signals: SignalQueue): void {
  if (argv[0] === 'status') signals.release();
  const command = argv[0] === 'status' ? statusCommand(argv.slice(1)) : run(argv, signals);
  command.then((code) => process.exit(code), fail);
}
