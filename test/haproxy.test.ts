// tsgunicorn instances behind a real HAProxy that health-checks each one's GET /health, with
// `retries 0` and no redispatch (test/helpers/haproxy.ts): what a stop (TERM, as `systemctl stop`
// sends) costs a fleet's clients. With lame_duck the balancer takes the instance out before it
// stops accepting, and no request fails; without it, the same stop is measured for comparison.

import test, { type ExecutionContext } from 'ava';
import { request } from 'node:http';
import { join } from 'node:path';
import { fixture, freePort, sleep, start, tempDir, trackAll, waitUntil, type Daemon } from './helpers/daemon.js';
import { CHECK, lacksHaproxy, startHaproxy, type Backend } from './helpers/haproxy.js';
import { startLoad } from './helpers/load.js';
import { needing } from './helpers/requirements.js';

/** Long enough for HAProxy to see `fall` failed checks, with room to spare. */
const LAME_DUCK_S = 2;

function instance(t: ExecutionContext, b: Backend, lameDuck: number): Daemon {
  const pidfile = join(tempDir(), 'master.pid');
  const d = start(t, ['-w', '2', '-b', `127.0.0.1:${b.port}`, '--metrics-bind', `127.0.0.1:${b.healthPort}`, '--lame-duck', String(lameDuck), '--pid', pidfile, fixture('app.mjs')]);
  trackAll(t, pidfile);
  return d;
}

/** Resolves with the time `d` first logs `re` (polled every 10 ms). */
async function loggedAt(d: Daemon, re: RegExp): Promise<number> {
  await waitUntil(`log ${re}`, () => re.test(d.output), 30_000);
  return Date.now();
}

needing(lacksHaproxy(), 'behind HAProxy (skipped)', () => {
  test.serial('behind HAProxy: TERM with lame_duck fails zero requests (HAProxy marks the instance DOWN before its listener closes); lame_duck = 0 measured for comparison', async (t) => {
    t.timeout(120_000);
    const backends: Backend[] = [];
    for (const name of ['a', 'b']) backends.push({ name, port: await freePort(), healthPort: await freePort() });
    const [a, b] = backends as [Backend, Backend];
    let da = instance(t, a, LAME_DUCK_S);
    const db = instance(t, b, 0);
    await Promise.all([da.waitReady(), db.waitReady()]);
    const lb = await startHaproxy(t, backends);
    const load = startLoad(t, `http://127.0.0.1:${lb.port}/`, 20, { fresh: 4 });
    await waitUntil('load through HAProxy', () => load.served > 500 && load.freshOk > 50, 20_000);

    /** TERMs `d` and returns the failures and the times of HAProxy's DOWN and the stop after it. */
    const stopOne = async (d: Daemon, name: string): Promise<{ failed: number; served: number; downMs: number | null; closeMs: number }> => {
      const [failed0, served0] = [load.failed, load.served];
      const t0 = Date.now();
      d.signal('SIGTERM');
      const closeAt = await loggedAt(d, /Graceful stop/);
      await d.exited;
      await sleep(500);
      const down = lb.downAt(name, t0);
      return { failed: load.failed - failed0, served: load.served - served0, downMs: down === null ? null : down - t0, closeMs: closeAt - t0 };
    };

    const lame = await stopOne(da, 'a');
    t.log(`lame_duck = ${LAME_DUCK_S}: ${lame.served} served, ${lame.failed} failed; HAProxy DOWN after ${lame.downMs} ms, listener closing after ${lame.closeMs} ms`);
    t.is(lame.failed, 0, JSON.stringify(load.errors));
    t.not(lame.downMs, null, 'HAProxy took the instance out');
    t.true(lame.downMs! < lame.closeMs, 'HAProxy saw the 503 before the listener closed');
    t.true(lame.downMs! <= CHECK.interMs * (CHECK.fall + 2) + 500, `within a few health checks (${lame.downMs} ms)`);

    // a back, then the same stop of b, which has no lame duck.
    const since = Date.now();
    da = instance(t, a, LAME_DUCK_S);
    await da.waitReady();
    await lb.waitUp('a', since);
    const plain = await stopOne(db, 'b');
    t.log(`lame_duck = 0: ${plain.served} served, ${plain.failed} failed ${JSON.stringify(load.errors)}; HAProxy DOWN after ${plain.downMs} ms, listener closing after ${plain.closeMs} ms`);
    const r = await load.stop();
    t.log(`in all: ${r.ok} served, ${r.failed} failed through HAProxy`);
    t.is(r.failed, plain.failed, 'the only failures are those of the stop without lame duck');
  });
});

needing(lacksHaproxy(), 'the PROXY protocol from HAProxy (skipped)', () => {
  for (const version of ['send-proxy', 'send-proxy-v2']) {
    test.serial(`proxy_protocol behind HAProxy's ${version}: the app sees the client's own address and port, not HAProxy's`, async (t) => {
      const b: Backend = { name: 'a', port: await freePort(), healthPort: await freePort(), options: version };
      const d = start(t, ['-w', '1', '-b', `127.0.0.1:${b.port}`, '--metrics-bind', `127.0.0.1:${b.healthPort}`, '--proxy-protocol', fixture('client-address.mjs')]);
      await d.waitReady();
      const lb = await startHaproxy(t, [b]);
      const seen = await new Promise<{ remote: string; port: number; client: number }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: lb.port, path: '/', agent: false }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => { body += c.toString(); });
          res.on('end', () => resolve({ ...(JSON.parse(body) as { remote: string; port: number }), client: req.socket!.localPort! }));
        });
        req.on('error', reject);
        req.end();
      });
      t.is(seen.remote, '127.0.0.1');
      t.is(seen.port, seen.client, 'the port is the client\'s, as the PROXY header said');
    });
  }
});

needing(lacksHaproxy(), 'deploys behind HAProxy (skipped)', () => {
  // resets: client connections HAProxy 2.6 resets between requests, logging no request, when its
  // h2 connection to the backend goes away (up to 0.3 % under CI load, seen only with proto h2;
  // every request it forwarded was answered 200). Not root-caused: docs/reliability.md#http2 says
  // so. The bound catches a regression, not this.
  const protocols = {
    'HTTP/1.1': { options: '', flags: [], logged: /"GET \/ HTTP\/1\.1" 200 /, resets: 0 },
    'h2c (proto h2)': { options: 'proto h2 check-proto h1', flags: ['--http2-cleartext', 'prior-knowledge'], logged: /"GET \/ HTTP\/2\.0" 200 /, resets: 0.02 },
  };
  for (const [pname, p] of Object.entries(protocols)) {
    for (const sig of ['SIGHUP', 'SIGUSR2'] as const) {
      test.serial(`behind HAProxy speaking ${pname} to the backend (retries 0): ${sig.slice(3)} under load, every request HAProxy forwards is answered 200, the instance stays UP${p.resets ? ' (HAProxy\'s own resets of its clients counted, at most 2 %)' : ', and no request fails'}`, async (t) => {
        t.timeout(120_000);
        const b: Backend = { name: 'a', port: await freePort(), healthPort: await freePort(), options: p.options };
        const pidfile = join(tempDir(), 'master.pid');
        const d = start(t, ['-w', '2', '-b', `127.0.0.1:${b.port}`, '--metrics-bind', `127.0.0.1:${b.healthPort}`, ...p.flags, '--access-logfile', '-', '--pid', pidfile, fixture('app.mjs')]);
        trackAll(t, pidfile);
        await d.waitReady();
        const lb = await startHaproxy(t, [b]);
        const load = startLoad(t, `http://127.0.0.1:${lb.port}/`, 20, { fresh: 4 });
        t.teardown(() => { void load.stop(); });
        await waitUntil('load through HAProxy', () => load.served > 500 && load.freshOk > 50, 20_000);
        t.regex(d.output, p.logged, `HAProxy speaks ${pname} to the workers`);
        const before = load.served;
        d.signal(sig);
        await loggedAt(d, sig === 'SIGHUP' ? /Reloaded: 2 new worker/ : /Upgrade complete/);
        await sleep(3000);
        await waitUntil('load after the deploy', () => load.served > before + 1000, 20_000);
        const r = await load.stop();
        const notOk = lb.events.filter((e) => /"GET/.test(e.line) && !/ 200 \d+ - - ---- /.test(e.line)).map((e) => e.line);
        t.log(`${r.ok} served, ${r.failed} failed through HAProxy over ${pname}`, r.errors, lb.events.filter((e) => /Server app/.test(e.line)).map((e) => e.line), notOk.slice(0, 4));
        t.deepEqual(notOk, [], 'every request HAProxy forwarded was answered 200, and the instance stayed UP');
        const resets = r.errors['ECONNRESET'] ?? 0;
        t.is(r.failed - resets, 0, JSON.stringify(r.errors));
        t.true(resets <= Math.ceil(p.resets * (r.ok + r.failed)), `${resets} resets by HAProxy`);
      });
    }
  }
});
