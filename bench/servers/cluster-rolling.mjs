// Node's `cluster` with the rolling restart people write for it: on SIGHUP the primary forks a new
// set of BENCH_WORKERS workers, waits until each listens, then disconnects the old ones (each
// closes its server and exits once its connections end). Serves BENCH_APP on
// 127.0.0.1:BENCH_PORT with the default scheduling (SCHED_RR on Linux). Prints `ready PID` once
// every worker listens and `reloaded` once the old workers of a restart have exited.
import cluster from 'node:cluster';
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';

if (cluster.isPrimary) {
  const n = Number(process.env.BENCH_WORKERS);
  const generation = () => Promise.all(Array.from({ length: n }, () => new Promise((resolve) => {
    const w = cluster.fork();
    w.once('listening', () => resolve(w));
  })));
  let current = await generation();
  process.stdout.write(`ready ${process.pid}\n`);
  let restarting = Promise.resolve();
  process.on('SIGHUP', () => {
    restarting = restarting.then(async () => {
      const old = current;
      current = await generation();
      await Promise.all(old.map((w) => new Promise((resolve) => {
        const kill = setTimeout(() => w.kill('SIGKILL'), 10_000);
        w.once('exit', () => { clearTimeout(kill); resolve(); });
        w.disconnect();
      })));
      process.stdout.write('reloaded\n');
    });
  });
} else {
  const app = (await import(pathToFileURL(process.env.BENCH_APP).href)).default;
  createServer(app).listen(Number(process.env.BENCH_PORT), '127.0.0.1');
}
