// `npm run bench:deploys`: failed requests per million across deploys, side by side in one run.
// For each load profile and contender (bench/deployers.ts): the same app, the same load (a
// process of its own, bench/deploy-load.ts: never retries, counts every failure by kind), then
// DEPLOYS reloads and DEPLOYS upgrades in a row (where the contender has upgrades), each followed
// by a steady window. Writes the "Deploys" section of docs/performance.md (between its deploys
// markers), docs/performance-deploys.svg and docs/performance-deploys.json.
//
//   node dist/bench/deploys.js [--deploys N] [--connections N] [--workers N] [--steady S]
//       [--profiles keepalive,fresh,mix,nginx] [--contenders tsg,tsg-reuseport,gunicorn,pm2,cluster,reconnect] [--out DIR]
//       [--rate R]   (an open loop: R requests/s in all, instead of each loop at saturation)
//   node dist/bench/deploys.js --render docs/performance-deploys.json [--out DIR]
// --merge FILE keeps FILE's runs of the cells not measured now (after a change to one contender,
// its cells alone are measured again); the report says which were measured when.

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { launchNginx, type Nginx } from '../test/helpers/nginx.js';
import type { Shape } from './deploy-load.js';
import { startLoad } from './load-process.js';
import { GUNICORN_THREADS, deployers, type Deployed, type Deployer } from './deployers.js';
import { writeDeploysReport, type DeployRun, type DeploysResults, type Op, type OpRun, type ProfileId } from './deploys-report.js';
import { ROOT, freePort, placeCpus, serversOn, sleep, snapshotTsgunicorn } from './procs.js';

const PROFILES: Record<ProfileId, { shape: Shape; front: boolean; connections: (n: number) => number; what: string }> = {
  keepalive: { shape: 'keepalive', front: false, connections: (n) => n, what: 'keep-alive connections, GET / back to back' },
  fresh: { shape: 'fresh', front: false, connections: () => 64, what: '64 loops of one GET per new connection (Connection: close)' },
  mix: { shape: 'mix', front: false, connections: (n) => n, what: 'keep-alive connections: 45 % POSTs of 4 KiB, 10 % GET /slow (2 s), the rest GET /' },
  nginx: { shape: 'keepalive', front: true, connections: (n) => n, what: 'keep-alive connections to nginx, which keeps 32 idle upstream connections (docs/deploy.md\'s config, no retries)' },
};

const log = (msg: string): void => { process.stderr.write(`[deploys ${new Date().toISOString().slice(11, 19)}] ${msg}\n`); };

async function runOne(d: Deployer, profile: ProfileId, o: Options): Promise<DeployRun> {
  const p = PROFILES[profile];
  const port = await freePort();
  let deployed: Deployed | null = null;
  let front: Nginx | null = null;
  let load: ReturnType<typeof startLoad> | null = null;
  try {
    deployed = await d.start(o.workers, port);
    if (p.front) front = await launchNginx({ upstream: `127.0.0.1:${port}`, workerConnections: 4 * o.connections + 512 });
    load = startLoad({ port: front?.port ?? port, connections: p.connections(o.connections), shape: p.shape, ...(o.rate ? { rate: o.rate } : {}) });
    await sleep(3000);
    const durations: Partial<Record<Op, number[]>> = {};
    for (const [op, run] of [['reload', deployed.reload], ['upgrade', deployed.upgrade]] as const) {
      if (!run) continue;
      const ms: number[] = (durations[op] = []);
      for (let i = 0; i < o.deploys; i++) {
        await load.segment(`${op}:steady`);
        await sleep(o.steadyS * 1000);
        await load.segment(`${op}:deploy`);
        const t0 = performance.now();
        await run();
        ms.push(performance.now() - t0);
      }
      // The last deploy's tail is counted too.
      await load.segment(`${op}:steady`);
      await sleep(o.steadyS * 1000);
      log(`${d.id} ${profile} ${op}: ${o.deploys} done`);
    }
    await load.segment('end');
    const report = await load.stop();
    load = null;
    const ops: Partial<Record<Op, OpRun>> = {};
    for (const [op, ms] of Object.entries(durations) as [Op, number[]][]) ops[op] = { durationsMs: ms, steady: report[`${op}:steady`]!, deploy: report[`${op}:deploy`]! };
    return { contender: d.id, label: d.label, reloadHow: d.reloadHow, upgradeHow: d.upgradeHow, profile, ops };
  } finally {
    load?.kill();
    await front?.stop();
    await deployed?.stop();
  }
}

interface Options {
  readonly deploys: number;
  readonly connections: number;
  readonly workers: number;
  readonly steadyS: number;
  /** Requests per second of an open-loop load (--rate); none: a closed loop. */
  readonly rate?: number;
}

/** The version `re` finds in what `cmd args` prints (nginx -v prints on stderr). */
function version(cmd: string, args: string[], re: RegExp): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return re.exec(`${r.stdout ?? ''}${r.stderr ?? ''}`)?.[1] ?? 'unknown';
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      deploys: { type: 'string', default: '20' }, connections: { type: 'string', default: '1000' }, workers: { type: 'string', default: '2' },
      steady: { type: 'string', default: '2' }, profiles: { type: 'string', default: Object.keys(PROFILES).join(',') },
      contenders: { type: 'string', default: 'tsg,tsg-reuseport,gunicorn,pm2,cluster,reconnect' }, out: { type: 'string', default: join(ROOT, 'docs') }, render: { type: 'string' },
      merge: { type: 'string' }, rate: { type: 'string' },
    },
  });
  mkdirSync(values.out, { recursive: true });
  if (values.render) {
    for (const f of writeDeploysReport(JSON.parse(readFileSync(values.render, 'utf8')) as DeploysResults, values.out)) log(`wrote ${f}`);
    return;
  }
  const o: Options = { deploys: Number(values.deploys), connections: Number(values.connections), workers: Number(values.workers), steadyS: Number(values.steady), ...(values.rate ? { rate: Number(values.rate) } : {}) };
  if (o.rate !== undefined && !(o.rate > 0)) throw new Error(`--rate: a number of requests per second, not ${values.rate}`);
  const profiles = values.profiles.split(',') as ProfileId[];
  const all = deployers(snapshotTsgunicorn());
  const chosen = values.contenders.split(',').map((id) => all.find((d) => d.id === id) ?? (() => { throw new Error(`no contender ${id}`); })());
  const placement = placeCpus();
  serversOn(placement?.servers ?? null);
  const started = Date.now();
  const runs: DeployRun[] = [];
  const failures: string[] = [];
  for (const profile of profiles) {
    for (const d of chosen) {
      log(`${d.id}: ${profile}`);
      try {
        runs.push(await runOne(d, profile, o));
      } catch (err) {
        failures.push(`${d.label}, ${profile}: ${(err as Error).message.split('\n')[0]}`);
        log(`FAILED: ${failures.at(-1)}`);
      }
    }
  }
  const pkg = (p: string): string => (JSON.parse(readFileSync(join(ROOT, p), 'utf8')) as { version: string }).version;
  const results: DeploysResults = {
    meta: {
      date: new Date().toISOString(),
      command: ['npm run bench:deploys', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' '),
      durationS: Math.round((Date.now() - started) / 1000),
      machine: `${cpus().length} CPUs, ${cpus()[0]?.model ?? 'unknown'}, Linux ${release()}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM`,
      placement: placement ? `the load process on CPU ${placement.load}, with nginx when it fronts; the servers on CPU ${placement.servers}` : 'not pinned',
      versions: {
        node: process.version,
        tsgunicorn: `${pkg('package.json')} at ${execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim()}`,
        gunicorn: version('gunicorn', ['--version'], /gunicorn \(version (\S+)\)/),
        pm2: pkg('node_modules/pm2/package.json'),
        nginx: version('/usr/sbin/nginx', ['-v'], /nginx\/(\S+)/),
      },
      settings: { ...o, gunicornThreads: GUNICORN_THREADS },
      profiles: Object.fromEntries(profiles.map((p) => [p, PROFILES[p].what])),
    },
    runs,
    failures,
  };
  for (const f of writeDeploysReport(values.merge ? merged(JSON.parse(readFileSync(values.merge, 'utf8')) as DeploysResults, results) : results, values.out)) log(`wrote ${f}`);
}

/** `now`, with the runs of `before` for the cells `now` did not measure, each run saying when it was measured. */
function merged(before: DeploysResults, now: DeploysResults): DeploysResults {
  const when = (m: DeploysResults['meta']): string => `${m.date.slice(0, 16).replace('T', ' ')} UTC at ${m.versions['tsgunicorn']?.split(' at ')[1] ?? '?'}`;
  const cell = (x: DeployRun): string => `${x.profile} ${x.contender}`;
  if (JSON.stringify(before.meta.settings) !== JSON.stringify(now.meta.settings)) {
    throw new Error(`--merge: the settings differ (${JSON.stringify(before.meta.settings)} there, ${JSON.stringify(now.meta.settings)} now)`);
  }
  const fresh = new Set(now.runs.map(cell));
  // A failure names its cell as "LABEL, PROFILE: why": the cells tried now replace theirs.
  const cellOf = (failure: string): string => failure.slice(0, failure.indexOf(': '));
  const tried = new Set([...now.runs.map((x) => `${x.label}, ${x.profile}`), ...now.failures.map(cellOf)]);
  const measuredNow = (failure: string): boolean => tried.has(cellOf(failure));
  const order = (x: DeployRun): number => Object.keys(PROFILES).indexOf(x.profile) * 100 + deployers('').findIndex((d) => d.id === x.contender);
  const runs = [
    ...before.runs.filter((x) => !fresh.has(cell(x))).map((x) => ({ ...x, measured: x.measured ?? when(before.meta) })),
    ...now.runs.map((x) => ({ ...x, measured: when(now.meta) })),
  ].sort((a, b) => order(a) - order(b));
  return { meta: { ...now.meta, profiles: { ...before.meta.profiles, ...now.meta.profiles } }, runs, failures: [...before.failures.filter((f) => !measuredNow(f)), ...now.failures] };
}

await main();
// PM2's API (bench/contenders.ts) keeps a handle open after its daemon has stopped, which kept
// the bench running once the report was written.
process.exit(0);
