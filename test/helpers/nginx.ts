// A real nginx (Debian's /usr/sbin/nginx) in front of tsgunicorn, as docs/deploy.md recommends:
// an upstream with keep-alive connections. Everything it writes (pid file, error log, temp
// directories) stays in a temp dir; it is stopped by its pid at the test's teardown.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { accepts, alive, childrenOf, freePort, sleep, tempDir, waitUntil } from './daemon.js';

export const NGINX = '/usr/sbin/nginx';

/** Why nginx cannot be tested here, or null. */
export function lacksNginx(): string | null {
  return existsSync(NGINX) ? null : `no ${NGINX} (apt-get install nginx-light)`;
}

export interface NginxOptions {
  /** What the upstream's `server` line names: `unix:/path` or `127.0.0.1:PORT`. */
  readonly upstream: string;
  /** nginx's worker_connections (clients and upstream connections together); 1024 by default. */
  readonly workerConnections?: number;
}

export interface Nginx {
  readonly pid: number;
  readonly port: number;
  readonly dir: string;
  /** nginx's error log so far. */
  errorLog(): string;
  /** Stops nginx and its workers by pid. */
  stop(): Promise<void>;
}

function config(dir: string, port: number, { upstream, workerConnections = 1024 }: NginxOptions): string {
  const temp = (what: string): string => `${what}_temp_path ${join(dir, what)};`;
  return `
daemon off;
# nginx's workers connect to the upstream socket, which tsgunicorn (run as root here) creates
# owned by root; without a user line nginx's workers would run as nobody and get EACCES.
${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
# warn, not the default error: also "upstream server temporarily disabled" and the like.
error_log ${join(dir, 'error.log')} warn;
${workerConnections > 1024 ? `# Each connection is a descriptor: let a worker have them all.\nworker_rlimit_nofile ${workerConnections + 64};` : ''}
events { worker_connections ${workerConnections}; }
http {
    access_log off;
    ${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(temp).join('\n    ')}
    upstream tsgunicorn {
        server ${upstream};
        keepalive 32;
        # Below tsgunicorn's keep-alive (5 s): nginx closes an idle connection before the server
        # does, so it never sends a request on one the server is closing at that moment.
        keepalive_timeout 4s;
    }
    server {
        listen 127.0.0.1:${port};
        location / {
            proxy_pass http://tsgunicorn;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            # Never retry a request on another connection: a failure reaches the client as a 502.
            proxy_next_upstream off;
        }
    }
}
`;
}

/** Kills `pid` and the workers it has now: TERM, then KILL what is left after `graceMs`. */
async function stop(pid: number, graceMs = 3000): Promise<void> {
  const all = [pid, ...childrenOf(pid)];
  const kill = (sig: NodeJS.Signals): void => {
    for (const p of all) try { process.kill(p, sig); } catch { /* gone */ }
  };
  kill('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (all.some(alive) && Date.now() < deadline) await sleep(50);
  kill('SIGKILL');
}

/** startNginx without a test: the caller stops it. */
export async function launchNginx(opts: NginxOptions): Promise<Nginx> {
  const dir = tempDir();
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, config(dir, port, opts));
  // -e: the error log nginx opens before it has read the config (else /var/log/nginx/error.log).
  const proc = spawn(NGINX, ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout.on('data', (d: Buffer) => { output += d.toString(); });
  proc.stderr.on('data', (d: Buffer) => { output += d.toString(); });
  let exited = false;
  proc.once('exit', () => { exited = true; });
  const pid = proc.pid!;
  const errorLog = (): string => { try { return readFileSync(join(dir, 'error.log'), 'utf8'); } catch { return ''; } };
  try {
    await waitUntil(`nginx on port ${port}`, async () => exited || await accepts(port), 10000);
    if (exited) throw new Error(`nginx exited at start: ${output}${errorLog()}`);
  } catch (err) {
    await stop(pid);
    throw err;
  }
  return { pid, port, dir, errorLog, stop: () => stop(pid) };
}

/**
 * Starts nginx in the foreground and waits until it accepts connections (without sending a
 * request: one now would reach the upstream and could leave a line in the error log); the test's
 * teardown stops it.
 */
export async function startNginx(t: ExecutionContext, opts: NginxOptions): Promise<Nginx> {
  const nginx = await launchNginx(opts);
  t.teardown(() => nginx.stop());
  return nginx;
}
