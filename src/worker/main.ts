// The worker program the master starts: take the WorkerInit the master put in the environment,
// close the descriptors that are not this worker's, and run a Worker (worker.ts). Exit codes 3 and
// 4 tell the master why a boot failed.

import { AppLoadError } from '../core/errors.js';
import { WORKER_ENV, WORKER_EXIT, type WorkerInit } from '../ipc/protocol.js';
import { createLogger } from '../logging/logger.js';
import { closeStrayCopies } from '../sockets/stray-fds.js';
import { Worker } from './worker.js';

const given = JSON.parse(process.env[WORKER_ENV] ?? 'null') as (Omit<WorkerInit, 'fds'> & { fds: (number | number[])[] }) | null;
if (!given || !process.send) {
  process.stderr.write('tsgunicorn: this is a worker module, started by the tsgunicorn master only\n');
  process.exit(2);
}
// A master of the version before accept handles (one that keeps running after a package upgrade,
// until USR2) passes one descriptor per socket; this worker, started from the new files, takes both.
const init: WorkerInit = { ...given, fds: given.fds.map((f) => (typeof f === 'number' ? [f] : f)) };
delete process.env[WORKER_ENV];
closeStrayCopies(init.fds.flat(), init.listenerInodes);
process.title = `tsgunicorn: worker [${init.settings.proc_name}]`;
const log = createLogger({ errorlog: init.settings.errorlog, loglevel: init.settings.loglevel });

new Worker(init, log).run().catch(async (err: unknown) => {
  if (err instanceof AppLoadError) {
    log.error(err.explain());
  } else {
    log.error(`Worker failed to boot: ${(err as Error)?.stack ?? String(err)}`);
  }
  await log.flush();
  process.exit(err instanceof AppLoadError ? WORKER_EXIT.APP_LOAD_ERROR : WORKER_EXIT.BOOT_ERROR);
});
