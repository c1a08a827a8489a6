// TSGUNICORN_FDS, the list of sockets an upgrading master hands over (src/systemd/listen-fds.ts),
// and sd_listen_fds(3)'s variables: names and worker slots survive the trip.

import test from 'ava';
import { OWNED_PATHS_ENV, UPGRADE_FDS_ENV, upgradeEnv, upgradeFds } from '../src/sockets/handover.js';
import { systemdListenFds } from '../src/systemd/listen-fds.js';

test('the handover list keeps names (with any characters), reuse-port slots and owned socket paths, and is read once', (t) => {
  const fds = [
    { fd: 3, name: 'unix:/run/a,b:c.sock', slot: null, ownPath: { path: '/run/a,b:c.sock', dev: '2049', ino: '18446744073709551' } },
    { fd: 4, name: '127.0.0.1:8000', slot: 0, ownPath: null },
    { fd: 5, name: '[::1]:8000', slot: 0, ownPath: null },
    { fd: 6, name: '127.0.0.1:8000', slot: 1, ownPath: null },
    { fd: 7, name: '[::1]:8000', slot: 1, ownPath: null },
    { fd: 8, name: 'unix:/run/passed-in.sock', slot: null, ownPath: null },
  ];
  const env: NodeJS.ProcessEnv = upgradeEnv(fds);
  t.is(env[UPGRADE_FDS_ENV]!.split(',')[0], '3:unix%3A%2Frun%2Fa%2Cb%3Ac.sock', 'the list an older tsgunicorn reads is as it was');
  t.deepEqual(upgradeFds(env), fds);
  t.false(UPGRADE_FDS_ENV in env || OWNED_PATHS_ENV in env, 'the variables are not passed on to workers');
  t.deepEqual(upgradeFds(env), []);
});

test('from a master that did not pass slots, an address named more than once is a socket per slot, in order', (t) => {
  // tsgunicorn 0.1.0 with reuse_port and two workers, a unix socket and two systemd sockets that share a name
  const env: NodeJS.ProcessEnv = { [UPGRADE_FDS_ENV]: '3:unix%3A%2Frun%2Fx.sock,4:127.0.0.1%3A8000,5:127.0.0.1%3A8000,6:web,7:web,8:0.0.0.0%3A9000' };
  t.deepEqual(upgradeFds(env).map((f) => [f.fd, f.slot]), [[3, null], [4, 0], [5, 1], [6, null], [7, null], [8, null]]);
});

test('systemd\'s sockets are shared, named by LISTEN_FDNAMES, and only for the process LISTEN_PID names', (t) => {
  const env: NodeJS.ProcessEnv = { LISTEN_PID: '42', LISTEN_FDS: '2', LISTEN_FDNAMES: 'web:' };
  t.deepEqual(systemdListenFds(42, { ...env }), [{ fd: 3, name: 'web', slot: null, ownPath: null }, { fd: 4, name: 'fd://4', slot: null, ownPath: null }]);
  t.deepEqual(systemdListenFds(43, { ...env }), []);
});
