// Node's own `cluster` module serving BENCH_APP with BENCH_WORKERS workers on 127.0.0.1:BENCH_PORT,
// scheduling by BENCH_SCHED: `rr` (SCHED_RR: the primary accepts and hands connections round robin)
// or `none` (SCHED_NONE: every worker accepts on the one shared socket). Prints `ready PID` once
// every worker listens.
import cluster from 'node:cluster';
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';

if (cluster.isPrimary) {
  cluster.schedulingPolicy = process.env.BENCH_SCHED === 'none' ? cluster.SCHED_NONE : cluster.SCHED_RR;
  const n = Number(process.env.BENCH_WORKERS);
  let listening = 0;
  cluster.on('listening', () => { if (++listening === n) process.stdout.write(`ready ${process.pid}\n`); });
  for (let i = 0; i < n; i++) cluster.fork();
} else {
  const app = (await import(pathToFileURL(process.env.BENCH_APP).href)).default;
  createServer(app).listen(Number(process.env.BENCH_PORT), '127.0.0.1');
}
