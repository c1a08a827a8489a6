// Puts freshly bound sockets into the listening state at once, so connections that arrive while
// the first workers boot wait in the backlog instead of being refused, like Gunicorn's. The master
// must never accept, and libuv accepts as soon as a handle listens in a running event loop; so a
// short-lived child calls listen() on copies of the descriptors and exits in the same tick,
// before its event loop ever runs. The listening state belongs to the socket, not the process.
// The child gets an empty environment: NODE_OPTIONS or NODE_EXTRA_CA_CERTS (a CA bundle parsed at
// start, ~70 ms) would only slow down a process that needs nothing but `net`.
// The backlog is passed as listen()'s second argument: Node ignores `backlog` in the options of
// a listen on a descriptor and listens with 511 (Node 20, 22 and 24).

import { spawnSync } from 'node:child_process';
import { ListenError } from '../core/errors.js';

const SCRIPT = `
const net = require('net');
const [count, backlog] = process.argv.slice(1).map(Number);
for (let i = 0; i < count; i++) net.createServer().listen({ fd: 3 + i }, backlog);
process.exit(0);
`;

export function listenWithoutAccepting(fds: readonly number[], backlog: number): void {
  if (fds.length === 0) return;
  const r = spawnSync(process.execPath, ['-e', SCRIPT, String(fds.length), String(backlog)], {
    stdio: ['ignore', 'ignore', 'pipe', ...fds],
    env: {},
    encoding: 'utf8',
    timeout: 10000,
  });
  if (r.status !== 0) {
    const why = /Error: (.*)/.exec(r.stderr ?? '')?.[1] ?? r.error?.message ?? `exit ${r.status}`;
    throw new ListenError(`cannot listen: ${why.includes('EADDRINUSE') ? 'address in use' : why}`);
  }
}
