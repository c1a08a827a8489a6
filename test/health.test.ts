// A load balancer's view of an instance (docs/fleet.md): GET /health on metrics_bind, and the lame
// duck a TERM starts with when lame_duck is set. Real daemons, real HTTP, real signals.

import test, { type ExecutionContext } from 'ava';
import { join } from 'node:path';
import { alive, fixture, freePort, get, pidIn, sleep, start, tempDir, trackAll, waitUntil, type Daemon } from './helpers/daemon.js';
import { startLoad } from './helpers/load.js';
import { NotifySocket } from './helpers/notify-socket.js';
import { lacksNotify, serialNeeding } from './helpers/requirements.js';

interface HealthAnswer { readonly code: number; readonly status: string; readonly ready: number; readonly needed: number }

async function health(mport: number): Promise<HealthAnswer> {
  const r = await get(`http://127.0.0.1:${mport}/health`);
  const body = JSON.parse(r.body) as { status: string; ready: number; needed: number };
  return { code: r.status, ...body };
}

/** The first answer of /health, asked until the endpoint listens. */
async function firstHealth(mport: number): Promise<HealthAnswer> {
  let first: HealthAnswer | null = null;
  await waitUntil('/health to answer', async () => {
    first = await health(mport).catch(() => null);
    return first !== null;
  }, 30_000);
  return first!;
}

async function daemon(t: ExecutionContext, app: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ d: Daemon; port: number; mport: number; pidfile: string }> {
  const [port, mport] = [await freePort(), await freePort()];
  const pidfile = join(tempDir(), 'master.pid');
  const d = start(t, ['-w', '2', '-b', `127.0.0.1:${port}`, '--metrics-bind', `127.0.0.1:${mport}`, '--pid', pidfile, ...extra, fixture(app)], { env });
  trackAll(t, pidfile);
  return { d, port, mport, pidfile };
}

test.serial('GET /health: 503 while booting, 200 once every worker serves, 503 while a worker is missing (unless health_min_workers allows it), 200 through a HUP', async (t) => {
  const { d, mport } = await daemon(t, 'slow-boot.mjs');
  const first = await firstHealth(mport);
  t.deepEqual([first.code, first.status], [503, 'booting']);
  await d.waitReady();
  t.deepEqual(await health(mport), { code: 200, status: 'serving', ready: 2, needed: 2 });
  const headers = (await get(`http://127.0.0.1:${mport}/health`)).headers;
  t.is(headers['content-type'], 'application/json');

  // One worker more: it boots for 1.5 s, and meanwhile the instance is short of one.
  d.signal('SIGTTIN');
  await waitUntil('/health to say degraded', async () => (await health(mport)).status === 'degraded', 10_000);
  t.deepEqual(await health(mport), { code: 503, status: 'degraded', ready: 2, needed: 3 });
  await waitUntil('/health to say serving', async () => (await health(mport)).code === 200, 15_000);

  // A reload starts new workers beside the old ones (two: TTIN does not outlive a HUP), and the
  // instance serves all along.
  const before = d.output.length;
  d.signal('SIGHUP');
  const seen = new Set<number>();
  await waitUntil('the reload', async () => {
    seen.add((await health(mport)).code);
    return /Reloaded: 2 new worker/.test(d.output.slice(before));
  }, 30_000);
  t.deepEqual([...seen], [200], '/health during the HUP');
  t.is((await get(`http://127.0.0.1:${mport}/nothing`)).status, 404);
});

test.serial('health_min_workers: /health stays 200 while one of three workers is missing', async (t) => {
  const { d, mport } = await daemon(t, 'slow-boot.mjs', ['--health-min-workers', '2']);
  await d.waitReady();
  d.signal('SIGTTIN');
  await d.waitForLog(/Workers: 2 -> 3/);
  t.deepEqual(await health(mport), { code: 200, status: 'serving', ready: 2, needed: 2 });
});

test.serial('lame duck: TERM turns /health to 503 at once, the workers serve on (new connections too) marking responses Connection: close, then the master stops gracefully; zero failed requests', async (t) => {
  const { d, port, mport, pidfile } = await daemon(t, 'app.mjs', ['--lame-duck', '3']);
  await d.waitReady();
  const url = `http://127.0.0.1:${port}/`;
  const keepAlive = { Connection: 'keep-alive' };
  t.is((await get(url, keepAlive)).headers['connection'], 'keep-alive');
  const load = startLoad(t, url, 10, { fresh: 2 });
  await sleep(300);
  const t0 = Date.now();
  d.signal('SIGTERM');
  await d.waitForLog(/TERM: lame duck for 3 s/);
  t.deepEqual(await health(mport), { code: 503, status: 'lame duck', ready: 2, needed: 2 });
  const during = await get(url, keepAlive);
  t.is(during.status, 200);
  t.is(during.headers['connection'], 'close', 'a response in lame duck closes its connection');
  await sleep(1500);
  t.true(alive(d.pid), 'still serving 1.5 s into a 3 s lame duck');
  t.is(pidIn(pidfile), d.pid);
  const r = await load.stop();
  t.log(`lame duck: ${r.ok} requests served, ${r.failed} failed`);
  t.is(r.failed, 0, JSON.stringify(r.errors));
  t.true(r.freshOk > 0, 'new connections were served');
  const { code } = await d.exited;
  t.is(code, 0);
  t.true(Date.now() - t0 >= 3000, `stopped after the lame duck (${Date.now() - t0} ms)`);
  t.regex(d.output, /Graceful stop/);
});

test.serial('lame duck: a QUIT cuts it short and the stop is quick; a second TERM changes nothing', async (t) => {
  const { d } = await daemon(t, 'app.mjs', ['--lame-duck', '60']);
  await d.waitReady();
  d.signal('SIGTERM');
  await d.waitForLog(/TERM: lame duck for 60 s/);
  d.signal('SIGTERM');
  await d.waitForLog(/TERM: already in lame duck/);
  const t0 = Date.now();
  d.signal('SIGQUIT');
  const { code } = await d.exited;
  t.is(code, 0);
  t.true(Date.now() - t0 < 10_000, `stopped ${Date.now() - t0} ms after QUIT`);
  t.regex(d.output, /Quick stop: the lame duck is cut short/);
  t.regex(d.output, /Quick stop\n/);
});

test.serial('lame duck is not for handovers: after USR2 the old master stops without it', async (t) => {
  const { d, port, pidfile } = await daemon(t, 'app.mjs', ['--lame-duck', '60']);
  await d.waitReady();
  d.signal('SIGUSR2');
  await waitUntil('the old master to be gone', () => !alive(d.pid), 30_000);
  t.notRegex(d.output, /lame duck/);
  t.not(pidIn(pidfile), d.pid);
  t.is((await get(`http://127.0.0.1:${port}/`)).status, 200);
});

serialNeeding(lacksNotify(), 'lame duck under systemd: STOPPING=1 with the stop timeout extended over lame_duck and graceful_timeout, and STATUS= says lame duck', async (t) => {
  const ns = new NotifySocket();
  t.teardown(() => ns.close());
  await ns.ready();
  const { d } = await daemon(t, 'app.mjs', ['--lame-duck', '2', '--graceful-timeout', '10'], { NOTIFY_SOCKET: ns.path });
  await ns.waitFor('READY', '1');
  d.signal('SIGTERM');
  const m = await ns.waitFor('EXTEND_TIMEOUT_USEC');
  t.is(m.fields['STOPPING'], '1');
  t.is(Number(m.fields['EXTEND_TIMEOUT_USEC']), (2 + 10 + 5) * 1_000_000);
  t.regex(m.fields['STATUS'] ?? '', /^lame duck: serving 2\/2 workers/);
  t.is((await d.exited).code, 0);
});
