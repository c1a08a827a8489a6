// `npm run bench`: tsgunicorn against Node's cluster module (SCHED_RR and SCHED_NONE), one plain
// `http` process, PM2 cluster mode and the raw SO_REUSEPORT ceiling, serving the same apps with
// the same worker count, interleaved over several rounds; then start-to-ready times, HUP and USR2.
// Writes docs/performance.md (between its bench markers), docs/performance-*.svg and
// docs/performance-results.json. See docs/performance.md for how to read it.
//
//   node dist/bench/run.js [--smoke] [--rounds N] [--no-wait] [--out DIR]
//   node dist/bench/run.js --render docs/performance-results.json [--out DIR]

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { contenders, type Contender, type ContenderId } from './contenders.js';
import { measureHup, measurePm2Reload, measureUsr2 } from './lifecycle.js';
import { ROOT, UNSET_FOR_SERVERS, connectionsPerWorker, cpuMs, freePort, placeCpus, rssMiB, serversOn, sleep, snapshotTsgunicorn } from './procs.js';
import { writeReport } from './report.js';
import type { AppId, LoadSample, Meta, Results, Settings } from './results.js';
import { countWorkers, load, wrkVersion } from './wrk.js';

const MAIN: readonly ContenderId[] = ['tsg', 'tsg-reuseport', 'cluster-rr', 'cluster-none', 'single', 'pm2', 'raw'];
/** Worker counts other than the main one: cheap contenders only (PM2 takes seconds to start and stop). */
const SCALE: readonly ContenderId[] = ['tsg', 'tsg-reuseport', 'cluster-rr', 'cluster-none', 'raw'];
const READY: readonly ContenderId[] = ['tsg', 'tsg-reuseport', 'cluster-rr', 'pm2', 'raw'];
const APPS: Record<AppId, string> = { hello: join(ROOT, 'bench', 'apps', 'hello.mjs'), json: join(ROOT, 'bench', 'apps', 'json.mjs') };
const QUIET_LOAD = 1.5;
const QUIET_WAIT_S = 20 * 60;

const FULL: Settings = { rounds: 3, workers: 2, scaleWorkers: [1, 4], readyWorkers: [1, 2, 4, 8], seconds: 10, scaleSeconds: 5, warmupSeconds: 2, balanceSeconds: 5, connections: 50, threads: 1 };
const SMOKE: Settings = { rounds: 1, workers: 2, scaleWorkers: [1, 4], readyWorkers: [1, 8], seconds: 2, scaleSeconds: 1, warmupSeconds: 1, balanceSeconds: 1, connections: 50, threads: 1 };

const loadavg = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const load1 = (): number => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
const log = (msg: string): void => { process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`); };

/** Rotates `xs` so that each round starts at a different place (interleaving). */
function rotate<T>(xs: readonly T[], round: number, rounds: number): T[] {
  const k = Math.round((round * xs.length) / rounds) % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

async function waitQuiet(enabled: boolean): Promise<Meta['quiet']> {
  const start = Date.now();
  let reached = load1() < QUIET_LOAD;
  while (enabled && !reached && Date.now() - start < QUIET_WAIT_S * 1000) {
    log(`load average ${loadavg()}: waiting for the 1-minute figure to drop below ${QUIET_LOAD}`);
    await sleep(15000);
    reached = load1() < QUIET_LOAD;
  }
  if (!reached) log(`load average still ${loadavg()}: running anyway (recorded in the report)`);
  return { threshold: QUIET_LOAD, waitedS: Math.round((Date.now() - start) / 1000), reached };
}

function git(args: string[]): string {
  try { return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim(); } catch { return ''; }
}

async function collectMeta(settings: Settings, quiet: Meta['quiet'], placement: Meta['placement']): Promise<Meta> {
  const pkg = (p: string): string => (JSON.parse(readFileSync(join(ROOT, p), 'utf8')) as { version: string }).version;
  const changed = git(['status', '--porcelain', '--', 'src']).split('\n').filter(Boolean).length;
  return {
    date: new Date().toISOString(),
    command: ['npm run bench', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' '),
    settings,
    // cpus(), not availableParallelism(): this process is pinned to one CPU by now.
    machine: { nproc: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', kernel: release(), memGiB: Math.round(totalmem() / 2 ** 30 * 10) / 10 },
    versions: {
      node: process.version,
      npm: execFileSync('npm', ['-v'], { encoding: 'utf8' }).trim(),
      wrk: await wrkVersion(),
      pm2: pkg('node_modules/pm2/package.json'),
      tsgunicorn: pkg('package.json'),
      commit: git(['rev-parse', '--short', 'HEAD']),
      srcChanges: changed === 0 ? 'none' : `${changed} uncommitted file(s) under src/ (the build measured)`,
    },
    loadavg: { start: loadavg(), end: '', rounds: [] },
    quiet,
    placement,
    unsetEnv: UNSET_FOR_SERVERS,
    durationS: 0,
  };
}

interface Cell {
  readonly app: AppId;
  readonly contender: Contender;
  readonly workers: number;
  readonly seconds: number;
  readonly balance: boolean;
}

async function loadCell(c: Cell, s: Settings, round: number): Promise<LoadSample> {
  const port = await freePort();
  const { running } = await c.contender.start(APPS[c.app], c.workers, port);
  try {
    const wrk = { port, connections: s.connections, threads: s.threads };
    await load({ ...wrk, seconds: s.warmupSeconds });
    const serving = [...(running.master === null ? [] : [running.master]), ...running.workers()];
    const cpuBefore = serving.map(cpuMs);
    const r = await load({ ...wrk, seconds: c.seconds });
    const cpu = serving.map(cpuMs).reduce((a, x, i) => a + x - cpuBefore[i]!, 0);
    const workers = running.workers();
    const masterRssMiB = running.master === null ? null : rssMiB(running.master);
    const workerRssMiB = workers.map(rssMiB);
    let balance: Record<string, number> | null = null;
    let connections: Record<string, number> | null = null;
    if (c.balance) {
      balance = Object.fromEntries(workers.map((p) => [String(p), 0]));
      const counted = countWorkers({ ...wrk, seconds: s.balanceSeconds });
      // wrk opens its connections at once and keeps them: halfway through, each worker holds its share.
      await sleep((s.balanceSeconds * 1000) / 2);
      connections = connectionsPerWorker(port, workers);
      Object.assign(balance, await counted);
    }
    return { round, app: c.app, contender: c.contender.id, workers: c.workers, rps: r.rps, p50Ms: r.p50Ms, p90Ms: r.p90Ms, p99Ms: r.p99Ms, maxMs: r.maxMs, errors: r.errors, cpuUsPerRequest: (cpu * 1000) / r.requests, masterRssMiB, workerRssMiB, balance, connections };
  } finally {
    await running.stop();
  }
}

async function bench(settings: Settings, wait: boolean): Promise<Results> {
  const home = snapshotTsgunicorn();
  const all = contenders(home);
  const placement = placeCpus();
  const quiet = await waitQuiet(wait);
  const meta = await collectMeta(settings, quiet, placement);
  const results: Results = { meta, load: [], ready: [], hup: [], usr2: [], pm2Reload: [], failures: [] };
  const t0 = Date.now();
  const s = settings;
  const cells: Cell[] = [];
  for (const app of ['hello', 'json'] as const) {
    for (const id of MAIN) cells.push({ app, contender: all.get(id)!, workers: s.workers, seconds: s.seconds, balance: app === 'hello' && id !== 'single' });
  }
  for (const w of s.scaleWorkers) {
    for (const id of SCALE) cells.push({ app: 'hello', contender: all.get(id)!, workers: w, seconds: s.scaleSeconds, balance: w > 1 });
  }
  const readyCells: [Contender, number][] = [[all.get('single')!, 1]];
  for (const w of s.readyWorkers) for (const id of READY) readyCells.push([all.get(id)!, w]);

  const attempt = async <T>(what: string, f: () => Promise<T>): Promise<T | null> => {
    try {
      return await f();
    } catch (err) {
      const msg = `round ${results.meta.loadavg.rounds.length}: ${what}: ${(err as Error).message.split('\n')[0]}`;
      log(`FAILED ${msg}`);
      results.failures.push(msg);
      return null;
    }
  };

  try {
    for (let round = 0; round < s.rounds; round++) {
      meta.loadavg.rounds.push(loadavg());
      log(`round ${round + 1}/${s.rounds} (load average ${loadavg()})`);
      serversOn(placement?.servers ?? null);
      for (const c of rotate(cells, round, s.rounds)) {
        const what = `${c.app} ${c.contender.id} -w ${c.workers}`;
        const r = await attempt(what, () => loadCell(c, s, round));
        if (r) {
          results.load.push(r);
          log(`${what}: ${Math.round(r.rps)} req/s, p99 ${r.p99Ms.toFixed(2)} ms${r.balance ? `, balance ${JSON.stringify(Object.values(r.balance))}, connections ${JSON.stringify(Object.values(r.connections ?? {}))}` : ''}`);
        }
        await sleep(300);
      }
      serversOn(placement?.all ?? null);
      for (const [c, w] of rotate(readyCells, round, s.rounds)) {
        const r = await attempt(`ready ${c.id} -w ${w}`, async () => {
          const st = await c.start(APPS.hello, w, await freePort());
          await st.running.stop();
          return st;
        });
        if (r) results.ready.push({ round, contender: c.id, workers: w, readyMs: r.readyMs, firstMs: r.firstMs });
        await sleep(300);
      }
      serversOn(placement?.servers ?? null);
      const tsg = all.get('tsg')!;
      const hup = await attempt('HUP', () => measureHup(tsg, APPS.hello, s.workers));
      if (hup) { results.hup.push({ ...hup, round }); log(`HUP: serving after ${hup.servingMs.toFixed(0)} ms, old workers gone after ${hup.oldGoneMs.toFixed(0)} ms, ${hup.failed} failed`); }
      const usr2 = await attempt('USR2', () => measureUsr2(tsg, APPS.hello, s.workers));
      if (usr2) { results.usr2.push({ ...usr2, round }); log(`USR2: serving after ${usr2.servingMs.toFixed(0)} ms, old master gone after ${usr2.oldGoneMs.toFixed(0)} ms, ${usr2.failed} failed`); }
      const pm2 = await attempt('pm2 reload', () => measurePm2Reload(all.get('pm2')!, APPS.hello, s.workers));
      if (pm2) { results.pm2Reload.push({ ...pm2, round }); log(`pm2 reload: ${pm2.reloadMs.toFixed(0)} ms, ${pm2.failed} failed`); }
    }
  } finally {
    meta.loadavg.end = loadavg();
    meta.durationS = Math.round((Date.now() - t0) / 1000);
    rmSync(home, { recursive: true, force: true });
  }
  return results;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      smoke: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      'no-wait': { type: 'boolean', default: false },
      out: { type: 'string' },
      render: { type: 'string' },
    },
  });
  const out = values.out ?? (values.smoke ? join(tmpdir(), 'tsg-bench-smoke') : join(ROOT, 'docs'));
  mkdirSync(out, { recursive: true });
  let results: Results;
  if (values.render) {
    results = JSON.parse(readFileSync(values.render, 'utf8')) as Results;
  } else {
    const base = values.smoke ? SMOKE : FULL;
    const settings: Settings = { ...base, rounds: values.rounds ? Math.max(1, Number(values.rounds)) : base.rounds };
    results = await bench(settings, !values['no-wait'] && !values.smoke);
    writeFileSync(join(out, 'performance-results.json'), `${JSON.stringify(results, null, 1)}\n`);
  }
  const written = writeReport(results, out);
  log(`wrote ${written.join(', ')}`);
  // PM2's client leaves handles open; the report is written.
  process.exit(0);
}

await main();
