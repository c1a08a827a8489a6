// End to end: the Debian package on a real systemd. Builds the .deb in a Debian 13 build root
// (against trixie's own nodejs), plus a newer build of the same code, boots a Debian 13 root
// with `systemd-nspawn --boot` (systemd as the container's PID 1, loopback-only network) and,
// driving it with nsenter, installs the package on Debian's nodejs and runs an app in /srv as
// tsgunicorn@demo: start, status, reload and USR2 under keep-alive load, the watchdog, socket
// activation, restart behind the socket, a package upgrade under load, stop, purge.
//
// Needs root and systemd-nspawn; skips (with the reason in its title) without them, but fails
// instead of skipping in CI. The debootstrapped roots and the built packages are cached under
// /var/cache/tsgunicorn-test (packaging/trixie-root.sh): a first run takes a few minutes more.

import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { fixture, sleep, start, waitUntil } from './helpers/daemon.js';
import { startHaproxy } from './helpers/haproxy.js';
import { buildDeb, cannotRunReason, Container, type BuiltDeb, type NetnsLoad } from './helpers/nspawn.js';
import { needing } from './helpers/requirements.js';

const UNIT = 'tsgunicorn@demo.service';
const SOCKET = 'tsgunicorn@demo.socket';
const URL = 'http://127.0.0.1:8000/';
const MIN = 60_000;

const APP = `// the demo app: says which worker answered
export default function app(req, res) {
  res.setHeader('X-Worker', String(process.pid));
  res.end('demo ' + process.pid + '\\n');
}
`;
const CONFIG_TCP = `app = "/srv/demo/app.mjs"
bind = ["127.0.0.1:8000"]
workers = 2
graceful_timeout = 10
`;
const CONFIG_SOCKET = `app = "/srv/demo/app.mjs"
workers = 2
graceful_timeout = 10
`;

// paths left out of the before/after comparison of the file system: kernel and runtime file
// systems, logs, caches, package manager state and dpkg's daily backups (its timer may fire
// during the test), the app, the test's own binds
const SNAPSHOT = `find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \\
  -o -path /var/tmp -o -path /var/log/journal -o -path /var/cache -o -path /var/lib/dpkg -o -path /var/lib/apt \\
  -o -path /var/lib/systemd/timers -o -path /var/lib/systemd/catalog -o -path /var/lib/logrotate \\
  -o -path /var/backups -o -path /srv -o -path /e2e \\) -prune -o -print | sort`;

/** systemd's timespan ("30s", "1min 30s", "500ms") in microseconds. */
function timespanUsec(s: string): number {
  const unit: Record<string, number> = { us: 1, ms: 1e3, s: 1e6, min: 60e6, h: 3600e6 };
  let total = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)\s*(us|ms|s|min|h)\b/g)) total += Number(m[1]) * unit[m[2]!]!;
  return total;
}

needing(cannotRunReason(), 'Debian package end to end', defineTests);

function defineTests(): void {
  let v1: BuiltDeb;
  let v2: BuiltDeb;
  let v2Version = '';
  let c: Container;
  let fsBefore = '';
  const loads = new Set<NetnsLoad>();

  const startLoad = (fresh = 0): NetnsLoad => {
    const l = c.load(URL, 20, fresh);
    loads.add(l);
    return l;
  };
  const stopLoad = async (t: ExecutionContext, l: NetnsLoad, what: string): Promise<void> => {
    const r = await l.stop();
    loads.delete(l);
    t.log(`${what}: ${r.ok} requests served, ${r.failed} failed, by ${r.workers.length} workers`, r.failed ? r.errors : '');
    t.true(r.ok > 500, `${what}: the load ran (${r.ok} requests)`);
    t.is(r.failed, 0, `${what}: failed requests ${JSON.stringify(r.errors)}`);
  };
  const mainPid = async (): Promise<number> => Number(await c.prop(UNIT, 'MainPID'));
  const active = async (unit = UNIT): Promise<string> => c.prop(unit, 'ActiveState');
  /** USR2 to the main process; resolves with the new main PID once the old master is gone. */
  const upgrade = async (): Promise<number> => {
    const old = await mainPid();
    await c.sh(`systemctl kill --kill-whom=main --signal=USR2 ${UNIT}`);
    await waitUntil('the new master', async () => ![0, old].includes(await mainPid()) && (await c.shr(`kill -0 ${old}`)).code !== 0, 90_000);
    return mainPid();
  };
  const curl = async (args = URL): Promise<string> => c.sh(`curl -sS --fail --max-time 10 ${args}`);
  const workersOf = async (pid: number): Promise<number[]> =>
    (await c.shr(`pgrep -P ${pid}`)).stdout.split('\n').filter(Boolean).map(Number).sort();
  /** The unit's file descriptor store: each entry's FDNAME. */
  const fdstore = async (): Promise<string[]> =>
    (await c.sh(`systemd-analyze fdstore --no-pager ${UNIT}`)).split('\n').slice(1).map((l) => l.trim().split(/\s+/)[0]!).filter(Boolean).sort();
  const journal = async (lines = 80): Promise<string> =>
    (await c.shr(`journalctl --no-pager -o short-monotonic -n ${lines} -u 'tsgunicorn@*'`)).stdout;

  test.before('build the packages, boot Debian 13', async (t) => {
    t.timeout(30 * MIN);
    const t0 = Date.now();
    v1 = await buildDeb(null, 20 * MIN);
    const version = execFileSync('dpkg-deb', ['-f', v1.deb, 'Version'], { encoding: 'utf8' }).trim();
    v2Version = `${version}+e2e1`;
    v2 = await buildDeb(v2Version, 20 * MIN);
    t.log(`packages: ${basename(v1.deb)}${v1.cached ? ' (cached)' : ''}, ${basename(v2.deb)}${v2.cached ? ' (cached)' : ''} in ${Math.round((Date.now() - t0) / 1000)} s`);
    c = await Container.boot({ [dirname(v1.deb)]: '/e2e/v1', [dirname(v2.deb)]: '/e2e/v2' });
    t.log(`booted ${c.root} in ${Math.round((Date.now() - t0) / 1000)} s total`);
  });

  test.afterEach.always(async (t) => {
    if (!t.passed && c) t.log(`journal:\n${await journal()}`);
  });

  test.after.always(async () => {
    for (const l of loads) l.kill();
    if (c) await c.shutdown();
  });

  test.serial('the .deb: built against Debian 13 nodejs, bound to its ABI, lintian clean', async (t) => {
    t.timeout(2 * MIN);
    const field = (deb: string, f: string): string => execFileSync('dpkg-deb', ['-f', deb, f], { encoding: 'utf8' }).trim();
    const abi = (await c.sh('node -p process.versions.modules')).trim();
    const nodeVersion = (await c.sh('node -p process.versions.node')).trim();
    const major = Number(nodeVersion.split('.')[0]);
    const depends = field(v1.deb, 'Depends');
    t.log(`Depends: ${depends}`);
    t.is(field(v1.deb, 'Architecture'), execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim());
    t.true(depends.includes(`nodejs (>= ${nodeVersion}~)`), `lower bound on the Node it was built with (${nodeVersion})`);
    t.true(depends.includes(`nodejs (<< ${major + 1}~)`), `upper bound below the next ABI (Node ${major + 1})`);
    t.regex(depends, new RegExp(`libnode${abi}\\b`), `the ABI ${abi} library`);
    t.regex(depends, /libsystemd0/, 'sd-notify links libsystemd');
    const lintian = v1.lintian.split('\n').filter((l) => /^[EW]: /.test(l));
    t.deepEqual(lintian, [], 'lintian: no errors or warnings');
    const contents = execFileSync('dpkg-deb', ['-c', v1.deb], { encoding: 'utf8', maxBuffer: 64 << 20 });
    for (const path of [
      './usr/bin/tsgunicorn', './usr/lib/tsgunicorn/bin/tsgunicorn.js', './usr/lib/tsgunicorn/dist/src/cli/main.js',
      './usr/lib/tsgunicorn/package.json', './usr/lib/tsgunicorn/node_modules/sd-notify/build/Release/notify.node',
      './usr/lib/tsgunicorn/node_modules/posix/build/Release/posix.node',
      './usr/lib/systemd/system/tsgunicorn@.service', './usr/lib/systemd/system/tsgunicorn@.socket',
      './usr/lib/sysusers.d/tsgunicorn.conf', './usr/lib/sysctl.d/60-tsgunicorn.conf', './etc/tsgunicorn/example.toml', './etc/logrotate.d/tsgunicorn',
      './usr/share/man/man1/tsgunicorn.1.gz', './usr/share/doc/tsgunicorn/copyright',
      './usr/share/doc/tsgunicorn/examples/nginx-tsgunicorn.conf',
    ]) {
      t.true(contents.includes(` ${path}`), `ships ${path}`);
    }
    t.false(/node_modules\/(typescript|ava|@ava|@types\/node)\//.test(contents), 'no development dependencies');
    t.false(/usr\/lib\/tsgunicorn\/(dist|bin)\/.*\.(map|ts)$/m.test(contents), 'no source maps or TypeScript sources of ours');
  });

  test.serial('dpkg -i on Debian 13: system user, units neither enabled nor started, units verify', async (t) => {
    t.timeout(3 * MIN);
    fsBefore = await c.sh(SNAPSHOT);
    t.is((await c.sh('cat /proc/sys/net/ipv4/tcp_migrate_req')).trim(), '0', 'the kernel default before the package');
    t.log((await c.sh('node --version; dpkg-query -W nodejs')).trim());
    const out = await c.sh(`dpkg -i /e2e/v1/${basename(v1.deb)} 2>&1`, { timeoutMs: 2 * MIN });
    t.regex(out, /Setting up tsgunicorn/);
    t.regex(await c.sh('getent passwd tsgunicorn'), /^tsgunicorn:x:\d+:\d+:.*:\/usr\/sbin\/nologin$/m);
    // a second configure run (dpkg-reconfigure, reinstall) is harmless
    await c.sh('dpkg-reconfigure -fnoninteractive tsgunicorn 2>&1 || dpkg --configure -a');
    t.is((await c.shr(`systemctl is-enabled ${UNIT}`)).stdout.trim(), 'disabled', 'the template is not enabled');
    t.is((await c.sh(`systemctl list-units --all --plain --no-legend 'tsgunicorn*'`)).trim(), '', 'no instance was started');
    const verify = await c.shr(`systemd-analyze verify ${UNIT} ${SOCKET} 2>&1`);
    t.is(verify.code, 0, `systemd-analyze verify: ${verify.stdout}`);
    t.regex(await c.sh(`dpkg-query -W -f='\${Conffiles}' tsgunicorn`), /\/etc\/tsgunicorn\/example\.toml/);
    // The container has a network of its own, so its /proc/sys/net is writable, as on a host.
    t.is((await c.sh('cat /proc/sys/net/ipv4/tcp_migrate_req')).trim(), '1', 'the sysctl drop-in is applied at install');
    t.regex(await c.sh('tsgunicorn --version'), /\d+\.\d+\.\d+/);
    t.regex(await c.sh('man -w tsgunicorn'), /tsgunicorn\.1/);
  });

  test.serial('systemctl start tsgunicorn@demo serves as the tsgunicorn user; status shows STATUS=; exposure <= 3.0', async (t) => {
    t.timeout(2 * MIN);
    await c.sh('mkdir -p /srv/demo');
    writeFileSync(c.path('/srv/demo/app.mjs'), APP);
    writeFileSync(c.path('/etc/tsgunicorn/demo.toml'), CONFIG_TCP);
    await c.sh(`systemctl start ${UNIT}`, { timeoutMs: MIN });
    t.is(await active(), 'active');
    t.regex(await curl(), /^demo \d+/);
    const pid = await mainPid();
    t.is((await c.sh(`ps -o user= -p ${pid}`)).trim(), 'tsgunicorn');
    t.is((await c.sh('cat /run/tsgunicorn/demo/master.pid')).trim(), String(pid), 'pidfile in the RuntimeDirectory');
    t.is((await workersOf(pid)).length, 2);
    const status = (await c.shr(`systemctl status --no-pager ${UNIT}`)).stdout;
    t.log(status.split('\n').slice(0, 8).join('\n'));
    t.regex(status, /^\s+Status: ".+"$/m, 'systemctl status shows the STATUS= line');
    const security = await c.sh(`systemd-analyze security --no-pager ${UNIT} | tail -n 1`);
    const score = Number(/exposure level for \S+: ([\d.]+)/.exec(security)?.[1] ?? 'NaN');
    t.log(`systemd-analyze security: ${security.trim()}`);
    t.true(score <= 3.0, `exposure ${score} <= 3.0`);
  });

  test.serial('systemctl reload under keep-alive load fails zero requests', async (t) => {
    t.timeout(3 * MIN);
    const pid = await mainPid();
    const old = await workersOf(pid);
    const load = startLoad();
    await load.more(300, 'before the reload');
    await c.sh(`systemctl reload ${UNIT}`);
    await waitUntil('new workers, old ones gone', async () => {
      const now = await workersOf(pid);
      return now.length === 2 && now.every((w) => !old.includes(w));
    }, 60_000);
    await load.more(300, 'after the reload');
    await stopLoad(t, load, 'reload');
    t.is(await mainPid(), pid, 'same master');
    t.is(await active(), 'active');
  });

  test.serial('USR2 under keep-alive load: the main PID moves to the new master, unit stays active, zero failures', async (t) => {
    t.timeout(3 * MIN);
    const old = await mainPid();
    const invocation = await c.prop(UNIT, 'InvocationID');
    const load = startLoad();
    await load.more(300, 'before USR2');
    const now = await upgrade();
    await load.more(300, 'after USR2');
    await stopLoad(t, load, 'USR2');
    t.log(`main PID ${old} -> ${now}`);
    t.is(await active(), 'active');
    t.is(await c.prop(UNIT, 'InvocationID'), invocation, 'the same run of the unit: no restart');
    t.is((await c.sh('cat /run/tsgunicorn/demo/master.pid')).trim(), String(now));
    t.is((await c.shr('test -e /run/tsgunicorn/demo/master.pid.oldbin')).code, 1, 'no .oldbin left');
    t.is((await workersOf(now)).length, 2);
  });

  test.serial('the watchdog restarts a master frozen with SIGSTOP', async (t) => {
    t.timeout(3 * MIN);
    const old = await mainPid();
    const restarts = Number(await c.prop(UNIT, 'NRestarts'));
    const watchdogUsec = timespanUsec(await c.prop(UNIT, 'WatchdogUSec'));
    t.true(watchdogUsec > 0, 'WatchdogSec= is set');
    await c.sh(`kill -STOP ${old}`);
    const t0 = Date.now();
    await waitUntil('the watchdog to restart the unit', async () =>
      Number(await c.prop(UNIT, 'NRestarts')) > restarts && (await active()) === 'active', watchdogUsec / 1000 + 60_000);
    t.log(`restarted ${Math.round((Date.now() - t0) / 1000)} s after SIGSTOP (WatchdogSec=${watchdogUsec / 1e6}s)`);
    t.not(await mainPid(), old);
    t.regex(await c.sh(`journalctl --no-pager -u ${UNIT} | grep -i watchdog`), /[Ww]atchdog timeout/);
    t.regex(await curl(), /^demo \d+/);
  });

  const STORED_TCP = 'tsgunicorn~s~-~127.0.0.1%3A8000';
  /** systemctl restart, as often as the tests need (the unit's StartLimitBurst= counts restarts). */
  const restart = async (): Promise<void> => { await c.sh(`systemctl reset-failed ${UNIT}; systemctl restart ${UNIT}`, { timeoutMs: MIN }); };

  test.serial('USR2s in quick succession outlive WatchdogSec=: each new master pings at its takeover', async (t) => {
    t.timeout(3 * MIN);
    // systemd's watchdog clock runs on across MAINPID=: a master that waited half WatchdogSec= for
    // its first ping, handed over before that, left the next one less than a whole interval.
    const dropIn = `/etc/systemd/system/${UNIT}.d/watchdog.conf`;
    await c.sh(`mkdir -p ${dirname(dropIn)} && printf '[Service]\\nWatchdogSec=4s\\n' > ${dropIn} && systemctl daemon-reload`);
    try {
      await restart();
      await waitUntil('the restarted service', async () => (await active()) === 'active', 60_000);
      const invocation = await c.prop(UNIT, 'InvocationID');
      const since = (await c.sh('date +%s')).trim();
      const t0 = Date.now();
      let upgrades = 0;
      while (Date.now() - t0 < 12_000) {
        await upgrade();
        upgrades++;
      }
      await sleep(6000); // longer than WatchdogSec= after the last one
      t.log(`${upgrades} USR2s in ${Math.round((Date.now() - t0 - 6000) / 100) / 10} s with WatchdogSec=4s`);
      t.is(await c.prop(UNIT, 'InvocationID'), invocation, 'the same run of the unit: no restart');
      t.is(await active(), 'active');
      t.notRegex(await c.sh(`journalctl --no-pager -u ${UNIT} --since @${since}`), /[Ww]atchdog timeout/);
      t.regex(await curl(), /^demo \d+/);
    } finally {
      await c.sh(`rm -r ${dirname(dropIn)} && systemctl daemon-reload`);
      await restart();
      await waitUntil('the restarted service', async () => (await active()) === 'active', 60_000);
    }
  });

  test.serial('systemctl restart without the socket unit under load: the stored socket refuses no connection, fails no request', async (t) => {
    t.timeout(3 * MIN);
    t.deepEqual(await fdstore(), [STORED_TCP], 'the master stored its socket');
    const old = await mainPid();
    const load = startLoad(4);
    await load.more(300, 'before the restart');
    await restart();
    await waitUntil('the restarted service', async () => (await active()) === 'active' && ![0, old].includes(await mainPid()), 60_000);
    await load.more(300, 'after the restart');
    await stopLoad(t, load, 'restart without the socket unit (keep-alive and new connections)');
    t.regex(await c.sh(`journalctl --no-pager -u ${UNIT} _PID=${await mainPid()}`), /Serving on the socket\(s\) systemd kept: 127\.0\.0\.1:8000/);
    t.deepEqual(await fdstore(), [STORED_TCP], 'one socket in the store, no duplicate');
  });

  test.serial('kill -9 of the master under load: systemd restarts it on the stored socket; no connection refused, failures at most the requests in flight', async (t) => {
    t.timeout(3 * MIN);
    const old = await mainPid();
    const oldWorkers = await workersOf(old);
    const load = startLoad(4);
    await load.more(300, 'before the kill');
    const t0 = Date.now();
    await c.sh(`kill -9 ${old}`);
    await waitUntil('a new master', async () => (await active()) === 'active' && ![0, old].includes(await mainPid()), 60_000);
    await load.more(300, 'after the kill');
    const back = Date.now() - t0;
    const r = await load.stop();
    loads.delete(load);
    t.log(`kill -9: serving again after ${back} ms; ${r.ok} requests served, ${r.failed} failed ${JSON.stringify(r.errors)}`);
    t.is(r.errors['ECONNREFUSED'] ?? 0, 0, 'no connection refused');
    // At most one request in flight on each of the 20 keep-alive and 4 new-connection loops.
    t.true(r.failed <= 24, `failed ${r.failed} <= the 24 requests that can be in flight`);
    t.true(back < 30_000, `back within 30 s (${back} ms)`);
    for (const w of oldWorkers) t.not((await c.shr(`kill -0 ${w}`)).code, 0, `the dead master's worker ${w} is gone`);
    t.is((await workersOf(await mainPid())).length, 2);
  });

  test.serial('USR2 then restart: the store holds exactly the configured socket, once', async (t) => {
    t.timeout(3 * MIN);
    const upgraded = await upgrade();
    t.deepEqual(await fdstore(), [STORED_TCP], 'after USR2');
    await restart();
    await waitUntil('the restarted service', async () => (await active()) === 'active' && ![0, upgraded].includes(await mainPid()), 60_000);
    t.deepEqual(await fdstore(), [STORED_TCP], 'after the restart');
    t.regex(await curl(), /^demo \d+/);
  });

  test.serial('a bind changed in the config applies at the restart: the socket no longer configured leaves the store', async (t) => {
    t.timeout(3 * MIN);
    writeFileSync(c.path('/etc/tsgunicorn/demo.toml'), CONFIG_TCP.replace('127.0.0.1:8000', '127.0.0.1:8001'));
    await restart();
    await waitUntil('the restarted service', async () => (await active()) === 'active', 60_000);
    t.deepEqual(await fdstore(), ['tsgunicorn~s~-~127.0.0.1%3A8001']);
    t.regex(await curl('http://127.0.0.1:8001/'), /^demo \d+/);
    t.regex((await c.shr(`curl -sS --max-time 5 ${URL} 2>&1`)).stdout, /Connection refused|Failed to connect/, 'nothing listens on the old address');
    t.regex(await c.sh(`journalctl --no-pager -u ${UNIT} _PID=${await mainPid()}`), /Dropping the stored socket 127\.0\.0\.1:8000/);
    writeFileSync(c.path('/etc/tsgunicorn/demo.toml'), CONFIG_TCP);
    await restart();
    await waitUntil('the restarted service', async () => (await active()) === 'active', 60_000);
    t.deepEqual(await fdstore(), [STORED_TCP]);
  });

  /**
   * Repacks the installed package `pkg` at `version` from the files it has now (what dpkg-repack
   * does), its dependencies on the packages of `from` moved to `version` too; returns the .deb.
   */
  const repack = async (pkg: string, version: string, from: string): Promise<string> => {
    const dir = `/var/tmp/repack/${pkg}`;
    await c.sh(`set -e
rm -rf ${dir}; mkdir -p ${dir}/DEBIAN
dpkg-query -L ${pkg} | while IFS= read -r f; do
  if [ -L "$f" ] || [ -f "$f" ]; then mkdir -p "${dir}$(dirname "$f")"; cp -a "$f" "${dir}$f"
  elif [ -d "$f" ]; then mkdir -p "${dir}$f"; fi
done
dpkg-query -s ${pkg} | grep -v -e '^Status:' -e '^Version:' -e '^Conffiles:' | sed 's/(= ${from})/(= ${version})/g' > ${dir}/DEBIAN/control
echo 'Version: ${version}' >> ${dir}/DEBIAN/control
for f in shlibs triggers postinst prerm; do
  for g in /var/lib/dpkg/info/${pkg}.$f /var/lib/dpkg/info/${pkg}:*.$f; do [ -f "$g" ] && cp "$g" ${dir}/DEBIAN/$f; done
done
dpkg-deb --root-owner-group -b ${dir} /var/tmp/repack/${pkg}_${version}.deb >/dev/null`, { timeoutMs: 2 * MIN });
    return `/var/tmp/repack/${pkg}_${version}.deb`;
  };
  const nodePackages = async (): Promise<{ version: string; libnode: string }> => ({
    version: (await c.sh(`dpkg-query -W -f='\${Version}' nodejs`)).trim(),
    libnode: `libnode${(await c.sh('node -p process.versions.modules')).trim()}`,
  });
  const deletedMaps = async (pid: number): Promise<string[]> =>
    (await c.sh(`grep '(deleted)' /proc/${pid}/maps || true`)).split('\n').filter(Boolean);

  test.serial('a libnode replaced on disk: tsgunicorn status says an upgrade is pending until USR2', async (t) => {
    t.timeout(3 * MIN);
    const { libnode } = await nodePackages();
    const lib = (await c.sh(`dpkg-query -L ${libnode} | grep '/libnode\\.so'`)).trim().split('\n')[0]!;
    const status = async (): Promise<string> => c.sh('tsgunicorn status --name demo');
    t.notRegex(await status(), /pending/);
    // What dpkg does, without dpkg (so no trigger): the new file is renamed over the old one.
    await c.sh(`cp -a ${lib} ${lib}.e2e-new && mv ${lib}.e2e-new ${lib}`);
    await waitUntil('status to say so', async () => /pending: upgrade pending: node .* \(USR2 to apply\)/.test(await status()), 30_000);
    t.regex(await c.sh(`systemctl show -p StatusText --value ${UNIT}`), /upgrade pending: node/, 'STATUS= says so too');
    const now = await upgrade();
    await waitUntil('status to say nothing is pending', async () => !/pending/.test(await status()), 30_000);
    t.deepEqual(await deletedMaps(now), [], 'the new master maps no deleted file');
  });

  test.serial('dpkg -i of a newer nodejs and libnode under load: the file triggers hand the instance over, zero failures', async (t) => {
    t.timeout(6 * MIN);
    const { version, libnode } = await nodePackages();
    const next = `${version}+e2e1`;
    const debs = [await repack(libnode, next, version), await repack('nodejs', next, version)];
    const old = await mainPid();
    const invocation = await c.prop(UNIT, 'InvocationID');
    const load = startLoad(4);
    await load.more(300, 'before the nodejs upgrade');
    const out = await c.sh(`dpkg -i ${debs.join(' ')} 2>&1`, { timeoutMs: 3 * MIN });
    t.log(out.trim().split('\n').filter((l) => l.startsWith('tsgunicorn:')).join('\n'));
    t.regex(out, /tsgunicorn: Node\.js changed on disk/);
    t.regex(out, /now runs the new version/);
    await load.more(300, 'after the nodejs upgrade');
    await stopLoad(t, load, 'nodejs upgrade');
    const now = await mainPid();
    t.not(now, old, 'a new main PID');
    t.is(await c.prop(UNIT, 'InvocationID'), invocation, 'not restarted: handed over by USR2');
    t.is((await c.sh(`dpkg-query -W -f='\${Version}' nodejs`)).trim(), next);
    t.is((await c.sh(`readlink /proc/${now}/exe`)).trim(), '/usr/bin/node', 'the master runs the node on disk');
    for (const pid of [now, ...(await workersOf(now))]) t.deepEqual(await deletedMaps(pid), [], `process ${pid} maps no deleted file`);
  });

  test.serial('apt refuses a nodejs of another major (outside the addons\' ABI) while tsgunicorn is installed; the instance serves on', async (t) => {
    t.timeout(3 * MIN);
    const { version, libnode } = await nodePackages();
    const next = `${Number(version.split('.')[0]) + 1}.0.0+e2e1`;
    const debs = [await repack(libnode, next, version), await repack('nodejs', next, version)];
    const old = await mainPid();
    // As `apt upgrade` does (it never removes a package): tsgunicorn's Depends: holds it back.
    const r = await c.shr(`apt-get install -y --no-remove ${debs.join(' ')} 2>&1`, { timeoutMs: 2 * MIN });
    t.log(r.stdout.trim().split('\n').slice(-3).join('\n'));
    t.not(r.code, 0);
    t.regex(r.stdout, /tsgunicorn/);
    t.is((await c.sh(`dpkg-query -W -f='\${Version}' nodejs`)).trim(), version, 'nodejs unchanged');
    t.is(await mainPid(), old);
    t.regex(await curl(), /^demo \d+/);
  });

  test.serial('socket activation: the first connection to /run/tsgunicorn/demo.sock starts the service', async (t) => {
    t.timeout(2 * MIN);
    await c.sh(`systemctl stop ${UNIT}; systemctl reset-failed ${UNIT} || true`, { timeoutMs: MIN });
    writeFileSync(c.path('/etc/tsgunicorn/demo.toml'), CONFIG_SOCKET);
    await c.sh(`systemctl enable --now ${SOCKET}`);
    t.is(await active(SOCKET), 'active');
    t.is(await active(), 'inactive', 'the service waits for a connection');
    t.is((await c.sh('stat -c "%A %U %G" /run/tsgunicorn/demo.sock')).trim(), 'srw-rw---- root www-data');
    t.regex(await curl('--unix-socket /run/tsgunicorn/demo.sock http://localhost/'), /^demo \d+/);
    await waitUntil('the service to become active', async () => (await active()) === 'active', 30_000);
    t.regex(await c.sh(`journalctl --no-pager -u ${UNIT} -n 30`), /fd:\/\/3/, 'serves on the inherited fd');
  });

  test.serial('socket on TCP by the documented drop-in; systemctl restart behind it under load fails zero requests', async (t) => {
    t.timeout(3 * MIN);
    await c.sh(`systemctl stop ${UNIT} ${SOCKET}
mkdir -p /etc/systemd/system/${SOCKET}.d
cp /usr/share/doc/tsgunicorn/examples/tsgunicorn-socket-tcp.conf /etc/systemd/system/${SOCKET}.d/tcp.conf
systemctl daemon-reload
systemctl start ${SOCKET}`, { timeoutMs: MIN });
    t.is(await active(), 'inactive');
    t.regex(await curl(), /^demo \d+/, 'the first connection on 127.0.0.1:8000 starts the service');
    await waitUntil('the service to become active', async () => (await active()) === 'active', 30_000);
    const old = await mainPid();
    const load = startLoad();
    await load.more(300, 'before the restart');
    await restart();
    await waitUntil('the restarted service', async () => (await active()) === 'active' && (await mainPid()) !== old, 60_000);
    await load.more(300, 'after the restart');
    await stopLoad(t, load, 'restart behind the socket');
  });

  test.serial('dpkg -i of a newer build under load: zero failures, the unit stays active with a new main PID on the new version', async (t) => {
    t.timeout(5 * MIN);
    const old = await mainPid();
    const invocation = await c.prop(UNIT, 'InvocationID');
    const load = startLoad();
    await load.more(300, 'before the upgrade');
    const out = await c.sh(`dpkg -i /e2e/v2/${basename(v2.deb)} 2>&1`, { timeoutMs: 3 * MIN });
    t.log(out.trim().split('\n').filter((l) => l.startsWith('tsgunicorn:')).join('\n'));
    t.regex(out, /now runs the new version/);
    await load.more(300, 'after the upgrade');
    await stopLoad(t, load, 'package upgrade');
    const now = await mainPid();
    t.not(now, old, 'a new main PID');
    t.is(await active(), 'active');
    t.is(await c.prop(UNIT, 'InvocationID'), invocation, 'not restarted: handed over by USR2');
    t.is((await c.sh(`dpkg-query -W -f='\${Version}' tsgunicorn`)).trim(), v2Version);
    const started = await c.sh(`journalctl --no-pager -u ${UNIT} _PID=${now}`);
    t.true(started.includes(v2Version), `the new master runs ${v2Version}:\n${started.split('\n').slice(0, 5).join('\n')}`);
    t.regex(await curl(), /^demo \d+/);
  });

  test.serial('logrotate rotates the log files and USR1 makes tsgunicorn reopen them', async (t) => {
    t.timeout(2 * MIN);
    writeFileSync(c.path('/etc/tsgunicorn/demo.toml'), `${CONFIG_SOCKET}accesslog = "/var/log/tsgunicorn/demo/access.log"\n`);
    await c.sh(`systemctl reload ${UNIT}`);
    await waitUntil('the access log', async () => {
      await curl();
      return (await c.shr('grep -c "GET / " /var/log/tsgunicorn/demo/access.log')).code === 0;
    }, 30_000);
    await c.sh('logrotate -f /etc/logrotate.d/tsgunicorn');
    t.is((await c.shr('test -s /var/log/tsgunicorn/demo/access.log.1')).code, 0, 'rotated to access.log.1');
    await waitUntil('requests logged to the new access.log', async () => {
      await curl();
      return (await c.shr('grep -q "GET / " /var/log/tsgunicorn/demo/access.log')).code === 0;
    }, 30_000);
    t.pass();
  });

  test.serial('systemctl stop with lame_duck = 5 behind HAProxy: the unit leaves the pool before it stops accepting, zero failed requests; then the same with lame_duck = 0, for comparison', async (t) => {
    t.timeout(4 * MIN);
    // A second backend beside the unit, in the container's network: this tree, run from here.
    const inside = ['nsenter', `--net=/proc/${c.leader}/ns/net`, '--'];
    const other = start(t, ['-w', '2', '-b', '127.0.0.1:8100', '--metrics-bind', '127.0.0.1:9101', fixture('app.mjs')], { prefix: inside });
    await other.waitReady();
    await c.sh(`systemctl stop ${SOCKET} ${UNIT}; systemctl disable ${SOCKET}`, { timeoutMs: MIN });
    const config = (lameDuck: number): void => writeFileSync(c.path('/etc/tsgunicorn/demo.toml'), `${CONFIG_TCP}metrics_bind = "127.0.0.1:9100"\nlame_duck = ${lameDuck}\n`);
    config(5);
    await c.sh(`systemctl reset-failed ${UNIT} || true; systemctl start ${UNIT}`, { timeoutMs: MIN });
    const lb = await startHaproxy(t, [{ name: 'unit', port: 8000, healthPort: 9100 }, { name: 'other', port: 8100, healthPort: 9101 }], inside);
    /** systemctl stop of the unit under a load through HAProxy: how long it took, when HAProxy saw it go, what failed. */
    const stopUnit = async (): Promise<{ ms: number; down: number | null; ok: number; failed: number; errors: Record<string, number> }> => {
      const load = c.load(`http://127.0.0.1:${lb.port}/`, 20, 4);
      loads.add(load);
      await load.more(500, 'before the stop');
      const t0 = Date.now();
      await c.sh(`systemctl stop ${UNIT}`, { timeoutMs: 2 * MIN });
      const ms = Date.now() - t0;
      await load.more(300, 'after the stop');
      const r = await load.stop();
      loads.delete(load);
      const down = lb.downAt('unit', t0);
      return { ms, down: down === null ? null : down - t0, ok: r.ok, failed: r.failed, errors: r.errors };
    };
    const lame = await stopUnit();
    t.log(`systemctl stop, lame_duck = 5: took ${lame.ms} ms; HAProxy DOWN after ${lame.down} ms; ${lame.ok} served, ${lame.failed} failed through HAProxy`);
    t.is(lame.failed, 0, JSON.stringify(lame.errors));
    t.not(lame.down, null, 'HAProxy took the unit out');
    t.true(lame.ms >= 5000, 'the stop waited out the lame duck');
    t.is(await c.prop(UNIT, 'Result'), 'success', 'within the stop timeout systemd extended');
    t.regex(await c.sh(`journalctl --no-pager -u ${UNIT} -n 30`), /TERM: lame duck for 5 s/);

    config(0);
    const since = Date.now();
    await c.sh(`systemctl start ${UNIT}`, { timeoutMs: MIN });
    await lb.waitUp('unit', since);
    const plain = await stopUnit();
    t.log(`systemctl stop, lame_duck = 0: took ${plain.ms} ms; HAProxy DOWN after ${plain.down} ms; ${plain.ok} served, ${plain.failed} failed through HAProxy ${JSON.stringify(plain.errors)}`);
    writeFileSync(c.path('/etc/tsgunicorn/demo.toml'), CONFIG_TCP);
    await c.sh(`systemctl start ${UNIT}`, { timeoutMs: MIN });
  });

  test.serial('systemctl stop is clean', async (t) => {
    t.timeout(2 * MIN);
    await c.sh(`systemctl stop ${SOCKET} ${UNIT}`, { timeoutMs: MIN });
    t.is(await active(), 'inactive');
    t.is(await c.prop(UNIT, 'Result'), 'success');
    t.is(await c.prop(UNIT, 'ExecMainStatus'), '0');
    t.is((await c.shr('pgrep -u tsgunicorn')).stdout.trim(), '', 'no process left');
    t.is((await c.shr('test -e /run/tsgunicorn/demo')).code, 1, 'the runtime directory is gone');
    t.is((await c.shr('test -e /run/tsgunicorn/demo.sock')).code, 1, 'the socket is removed');
    const log = await c.sh(`journalctl --no-pager -u ${UNIT} -n 40`);
    t.notRegex(log, /SIGKILL|timed out|Killing process/);
  });

  test.serial('dpkg --purge stops running instances and leaves nothing behind but what policy says', async (t) => {
    t.timeout(3 * MIN);
    await c.sh(`systemctl start ${SOCKET}`);
    await curl();
    await waitUntil('the service to become active', async () => (await active()) === 'active', 30_000);
    // the administrator's own files stay on purge (policy); take them away to see the rest go
    await c.sh(`rm -rf /etc/tsgunicorn/demo.toml /etc/systemd/system/${SOCKET}.d`);
    const out = await c.sh('dpkg --purge tsgunicorn 2>&1', { timeoutMs: 2 * MIN });
    t.log(out.trim());
    t.is((await c.shr('pgrep -u tsgunicorn')).stdout.trim(), '', 'no process left');
    t.is((await c.sh(`systemctl list-units --all --plain --no-legend 'tsgunicorn*'`)).trim(), '', 'no unit left');
    t.is((await c.shr('dpkg-query -W tsgunicorn')).code, 1, 'not installed');
    t.is((await c.sh('ls /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked 2>/dev/null | grep tsgunicorn || true')).trim(), '');
    const fsAfter = await c.sh(SNAPSHOT);
    const before = new Set(fsBefore.split('\n'));
    const after = new Set(fsAfter.split('\n'));
    const left = [...after].filter((p) => !before.has(p));
    const lost = [...before].filter((p) => !after.has(p));
    t.deepEqual(left, [], 'files left behind');
    t.deepEqual(lost, [], 'files that were there before and are gone');
    t.regex(await c.sh('getent passwd tsgunicorn'), /^tsgunicorn:/, 'the system user stays (policy: never removed)');
  });

}
