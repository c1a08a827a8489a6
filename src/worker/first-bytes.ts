// Connections judged by their first bytes, before HTTP: a PROXY protocol header (proxy-protocol.ts)
// and the HTTP/2 preface (http2.ts). The bytes read to judge are put back for whoever serves the
// connection next, so the steps stack: each hands its sockets to the listeners that were on the
// server before it, paused; a step that reads first resumes them.

import type { Server, Socket } from 'node:net';

export type Next = (socket: Socket) => void;

/** Puts `route` in place of `event`'s listeners on `server`; `next` hands a connection on to them. */
export function routeConnections(server: Server, event: 'connection' | 'secureConnection', route: (socket: Socket, next: Next) => void): void {
  const listeners = server.listeners(event) as Next[];
  server.removeAllListeners(event);
  const next: Next = (socket) => { for (const listener of listeners) listener.call(server, socket); };
  server.on(event, (socket: Socket) => route(socket, next));
}

/**
 * Reads a connection's first bytes until `judge` has a verdict (anything but undefined), then
 * pauses the socket and calls `decided` with it and every byte read. `timedOut` runs when no
 * verdict came within `timeoutMs`; a connection that closes first is simply forgotten.
 */
export function judgeFirstBytes<T>(socket: Socket, timeoutMs: number, judge: (buf: Buffer) => T | undefined, decided: (verdict: T, buf: Buffer) => void, timedOut: () => void): void {
  let buf: Buffer = Buffer.alloc(0);
  const ignore = (): void => { /* reset before a verdict: the timer or close cleans up */ };
  const timer = setTimeout(timedOut, timeoutMs);
  const done = (): void => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('error', ignore);
    socket.off('close', done);
  };
  const onData = (chunk: Buffer): void => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    const verdict = judge(buf);
    if (verdict === undefined) return;
    done();
    socket.pause();
    decided(verdict, buf);
  };
  socket.on('error', ignore);
  socket.on('close', done);
  socket.on('data', onData);
  socket.resume();
}
