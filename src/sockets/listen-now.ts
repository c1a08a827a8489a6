// Puts freshly bound sockets into the listening state at once, so connections that arrive while
// the first workers boot wait in the backlog instead of being refused, like Gunicorn's. The master
// must never accept, and libuv accepts as soon as a handle listens in a running event loop; so a
// short-lived child calls listen() on copies of the descriptors and exits in the same tick,
// before its event loop ever runs. The listening state belongs to the socket, not the process.
// The master does not wait for it before starting workers: a Node process takes ~0.1 s to start,
// and workers that listen first do no harm (listen() on a listening socket only sets the backlog).

import { spawn } from 'node:child_process';
import { ListenError } from '../errors.js';

const SCRIPT = `
const net = require('net');
const [count, backlog] = process.argv.slice(1).map(Number);
for (let i = 0; i < count; i++) net.createServer().listen({ fd: 3 + i, backlog });
process.exit(0);
`;

export function listenWithoutAccepting(fds: readonly number[], backlog: number): Promise<void> {
  if (fds.length === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', SCRIPT, String(fds.length), String(backlog)], {
      stdio: ['ignore', 'ignore', 'pipe', ...fds],
      timeout: 10000,
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', (err) => reject(new ListenError(`cannot listen: ${err.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) return resolve();
      const why = /Error: (.*)/.exec(stderr)?.[1] ?? (signal ? `killed by ${signal}` : `exit ${code}`);
      reject(new ListenError(`cannot listen: ${why.includes('EADDRINUSE') ? 'address in use' : why}`));
    });
  });
}
