// The deployment matrix: every kind of socket users serve on, through every operation that must
// not fail a request, under a load of 50 keep-alive connections plus a stream of new connections
// (Node's client, which never retries). The cells are generated: for each socket kind one daemon
// walks the operations in turn (serial tests that share it), and every cell asserts zero failed
// requests, that the socket still answers (and its path exists), the name the log gives it, and
// that no process or descriptor leaked.

import test, { type ExecutionContext } from 'ava';
import { existsSync, lstatSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { closeFd, createReuseportFd } from 'node-unix-socket';
import { alive, childrenOf, Daemon, freePort, get, pidIn, tempDir, waitUntil, workersOf } from './helpers/daemon.js';
import { kernelMigratesQueued } from '../src/sockets/listener-set.js';
import { Load } from './helpers/load.js';
import { fdCount, holdersOf, listeningInodes, socketInodes } from './helpers/proc.js';
import { lacksSocketActivate, needing } from './helpers/requirements.js';

const WORKERS = 2;

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const KEEP_ALIVE = 50;
const FRESH = 4;

/** How a socket kind is set up, named and reached. */
interface Sockets {
  /** TOML lines for the config file. */
  readonly config: readonly string[];
  readonly prefix?: readonly string[];
  /** Our descriptors the daemon gets as 3, 4, ... */
  readonly fds?: readonly number[];
  /** What `Listening at:` and `Ready: ... serving on` say. */
  readonly label: string;
  /** Where the load goes (over `socketPath` when set). */
  readonly url: string;
  readonly socketPath?: string;
  /** Other URLs that must answer after each step. */
  readonly also: readonly string[];
  /** The socket outlives a master (this process holds it): a stop and a fresh start fail nothing. */
  readonly persistent: boolean;
  /** One socket per worker (reuse_port): a worker's socket closes with it. */
  readonly reusePort?: boolean;
  readonly close: () => void;
}

interface Kind {
  readonly name: string;
  readonly lacking: string | null;
  readonly make: (dir: string) => Promise<Sockets>;
}

const tcp = (host: string, extra: Partial<Sockets> = {}) => async (): Promise<Sockets> => {
  const port = await freePort();
  const addr = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return { config: [`bind = ["${addr}"]`], label: addr, url: `http://${addr}/`, also: [], persistent: false, close: () => {}, ...extra };
};

const KINDS: readonly Kind[] = [
  { name: 'TCP', lacking: null, make: tcp('127.0.0.1') },
  {
    name: 'TCP with reuse_port', lacking: null,
    make: async () => {
      const s = await tcp('127.0.0.1')();
      return { ...s, config: [...s.config, 'reuse_port = true'], label: `${s.label} (reuse-port)`, reusePort: true };
    },
  },
  { name: 'IPv6', lacking: null, make: tcp('::1') },
  {
    name: 'unix socket', lacking: null,
    make: async (dir) => {
      const path = join(dir, 'app.sock');
      return { config: [`bind = ["unix:${path}"]`], label: `unix:${path}`, url: 'http://localhost/', socketPath: path, also: [], persistent: false, close: () => {} };
    },
  },
  {
    name: 'fd:// from the parent', lacking: null,
    make: async () => {
      const port = await freePort();
      const fd = createReuseportFd(port, '127.0.0.1');
      return { config: ['bind = ["fd://3"]'], fds: [fd], label: 'fd://3', url: `http://127.0.0.1:${port}/`, also: [], persistent: true, close: () => closeFd(fd) };
    },
  },
  {
    name: 'two named sockets from systemd-socket-activate', lacking: lacksSocketActivate(),
    make: async () => {
      const [web, admin] = [await freePort(), await freePort()];
      return {
        config: [],
        prefix: ['systemd-socket-activate', '-l', `127.0.0.1:${web}`, '-l', `127.0.0.1:${admin}`, '--fdname=web:admin'],
        label: 'fd://3 (web), fd://4 (admin)',
        url: `http://127.0.0.1:${web}/`,
        also: [`http://127.0.0.1:${admin}/admin`],
        persistent: false,
        close: () => {},
      };
    },
  },
];

/** One socket kind's daemon (and the masters that follow it), its files, and the load on it. */
class Bench {
  readonly daemons: Daemon[] = [];
  load: Load | null = null;
  /** The master's descriptors with WORKERS workers, once everything has settled after the start. */
  baselineFds = 0;
  /** Resets a step may cause (see slotResets()), and those counted so far. */
  resetBudget = 0;
  resetsBefore = 0;
  acceptedResets = 0;
  private settings: Record<string, string> = {};

  constructor(readonly dir: string, readonly sockets: Sockets) {}

  get pidfile(): string { return join(this.dir, 'master.pid'); }
  get appFile(): string { return join(this.dir, 'app.mjs'); }
  get configFile(): string { return join(this.dir, 'tsgunicorn.toml'); }
  get output(): string { return this.daemons.map((d) => d.output).join(''); }

  /** The master the pidfile names. */
  master(): number {
    const pid = pidIn(this.pidfile);
    if (pid === null) throw new Error('no pidfile');
    return pid;
  }

  writeApp(version: string): void {
    writeFileSync(this.appFile, `export default (req, res) => { res.setHeader('X-Worker', String(process.pid)); res.end('${version} ' + req.url + '\\n'); };\n`);
  }

  /** Writes the config file with these settings changed. */
  configure(changes: Record<string, string> = {}): void {
    this.settings = { ...this.settings, ...changes };
    const lines = [
      `workers = ${WORKERS}`, `pidfile = "${this.pidfile}"`, `app = "${this.appFile}"`, 'graceful_timeout = 20',
      ...this.sockets.config, ...Object.entries(this.settings).map(([k, v]) => `${k} = ${v}`),
    ];
    writeFileSync(this.configFile, `${lines.join('\n')}\n`);
  }

  start(): Daemon {
    const d = new Daemon(['-c', this.configFile], {
      ...(this.sockets.prefix ? { prefix: this.sockets.prefix } : {}),
      ...(this.sockets.fds ? { fds: this.sockets.fds } : {}),
    });
    this.daemons.push(d);
    // systemd-socket-activate starts the program when the first connection comes (once it listens).
    if (this.sockets.prefix) void waitUntil('activation', () => get(this.sockets.url, {}, 60000).then(() => true, () => false), 60000).catch(() => {});
    return d;
  }

  startLoad(): void {
    this.load = new Load(this.sockets.url, KEEP_ALIVE, { fresh: FRESH, ...(this.sockets.socketPath ? { socketPath: this.sockets.socketPath } : {}) });
  }

  async fetch(url = this.sockets.url): Promise<{ status: number; body: string }> {
    if (!this.sockets.socketPath) return get(url);
    const { request } = await import('node:http');
    return new Promise((resolve, reject) => {
      const req = request(url, { socketPath: this.sockets.socketPath, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => { body += c; });
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.setTimeout(10000, () => req.destroy(new Error('request timeout')));
      req.end();
    });
  }

  /** Lines the master `pid` logged. */
  linesOf(pid: number): string[] {
    return this.output.split('\n').filter((l) => l.includes(`] [${pid}] [`));
  }

  async waitLog(pid: number, re: RegExp, what: string, after = 0): Promise<void> {
    await waitUntil(`${what} (log of ${pid}: ${this.linesOf(pid).slice(-5).join(' | ')})`, () => this.linesOf(pid).filter((l) => re.test(l)).length > after, 30000);
  }

  count(pid: number, re: RegExp): number {
    return this.linesOf(pid).filter((l) => re.test(l)).length;
  }

  kill(): void {
    void this.load?.stop();
    for (const d of this.daemons) d.kill();
    this.sockets.close();
  }
}

/** What every cell ends with: the socket answers, the log names it, nothing leaked, nothing failed. */
async function settled(t: ExecutionContext, b: Bench, failedBefore: number, servedBefore: number, workers = WORKERS): Promise<void> {
  const master = b.master();
  await waitUntil(`${workers} workers of ${master} (have ${workersOf(master).length})`, () => workersOf(master).length === workers, 30000);
  await waitUntil('the load to go on', () => b.load!.served > servedBefore + 200 && b.load!.freshOk > 0, 30000);
  const failed = b.load!.failed - failedBefore;
  const resets = Math.min(failed, b.resetBudget, (b.load!.errors['ECONNRESET'] ?? 0) - b.resetsBefore);
  b.resetBudget = 0;
  if (resets > 0) t.log(`tcp_migrate_req is off: ${resets} reset(s) as a worker's socket closed`);
  b.acceptedResets += resets;
  t.is(failed - resets, 0, `failed requests in this step, by kind so far: ${JSON.stringify(b.load!.errors)}`);
  const r = await b.fetch();
  t.is(r.status, 200, 'the socket answers a new connection');
  for (const url of b.sockets.also) t.is((await get(url)).status, 200, `${url} answers`);
  if (b.sockets.socketPath) t.true(lstatSync(b.sockets.socketPath).isSocket(), 'the unix socket path is there');
  await b.waitLog(master, new RegExp(`Listening at: ${escape(b.sockets.label)} \\(${master}\\)$`), `the master to name its sockets ${b.sockets.label}`);
  // Nothing else holds the sockets: no old master, no leftover worker.
  const workerPids = workersOf(master);
  const inodes = new Set(socketInodes(master).filter((i) => listeningInodes().has(i)));
  const expected = [master, ...workerPids, ...(b.sockets.fds ? [process.pid] : [])].sort((x, y) => x - y);
  await waitUntil(`only the master, its workers (and we) hold the listening sockets: ${JSON.stringify(holdersOf(inodes))} vs ${JSON.stringify(expected)}`,
    () => JSON.stringify(holdersOf(inodes)) === JSON.stringify(expected), 20000);
  if (workers === WORKERS) {
    await waitUntil(`the master's descriptors back at ${b.baselineFds} (have ${fdCount(master)})`, () => fdCount(master) === b.baselineFds, 10000);
  }
  t.pass();
}

/** Runs one cell: `act` performs the operation and waits until it is done. */
function cell(b: () => Bench, kind: Kind, op: string, act: (b: Bench, t: ExecutionContext) => Promise<number | void>): void {
  test.serial(`${kind.name}: ${op}`, async (t) => {
    const bench = b();
    const load = bench.load!;
    const [failed, served] = [load.failed, load.served];
    const workers = await act(bench, t);
    // A step that stops the load and starts another (TERM on a socket the master bound) counts anew.
    const fresh = bench.load !== load;
    await settled(t, bench, fresh ? 0 : failed, fresh ? 0 : served, typeof workers === 'number' ? workers : WORKERS);
    t.log(`${bench.load!.served - (fresh ? 0 : served)} requests answered in this step (${bench.load!.freshOk} on new connections so far), 0 failed`);
  });
}

/**
 * With reuse_port, a step that retires a worker closes its socket, and without
 * net.ipv4.tcp_migrate_req the kernel resets what is queued on it at that instant (at most a few
 * connections, as in test/upgrade.test.ts; docs/reliability.md): those resets are allowed, and
 * only those. With the sysctl on, none is.
 */
function slotResets(b: Bench): void {
  if (!b.sockets.reusePort || kernelMigratesQueued()) return;
  b.resetBudget = 3;
  b.resetsBefore = b.load!.errors['ECONNRESET'] ?? 0;
}

async function upgradedFrom(b: Bench, old: number): Promise<number> {
  await waitUntil('the pidfile to name a new master and the old one to be gone', () => {
    const p = pidIn(b.pidfile);
    return p !== null && p !== old && !alive(old) && !existsSync(`${b.pidfile}.oldbin`);
  }, 30000);
  return b.master();
}

for (const kind of KINDS) {
  needing(kind.lacking, `${kind.name}: the matrix`, () => {
    let bench: Bench | null = null;
    const b = (): Bench => bench!;
    test.after.always(() => bench?.kill());

    test.serial(`${kind.name}: start`, async (t) => {
      const dir = tempDir();
      bench = new Bench(dir, await kind.make(dir));
      bench.writeApp('v1');
      bench.configure();
      const d = bench.start();
      await d.waitReady();
      const master = bench.master();
      t.is(master, d.pid);
      await bench.waitLog(master, new RegExp(`Ready: ${WORKERS} worker\\(s\\) serving on ${escape(bench.sockets.label)}$`), 'Ready to name the sockets');
      await waitUntil('workers', () => workersOf(master).length === WORKERS);
      bench.startLoad();
      await waitUntil('the load to run', () => bench!.load!.served > 300);
      bench.baselineFds = fdCount(master);
      await settled(t, bench, 0, 0);
    });

    cell(b, kind, 'HUP serves new app code', async (bench, t) => {
      const master = bench.master();
      const old = workersOf(master);
      const reloads = bench.count(master, /Reloaded: /);
      bench.writeApp('v2');
      process.kill(master, 'SIGHUP');
      await bench.waitLog(master, /Reloaded: /, 'the reload', reloads);
      await waitUntil('the old workers to exit', () => old.every((p) => !alive(p)));
      t.regex((await bench.fetch()).body, /^v2 /);
    });

    cell(b, kind, 'TTIN then TTOU', async (bench) => {
      const master = bench.master();
      process.kill(master, 'SIGTTIN');
      await waitUntil('a third worker', () => workersOf(master).length === WORKERS + 1);
      await waitUntil('the load to go on', async () => (await bench.fetch()).status === 200);
      slotResets(bench);
      process.kill(master, 'SIGTTOU');
    });

    cell(b, kind, 'max_requests recycling', async (bench) => {
      const master = bench.master();
      const reloads = bench.count(master, /Reloaded: /);
      bench.configure({ max_requests: '300' });
      process.kill(master, 'SIGHUP');
      await bench.waitLog(master, /Reloaded: /, 'the reload with max_requests', reloads);
      const recycled = bench.count(master, /\(max_requests\): replacing it/);
      await bench.waitLog(master, /\(max_requests\): replacing it/, 'two workers recycled', recycled + 1);
      bench.configure({ max_requests: '0' });
      process.kill(master, 'SIGHUP');
      await bench.waitLog(master, /Reloaded: /, 'the reload without max_requests', reloads + 1);
    });

    cell(b, kind, 'USR2 with auto handoff', async (bench, t) => {
      const old = bench.master();
      process.kill(old, 'SIGUSR2');
      const master = await upgradedFrom(bench, old);
      // (Its lines reach us through a pipe, maybe after it took over.)
      await bench.waitLog(master, new RegExp(`Ready: ${WORKERS} worker\\(s\\) serving on ${escape(bench.sockets.label)}$`), 'the new master to name the sockets as bound');
      t.pass();
    });

    cell(b, kind, 'USR2 rolled back by a broken app', async (bench, t) => {
      const master = bench.master();
      writeFileSync(bench.appFile, 'export default (;\n');
      process.kill(master, 'SIGUSR2');
      await bench.waitLog(master, /Upgrade failed: /, 'the rollback');
      bench.writeApp('v2');
      await waitUntil('the pidfile back', () => pidIn(bench.pidfile) === master && !existsSync(`${bench.pidfile}.oldbin`));
      t.is(childrenOf(master).filter((p) => !workersOf(master).includes(p)).length, 0, 'the new master is gone');
    });

    cell(b, kind, 'USR2 with manual handoff, then WINCH, then QUIT', async (bench, t) => {
      const old = bench.master();
      const reloads = bench.count(old, /Reloaded: /);
      bench.configure({ upgrade_handoff: '"manual"' });
      process.kill(old, 'SIGHUP');
      await bench.waitLog(old, /Reloaded: /, 'the reload to manual handoff', reloads);
      process.kill(old, 'SIGUSR2');
      await bench.waitLog(old, /upgrade_handoff = manual: this master stays/, 'the manual handoff');
      const next = bench.master();
      t.not(next, old);
      t.is(workersOf(old).length, WORKERS, 'the old master keeps its workers until WINCH');
      process.kill(old, 'SIGWINCH');
      await waitUntil('the old workers to stop', () => workersOf(old).length === 0);
      process.kill(old, 'SIGQUIT');
      await upgradedFrom(bench, old);
      bench.configure({ upgrade_handoff: '"auto"' });
    });

    cell(b, kind, 'TERM, then a fresh start on the same socket', async (bench, t) => {
      const old = bench.master();
      if (!bench.sockets.persistent) {
        // A socket the master bound goes with it: nothing may be refused until then.
        const r = await bench.load!.stop();
        t.is(r.failed - bench.acceptedResets, 0, JSON.stringify(r.errors));
      }
      process.kill(old, 'SIGTERM');
      await waitUntil('the master to exit', () => !alive(old));
      if (bench.sockets.socketPath) t.false(existsSync(bench.sockets.socketPath), 'the last master removed its unix socket path');
      t.false(existsSync(bench.pidfile), 'the pidfile is gone');
      const d = bench.start();
      await d.waitReady();
      bench.baselineFds = fdCount(d.pid);
      if (!bench.sockets.persistent) bench.startLoad();
    });
  });
}
