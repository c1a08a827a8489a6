// A fleet (docs/fleet.md): three hosts, each a network namespace of its own running the built
// tree, behind a real HAProxy that health-checks each host's GET /health with `retries 0` and no
// redispatch (nothing is masked). Under a load through HAProxy of keep-alive GETs, GETs on new
// connections and POSTs with a body, each host in turn is upgraded by USR2, then stopped (TERM,
// as `systemctl stop` sends, with lame_duck), given a new app version, and started again; then
// every host gets USR2 at once. Not one request may fail, and HAProxy must take each stopping
// host out on its health check before the host's listener closes.

import test from 'ava';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive, get, pidIn, sleep, start, tempDir, trackAll, waitUntil, type Daemon } from './helpers/daemon.js';
import { lacksHaproxy, startHaproxy } from './helpers/haproxy.js';
import { startLoad } from './helpers/load.js';
import { createHost, lacksNetns, type Host } from './helpers/netns.js';
import { needing } from './helpers/requirements.js';

const PORT = 8000;
const HEALTH_PORT = 9100;
const LAME_DUCK_S = 2;

function writeApp(file: string, version: number): void {
  // Reads a POST's body whole before it answers, as an app does.
  writeFileSync(`${file}.new`, `export default (req, res) => {
  let n = 0;
  req.on('data', (c) => { n += c.length; });
  req.on('end', () => res.end('v${version} ' + n + '\\n'));
};\n`);
  // Renamed into place: a worker never loads a half-written file.
  renameSync(`${file}.new`, file);
}

needing(lacksNetns() ?? lacksHaproxy(), 'a fleet of three hosts behind HAProxy', () => {
  test.serial('a fleet of three hosts behind HAProxy: USR2, stop, new version and start on each host in turn, then USR2 on all at once, under keep-alive, new-connection and POST load: zero failed requests; each stopping host is DOWN on the health check before its listener closes', async (t) => {
    t.timeout(300_000);
    const dir = tempDir();
    const app = join(dir, 'app.mjs');
    writeApp(app, 1);
    const hosts: Host[] = [1, 2, 3].map((n) => createHost(t, n));
    const pidfiles = hosts.map((_, i) => join(dir, `h${i + 1}.pid`));
    const boot = (i: number): Daemon => {
      const h = hosts[i]!;
      const d = start(t, ['-w', '2', '-b', `${h.address}:${PORT}`, '--metrics-bind', `${h.address}:${HEALTH_PORT}`, '--lame-duck', String(LAME_DUCK_S), '--pid', pidfiles[i]!, app], { prefix: h.prefix });
      trackAll(t, pidfiles[i]!);
      return d;
    };
    const daemons = hosts.map((_, i) => boot(i));
    await Promise.all(daemons.map((d) => d.waitReady()));
    const lb = await startHaproxy(t, hosts.map((h, i) => ({ name: `h${i + 1}`, host: h.address, port: PORT, healthPort: HEALTH_PORT })));
    const url = `http://127.0.0.1:${lb.port}/`;
    const gets = startLoad(t, url, 20, { fresh: 4 });
    const posts = startLoad(t, url, 5, { body: 'x'.repeat(4096) });
    const failed = (): number => gets.failed + posts.failed;
    await waitUntil('load through HAProxy', () => gets.served > 500 && gets.freshOk > 50 && posts.served > 100, 30_000);

    /** USR2 to host i's master: resolves when the new master serves and the old one is gone. */
    const upgrade = async (i: number): Promise<void> => {
      const old = pidIn(pidfiles[i]!)!;
      process.kill(old, 'SIGUSR2');
      await waitUntil(`host ${i + 1}'s new master`, () => { const p = pidIn(pidfiles[i]!); return p !== null && p !== old && !alive(old); }, 60_000);
    };

    const stops: string[] = [];
    for (let i = 0; i < hosts.length; i++) {
      const name = `h${i + 1}`;
      const before = failed();
      await upgrade(i);
      const upgradeFailed = failed() - before;

      // systemctl stop: TERM to the master (the one the upgrade started), lame duck first.
      const d = daemons[i]!;
      const master = pidIn(pidfiles[i]!)!;
      const from = d.output.length;
      const t0 = Date.now();
      process.kill(master, 'SIGTERM');
      await waitUntil(`host ${name}'s listener to close`, () => /Graceful stop/.test(d.output.slice(from)), 30_000);
      const closeMs = Date.now() - t0;
      await waitUntil(`host ${name} to stop`, () => !alive(master), 60_000);
      const downAt = lb.downAt(name, t0);
      t.not(downAt, null, `HAProxy took ${name} out`);
      const downMs = downAt! - t0;
      t.true(downMs < closeMs, `${name}: DOWN after ${downMs} ms, before its listener closed after ${closeMs} ms`);
      stops.push(`${name}: health 503 at TERM, HAProxy DOWN after ${downMs} ms, graceful stop (listener closing) after ${closeMs} ms, ${closeMs - downMs} ms later`);

      // The new version, and the host back in the pool.
      writeApp(app, 2);
      const since = Date.now();
      daemons[i] = boot(i);
      await daemons[i]!.waitReady();
      await lb.waitUp(name, since);
      t.is(failed() - before, 0, `${name}: USR2 (${upgradeFailed} failed), stop and start: no failure (${JSON.stringify({ ...gets.errors, ...posts.errors })})`);
    }

    const before = failed();
    await Promise.all(hosts.map((_, i) => upgrade(i)));
    t.is(failed() - before, 0, 'USR2 on every host at once');
    await sleep(1000);

    const [g, p] = [await gets.stop(), await posts.stop()];
    for (const line of stops) t.log(line);
    t.log(`through HAProxy: ${g.ok + p.ok + g.failed + p.failed} requests sent (${g.ok} GETs of which ${g.freshOk} on new connections, ${p.ok} POSTs), ${g.failed + p.failed} failed`);
    t.is(g.failed + p.failed, 0, JSON.stringify({ ...g.errors, ...p.errors }));
    const answers = new Set<string>();
    for (let k = 0; k < 30; k++) answers.add((await get(url)).body.split(' ')[0]!);
    t.deepEqual([...answers], ['v2'], 'every host serves the new version');
  });
});
