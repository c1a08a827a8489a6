// tsgunicorn behind a real nginx, deployed as docs/deploy.md recommends (upstream keep-alive),
// but with proxy_next_upstream off: nginx retries nothing, so any connection tsgunicorn drops or
// refuses during a reload, an upgrade or a TTOU shows up as a 502 to the client.

import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive, fixture, freePort, pidIn, sleep, start, tempDir, trackAll, waitUntil, workersOf } from './helpers/daemon.js';
import { startLoad } from './helpers/load.js';
import { lacksNginx, startNginx } from './helpers/nginx.js';
import { needing } from './helpers/requirements.js';

/** Requests that must be served after each step settles, by the generation now serving. */
const AFTER_STEP = 300;

interface StepReport {
  readonly what: string;
  /** Served during the step itself (signal until settled). */
  readonly during: number;
  /** Served after it settled (at least AFTER_STEP unless serving stopped). */
  readonly after: number;
  readonly freshAfter: number;
  readonly failed: number;
}

type Upstream = 'unix' | 'tcp';

const behindNginx = test.macro({
  async exec(t, upstream: Upstream) {
    const dir = tempDir();
    const pidfile = join(dir, 'master.pid');
    // tsgunicorn's --bind and nginx's upstream server line spell both the same way.
    const address = upstream === 'unix' ? `unix:${join(dir, 'app.sock')}` : `127.0.0.1:${await freePort()}`;
    const d = start(t, ['-w', '2', '-b', address, '-p', pidfile, fixture('app.mjs')]);
    trackAll(t, pidfile);
    await d.waitReady();
    const first = await d.waitWorkers(2);
    // nginx after tsgunicorn is ready: a request before would be a 502 and an error-log line.
    const nginx = await startNginx(t, { upstream: address });
    const load = startLoad(t, `http://127.0.0.1:${nginx.port}/`, 50, { fresh: 4 });
    await waitUntil('load running', () => load.served > 500 && load.freshOk > 50, 20000);

    const steps: StepReport[] = [];
    const step = async (what: string, act: () => void, settled: () => boolean): Promise<void> => {
      const [served, failed] = [load.served, load.failed];
      act();
      await waitUntil(what, settled, 30000);
      const [settledAt, freshAt] = [load.served, load.freshOk];
      // Not waitUntil: a step after which nothing is served must still report what it measured.
      const deadline = Date.now() + 10000;
      while ((load.served < settledAt + AFTER_STEP || load.freshOk === freshAt) && Date.now() < deadline) await sleep(25);
      steps.push({ what, during: settledAt - served, after: load.served - settledAt, freshAfter: load.freshOk - freshAt, failed: load.failed - failed });
    };

    const reloads = (): number => (d.output.match(/Reloaded: /g) ?? []).length;
    await step('HUP', () => d.signal('SIGHUP'), () => reloads() === 1 && first.every((p) => !alive(p)));
    await step('USR2', () => d.signal('SIGUSR2'), () => {
      const p = pidIn(pidfile);
      return p !== null && p !== d.pid && !alive(d.pid) && !existsSync(`${pidfile}.oldbin`);
    });
    const next = pidIn(pidfile)!;
    t.is(workersOf(next).length, 2, 'the new master is ready with 2 workers');
    // A worker told to stop stays a child until it has drained and exited.
    await step('TTOU', () => process.kill(next, 'SIGTTOU'), () => workersOf(next).length === 1);
    await sleep(1000);
    const r = await load.stop();

    t.log(`served ${r.ok} (${r.freshOk} on new connections), failed ${r.failed}`, r.errors);
    for (const s of steps) t.log(`${s.what}: ${s.during} served during, ${s.after} after (${s.freshAfter} on new connections), ${s.failed} failed`);
    const upstreamErrors = nginx.errorLog().split('\n').filter((l) => l.includes('upstream'));
    // The first lines say what went wrong; thousands of the same would bury the rest of the report.
    if (upstreamErrors.length > 0) t.log(`nginx error log (${upstreamErrors.length} upstream lines; the first 10):\n${upstreamErrors.slice(0, 10).join('\n')}`);

    t.is(r.failed, 0, JSON.stringify(r.errors));
    t.is(r.errors['status 502'] ?? 0, 0, '502s: nginx lost a connection to tsgunicorn');
    t.is(upstreamErrors.length, 0, 'no upstream errors in nginx\'s error log');
    for (const s of steps) {
      t.true(s.after >= AFTER_STEP, `${s.what}: ${s.after} requests served after it settled`);
      t.true(s.freshAfter > 0, `${s.what}: new connections served after it settled`);
    }
    t.regex(readFileSync(`/proc/${next}/cmdline`, 'utf8'), /^tsgunicorn: master/, 'the new master serves');
  },
  title: (_, upstream: Upstream) =>
    `behind nginx (upstream keep-alive, no retries) on ${upstream === 'unix' ? 'a unix socket' : 'TCP'}: HUP, USR2, TTOU under 50 keep-alive connections and new ones fail zero requests`,
});

needing(lacksNginx(), 'tsgunicorn behind nginx', () => {
  for (const upstream of ['unix', 'tcp'] as const) test.serial(behindNginx, upstream);
});
