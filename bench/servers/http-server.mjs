// One plain `http` process serving BENCH_APP on 127.0.0.1:BENCH_PORT: the single-process
// contender, each process of the raw SO_REUSEPORT ceiling (BENCH_REUSE_PORT=1: its own socket,
// made with node-unix-socket because Node 20's listen() has no reusePort), and the script PM2 runs
// in cluster mode (where listen() goes through PM2's cluster primary). Prints `ready PID`.
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';

const app = (await import(pathToFileURL(process.env.BENCH_APP).href)).default;
const port = Number(process.env.BENCH_PORT);
const server = createServer(app);
const listening = () => process.stdout.write(`ready ${process.pid}\n`);
if (process.env.BENCH_REUSE_PORT === '1') {
  const { createReuseportFd } = await import('node-unix-socket');
  server.listen({ fd: createReuseportFd(port, '127.0.0.1') }, listening);
} else {
  server.listen(port, '127.0.0.1', listening);
}
// The graceful stop PM2's documentation asks of an app: `pm2 reload` sends SIGINT, then SIGKILL
// after kill_timeout.
process.once('SIGINT', () => server.close(() => process.exit(0)));
