// The master knows what it runs (src/master/on-disk.ts): when the Node binary it runs is replaced
// on disk (what a nodejs package upgrade does), `tsgunicorn status`, STATUS= and the log say an
// upgrade is pending until a USR2 applies it; when the app's file changes, that a HUP would apply
// it, until the HUP. Checked every 5 s, never per request.

import test, { type ExecutionContext } from 'ava';
import { copyFileSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deletedMappings } from '../src/master/on-disk.js';
import { alive, freePort, get, pidIn, runCli, sleep, start, tempDir, trackAll, waitUntil, type Daemon } from './helpers/daemon.js';
import { NotifySocket } from './helpers/notify-socket.js';
import { lacksNotify, otherMajorNode, serialNeeding } from './helpers/requirements.js';

const statusOf = async (pidfile: string): Promise<string> => (await runCli(['status', '--pid', pidfile])).stdout;

test('deletedMappings: executable mappings of replaced files, each once', (t) => {
  const maps = [
    '55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 131 /usr/bin/node (deleted)',
    '55d0c0a01000-55d0c0a02000 r-xp 00001000 08:01 131 /usr/bin/node (deleted)',
    '7f0000000000-7f0000100000 r-xp 00000000 08:01 200 /usr/lib/x86_64-linux-gnu/libnode.so.115 (deleted)',
    '7f0000100000-7f0000200000 r-xp 00100000 08:01 200 /usr/lib/x86_64-linux-gnu/libnode.so.115 (deleted)',
    '7f0000300000-7f0000400000 r-xp 00000000 08:01 300 /usr/lib/x86_64-linux-gnu/libc.so.6',
    '7f0000500000-7f0000600000 rw-p 00000000 00:00 0 ',
    '7f0000600000-7f0000700000 rw-s 00000000 00:01 9 /memfd:x (deleted)',
  ].join('\n');
  t.deepEqual(deletedMappings(maps), ['/usr/bin/node', '/usr/lib/x86_64-linux-gnu/libnode.so.115']);
});

/** A master (one worker, an app answering `ok`) run by a copy of `from` (this test's node), in a temp dir. */
async function onCopiedNode(t: ExecutionContext, env: NodeJS.ProcessEnv = {}, from = process.execPath): Promise<{ d: Daemon; node: string; pidfile: string; port: number }> {
  const dir = tempDir();
  mkdirSync(join(dir, 'bin'));
  const node = join(dir, 'bin', 'node');
  copyFileSync(from, node);
  const pidfile = join(dir, 'master.pid');
  const port = await freePort();
  writeFileSync(join(dir, 'app.mjs'), 'export default (req, res) => res.end("ok");\n');
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--pid', pidfile, join(dir, 'app.mjs')], { node, env });
  trackAll(t, pidfile);
  return { d, node, pidfile, port };
}

/** What dpkg does to a file it upgrades: the new one is written aside and renamed over the old. */
function replaceAsDpkgDoes(file: string, from: string): void {
  copyFileSync(from, `${file}.dpkg-new`);
  renameSync(`${file}.dpkg-new`, file);
}

test.serial('a replaced Node binary: an upgrade is pending until USR2, and the new master runs the new file', async (t) => {
  const { d, node, pidfile, port } = await onCopiedNode(t);
  await d.waitReady();
  t.notRegex(await statusOf(pidfile), /pending/);

  replaceAsDpkgDoes(node, process.execPath);
  const pending = /pending: upgrade pending: node v[\d.]+ on disk is not the one running \(node replaced\) \(USR2 to apply\)/;
  await waitUntil('status says the upgrade is pending', async () => pending.test(await statusOf(pidfile)), 15000);
  t.regex(d.output, /On disk: upgrade pending: node/);

  d.signal('SIGUSR2');
  await d.waitForLog(/Upgrade complete: this master \(pid \d+\)/);
  t.not(pidIn(pidfile), d.pid);
  await sleep(6000);
  t.notRegex(await statusOf(pidfile), /pending/, 'the new master runs the Node on disk');
  t.is((await get(`http://127.0.0.1:${port}/`)).body, 'ok');
});

const other = otherMajorNode();
serialNeeding(lacksNotify() ?? (other === null ? 'no node of another major version (TSG_NODES)' : null), 'under systemd, USR2 onto a Node of another major (the addons do not load): the new master does not take over, the old one serves on', async (t) => {
  const ns = new NotifySocket();
  t.teardown(() => ns.close());
  await ns.ready();
  const { d, node, pidfile, port } = await onCopiedNode(t, { NOTIFY_SOCKET: ns.path });
  await ns.waitFor('READY', '1');
  // A nodejs package of the next major unpacked by dpkg -i: its node is now the one on disk.
  replaceAsDpkgDoes(node, other!);
  d.signal('SIGUSR2');
  await d.waitForLog(/Upgrade failed: the new master exited \(code 1\) before it was ready; this master keeps serving/);
  t.regex(d.output, /cannot take over from the old master \(pid \d+\): systemd needs MAINPID= from this master, and the sd-notify addon does not load under node v\d+/);
  t.is(pidIn(pidfile), d.pid, 'the pidfile names the old master again');
  t.false(ns.messages.some((m) => 'MAINPID' in m.fields), 'no MAINPID= was sent');
  t.is((await get(`http://127.0.0.1:${port}/`)).body, 'ok');
});

serialNeeding(lacksNotify() ?? (other === null ? 'no node of another major version (TSG_NODES)' : null), 'under a NOTIFY_SOCKET neither master can speak to (no addon for their Node, as in a container without build tools), USR2 upgrades as without systemd', async (t) => {
  const ns = new NotifySocket();
  t.teardown(() => ns.close());
  await ns.ready();
  const { d, pidfile, port } = await onCopiedNode(t, { NOTIFY_SOCKET: ns.path }, other!);
  await d.waitReady();
  t.regex(d.output, /NOTIFY_SOCKET is set but sd_notify is unavailable/);
  d.signal('SIGUSR2');
  await d.waitForLog(/Upgrade complete: this master \(pid \d+\)/);
  await waitUntil('the old master to be gone', () => !alive(d.pid), 15000);
  t.not(pidIn(pidfile), d.pid);
  t.notRegex(d.output, /cannot take over/);
  t.is(ns.messages.length, 0, 'nothing reached the notify socket');
  t.is((await get(`http://127.0.0.1:${port}/`)).body, 'ok');
});

serialNeeding(lacksNotify(), 'a changed app file: status, STATUS= and the metric say a HUP would apply it, until the HUP', async (t) => {
  const ns = new NotifySocket();
  t.teardown(() => ns.close());
  await ns.ready();
  const dir = tempDir();
  const app = join(dir, 'app.mjs');
  writeFileSync(app, 'export default (req, res) => res.end("v1");\n');
  const pidfile = join(dir, 'master.pid');
  const [port, mport] = [await freePort(), await freePort()];
  const d = start(t, ['-w', '1', '-b', `127.0.0.1:${port}`, '--pid', pidfile, '--metrics-bind', `127.0.0.1:${mport}`, app], { env: { NOTIFY_SOCKET: ns.path } });
  await d.waitReady();
  const metric = async (): Promise<string> => /tsgunicorn_upgrade_pending\{what="app"\} (\d)/.exec((await get(`http://127.0.0.1:${mport}/metrics`)).body)?.[1] ?? '?';
  t.is(await metric(), '0');

  writeFileSync(app, 'export default (req, res) => res.end("v2");\n');
  await waitUntil('status says the app changed', async () => /pending: app changed on disk \(HUP to apply\)/.test(await statusOf(pidfile)), 15000);
  t.is(await metric(), '1');
  await waitUntil('STATUS= says so', () => ns.messages.some((m) => /app changed on disk \(HUP to apply\)/.test(m.fields['STATUS'] ?? '')), 15000);
  t.is((await get(`http://127.0.0.1:${port}/`)).body, 'v1', 'the workers still run the app they loaded');

  d.signal('SIGHUP');
  await d.waitForLog(/Reloaded: 1 new worker/);
  t.is((await get(`http://127.0.0.1:${port}/`)).body, 'v2');
  t.notRegex(await statusOf(pidfile), /pending/);
  t.is(await metric(), '0');
});
