// How a worker accepts: through several handles on each listening socket. Since libuv 1.45
// (Node 20, 22 and 24) a listening handle accepts one connection per event-loop iteration
// (libuv#3696), and a busy worker's iteration is long: it first serves every connection that has
// a request ready. So when many connections arrive at once, as when a deploy's old workers close
// their keep-alive connections and the clients all reconnect, they waited in the accept queue and
// were taken one per iteration: at 1,000 keep-alive connections, the last after up to 2 s. The
// master hands the worker each socket as ACCEPT_HANDLES descriptors, and the worker listens on
// every one, so it takes up to that many connections per iteration. When the queue is empty, a
// new connection costs each extra handle one accept(2) that finds nothing.
//
// The http.Server listens on the first descriptor, so its address(), `listening` and close() are
// Node's; the other handles are net.Servers with the same socket options that hand each
// connection to it (the 'connection' event, as Node documents for connections accepted
// elsewhere). worker_connections counts the connections of all of them together, and a drain
// closes them all (Drain.addAcceptHandles).

import { Server as NetServer, type ServerOpts, type Socket } from 'node:net';
import type { Server } from 'node:http';

function listenOn(server: NetServer, fd: number, backlog: number): Promise<void> {
  return new Promise<void>((done, fail) => {
    server.once('error', fail);
    // The backlog as the second argument: Node ignores the option on a descriptor (see
    // sockets/listen-now.ts). Every handle passes it: each listen(2) sets the socket's backlog anew.
    server.listen({ fd }, backlog, () => { server.off('error', fail); done(); });
  });
}

/** What net.Server keeps of its options, and applies to each connection it accepts (Node 20, 22 and 24). */
interface AcceptOptions {
  allowHalfOpen: boolean;
  pauseOnConnect: boolean;
  noDelay: boolean;
  keepAlive: boolean;
  /** In seconds, as net.Server keeps it. */
  keepAliveInitialDelay: number;
  highWaterMark: number;
}

/**
 * The options `server` gives the connections it accepts, for a helper to give its own the same:
 * an http.Server's are not net.Server's defaults (noDelay on, half-open allowed), and an https
 * one's differ again (half-open not allowed).
 */
function sameSocketOptions(server: Server): ServerOpts {
  const o = server as unknown as AcceptOptions;
  return {
    allowHalfOpen: o.allowHalfOpen,
    pauseOnConnect: o.pauseOnConnect,
    noDelay: o.noDelay,
    keepAlive: o.keepAlive,
    keepAliveInitialDelay: o.keepAliveInitialDelay * 1000,
    highWaterMark: o.highWaterMark,
  };
}

/**
 * Listens with `server` on `fds[0]` and with a helper handle on each other descriptor of the same
 * socket, at most `limit` connections open among them (Node's maxConnections: a connection past
 * it is closed at once); resolves with the helpers once all listen.
 */
export async function acceptOn(server: Server, fds: readonly number[], backlog: number, limit: number): Promise<NetServer[]> {
  let open = 0;
  let viaHelpers = 0;
  // Node drops a connection the server itself accepts once its own count reaches maxConnections;
  // 0 there means no limit, so no room at all is -1 (the same on Node 20, 22 and 24).
  const setLimit = (): void => { server.maxConnections = limit > viaHelpers ? limit - viaHelpers : -1; };
  setLimit();
  // First of the 'connection' listeners: every connection, whichever handle took it, counts at once.
  server.prependListener('connection', (socket: Socket) => {
    open++;
    socket.once('close', () => { open--; });
  });
  const handOver = (socket: Socket): void => {
    if (open >= limit) {
      socket.destroy();
      return;
    }
    viaHelpers++;
    setLimit();
    socket.once('close', () => { viaHelpers--; setLimit(); });
    server.emit('connection', socket);
  };
  const helpers = fds.slice(1).map(() => new NetServer(sameSocketOptions(server), handOver));
  await Promise.all([listenOn(server, fds[0]!, backlog), ...helpers.map((h, i) => listenOn(h, fds[i + 1]!, backlog))]);
  // Accept errors (EMFILE) go where the server's go.
  for (const h of helpers) h.on('error', (err) => server.emit('error', err));
  return helpers;
}
