// A real HAProxy (Debian's /usr/sbin/haproxy) in front of tsgunicorn instances, configured as
// docs/fleet.md recommends: active health checks on each instance's GET /health, and, so that
// nothing is masked, `retries 0` and no redispatch: a request sent to a server that refuses or
// closes reaches the client as an error. Its files stay in a temp dir; it is stopped by its pid at
// the test's teardown. What it says about server states (UP, DOWN) is kept with the time it came.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { accepts, alive, freePort, sleep, tempDir, waitUntil } from './daemon.js';

export const HAPROXY = '/usr/sbin/haproxy';

/** Why HAProxy cannot be tested here, or null. */
export function lacksHaproxy(): string | null {
  return existsSync(HAPROXY) ? null : `no ${HAPROXY} (apt-get install haproxy)`;
}

export interface Backend {
  readonly name: string;
  /** The instance's address (default 127.0.0.1), its port and its metrics_bind port (the health check's). */
  readonly host?: string;
  readonly port: number;
  readonly healthPort: number;
  /** More of the server line, e.g. `send-proxy-v2`. */
  readonly options?: string;
}

/** A line HAProxy wrote, and when it came (ms since the epoch). */
export interface HaproxyEvent {
  readonly at: number;
  readonly line: string;
}

export interface Haproxy {
  readonly pid: number;
  readonly port: number;
  readonly events: HaproxyEvent[];
  /** When HAProxy first said `server` went DOWN at or after `since` (ms), or null. */
  downAt(server: string, since: number): number | null;
  /** Waits until HAProxy says `server` is UP (its health checks pass). */
  waitUp(server: string, since: number): Promise<number>;
}

/** The health check: every 200 ms; down after 2 failures, up after 2 passes. */
export const CHECK = { interMs: 200, fall: 2, rise: 2 } as const;

function config(dir: string, port: number, backends: readonly Backend[]): string {
  return `
global
    pidfile ${join(dir, 'haproxy.pid')}
    log stderr format raw local0 info
defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    # Nothing masked: a request whose server refuses or drops it is an error for the client.
    retries 0
    no option redispatch
frontend web
    bind 127.0.0.1:${port}
    default_backend app
backend app
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
${backends.map((b) => `    server ${b.name} ${b.host ?? '127.0.0.1'}:${b.port} check port ${b.healthPort} inter ${CHECK.interMs} fall ${CHECK.fall} rise ${CHECK.rise} ${b.options ?? ''}`).join('\n')}
`;
}

/** Whether HAProxy accepts on `port`, asked from inside `prefix` (a network namespace), or here. */
async function listening(port: number, prefix: readonly string[]): Promise<boolean> {
  if (prefix.length === 0) return accepts(port);
  return spawnSync(prefix[0]!, [...prefix.slice(1), 'bash', '-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Starts HAProxy in the foreground and waits until every backend is UP. `prefix` runs it in
 * another network namespace (`nsenter --net=... --`), where the backends are.
 */
export async function startHaproxy(t: ExecutionContext, backends: readonly Backend[], prefix: readonly string[] = []): Promise<Haproxy> {
  const dir = tempDir();
  const port = await freePort();
  const conf = join(dir, 'haproxy.cfg');
  writeFileSync(conf, config(dir, port, backends));
  const command = [...prefix, HAPROXY, '-db', '-f', conf];
  const proc = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const events: HaproxyEvent[] = [];
  let partial = '';
  const take = (d: Buffer): void => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop()!;
    for (const line of lines) events.push({ at: Date.now(), line });
  };
  proc.stdout.on('data', take);
  proc.stderr.on('data', take);
  const pid = proc.pid!;
  t.teardown(async () => {
    try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
    for (let i = 0; i < 60 && alive(pid); i++) await sleep(50);
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  });
  const stateAt = (server: string, state: 'UP' | 'DOWN', since: number): number | null =>
    events.find((e) => e.at >= since && new RegExp(`Server app/${server} is ${state}`).test(e.line))?.at ?? null;
  const h: Haproxy = {
    pid, port, events,
    downAt: (server, since) => stateAt(server, 'DOWN', since),
    async waitUp(server, since) {
      await waitUntil(`HAProxy to see ${server} UP (${events.map((e) => e.line).join(' | ')})`, () => stateAt(server, 'UP', since) !== null, 15_000);
      return stateAt(server, 'UP', since)!;
    },
  };
  // Servers start UP; a few rounds of checks confirm it.
  await waitUntil(`HAProxy on port ${port} (${events.map((e) => e.line).join(' | ')})`, async () => !alive(pid) || await listening(port, prefix), 10_000);
  if (!alive(pid)) throw new Error(`haproxy exited at start: ${events.map((e) => e.line).join('\n')}`);
  await sleep(CHECK.interMs * (CHECK.rise + 1));
  return h;
}
