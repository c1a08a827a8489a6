// Graceful drain, the heart of zero-failure reloads. http.Server#close() also closes idle
// keep-alive connections at once, racing clients that are sending their next request on them.
// Instead we:
//   1. stop listening, on every handle (net.Server#close: the socket stays open in the master and
//      other workers, so the kernel hands new connections to them), and tell the app: each
//      http.Server emits 'tsgunicorn:drain' (an app with WebSockets can ask its clients to
//      reconnect),
//   2. mark the last response due on each connection, if not yet started, and every later one,
//      `Connection: close`, so each keep-alive connection ends right after the responses the
//      client has asked for,
//   3. leave idle connections to Node's keep-alive timeout (the same close a client meets in
//      normal operation),
//   4. exit once the last connection is gone, or when graceful_timeout runs out; then WebSockets
//      still open get a close frame with code 1001 (going away) before the worker exits.
//
// An HTTP/2 session instead gets GOAWAY in two steps (RFC 9113 §6.8): first one that names the
// highest stream id possible, so the client opens no more streams, then, once it answered a PING
// (so every stream it opened before reading the first GOAWAY has arrived), the real one; the
// streams open then finish and the session closes.
//
// Upgraded connections are invisible to http.Server once handed to the app, so watchUpgrades()
// records the WebSocket ones as the app accepts them.

import { Server as NetServer, type Socket } from 'node:net';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { ServerHttp2Session } from 'node:http2';
import type { Duplex } from 'node:stream';

/** Emitted on each of the worker's http.Servers when the worker starts draining. */
export const DRAIN_EVENT = 'tsgunicorn:drain';

/** What a 'tsgunicorn:drain' listener receives. */
export interface DrainInfo {
  /** Milliseconds until tsgunicorn closes the WebSockets still open (graceful_timeout). */
  readonly timeoutMs: number;
}

/** How long WebSocket clients get to answer the 1001 close frame before the worker exits. */
const CLOSE_WAIT_MS = 500;

const kUpgraded = Symbol('tsgunicorn.upgradedSockets');
type Watched = Server & { [kUpgraded]?: Set<Socket> };

const kTracked = Symbol('tsgunicorn.tracked');
const kQueued = Symbol('tsgunicorn.queuedResponses');
/**
 * A connection as Node's http.Server keeps it: `_httpMessage` is the response being sent on it
 * (set when a request is handed to the app, cleared when its response has finished). Reading it
 * costs the hot path nothing. Responses to requests pipelined behind it wait in Node's own queue,
 * which it does not show: those few are recorded on the connection (`kQueued`) until they finish.
 */
type Connection = Socket & { _httpMessage?: ServerResponse | null; [kTracked]?: true; [kQueued]?: Set<ServerResponse> };

/** A server's WebSocket close frame (unmasked, RFC 6455 §5.5.1): 1001 going away, with a reason. */
function goingAway(): Buffer {
  const reason = Buffer.from('server stopping');
  return Buffer.concat([Buffer.from([0x88, 2 + reason.length, 0x03, 0xe9]), reason]);
}

/**
 * Records the WebSocket connections the app accepts on `server`, so that draining can close them
 * properly. tsgunicorn listens for 'upgrade' only while the app does: Node answers upgrade
 * requests itself (as plain requests) when nobody listens, and a listener of ours alone would
 * leave them hanging.
 */
export function watchUpgrades(server: Server): void {
  const s = server as Watched;
  if (s[kUpgraded]) return;
  const sockets = new Set<Socket>();
  s[kUpgraded] = sockets;
  const track = (req: IncomingMessage, socket: Duplex): void => {
    if (!/^websocket$/i.test(req.headers.upgrade ?? '')) return;
    sockets.add(socket as Socket);
    socket.once('close', () => sockets.delete(socket as Socket));
  };
  server.on('newListener', (event: string | symbol, listener: unknown) => {
    if (event === 'upgrade' && listener !== track && server.listenerCount('upgrade') === 0) server.prependListener('upgrade', track);
  });
  server.on('removeListener', (event: string | symbol, listener: unknown) => {
    if (event === 'upgrade' && listener !== track && server.listeners('upgrade').every((l) => l === track)) server.off('upgrade', track);
  });
  if (server.listenerCount('upgrade') > 0) server.prependListener('upgrade', track);
}

/**
 * Sends 1001 to each WebSocket still open (whose handshake the app answered) and ends it; waits
 * up to CLOSE_WAIT_MS for the clients to close, then destroys what is left. A socket whose
 * handshake was never answered is destroyed (a close frame would not be understood).
 */
async function closeWebSockets(servers: readonly Server[]): Promise<void> {
  const open: Socket[] = [];
  for (const server of servers) {
    for (const socket of (server as Watched)[kUpgraded] ?? []) {
      if (socket.destroyed) continue;
      socket.on('error', () => { /* the app's WebSocket library may write after our end() */ });
      if (socket.writable && socket.bytesWritten > 0) {
        socket.end(goingAway());
        open.push(socket);
      } else {
        socket.destroy();
      }
    }
  }
  if (open.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(open.map((s) => new Promise<void>((done) => { if (s.destroyed) done(); else s.once('close', () => done()); }))),
    new Promise<void>((done) => { timer = setTimeout(done, CLOSE_WAIT_MS); }),
  ]);
  clearTimeout(timer);
  for (const s of open) s.destroy();
}

/** How long a session told to go away gets to answer the PING before the final GOAWAY is sent anyway. */
const GOAWAY_PING_WAIT_MS = 2000;
const kGoingAway = Symbol('tsgunicorn.goingAway');
const kServed = Symbol('tsgunicorn.served');
type Session = ServerHttp2Session & { [kGoingAway]?: true; [kServed]?: true };

/**
 * Closes an HTTP/2 session gracefully with the two-step GOAWAY; once per session. A session that
 * has not had a stream yet gets it after its first one: a connection accepted just before the
 * listener closed carries a request, and a client told to go away before it sent one would fail
 * it (HAProxy does, and Node's client) instead of serving it on this connection.
 */
export function goAway(session: Session): void {
  if (session.closed || session.destroyed || session[kGoingAway]) return;
  if (session[kServed] !== true) {
    session.once('stream', () => setImmediate(() => goAway(session)));
    return;
  }
  session[kGoingAway] = true;
  session.goaway(0, 2 ** 31 - 1);
  const timer = setTimeout(() => session.close(), GOAWAY_PING_WAIT_MS);
  const close = (): void => { clearTimeout(timer); session.close(); };
  if (!session.ping(close)) close();
}

export class Drain {
  /** Connections that have carried a request, until they close. */
  private readonly connections = new Set<Socket>();
  /** HTTP/2 sessions, until they close. */
  private readonly sessions = new Set<ServerHttp2Session>();
  /** True once draining: every response from now on closes its connection. */
  closing = false;
  private started = false;
  /** Draining or in lame duck: every HTTP/2 session is told to go away. */
  private goingAway = false;

  /** The handles that accept for the servers besides their own (accept.ts): closed with them. */
  private readonly helpers: NetServer[] = [];

  constructor(private readonly servers: readonly Server[]) {}

  /** Handles that accept connections for the servers: a drain closes them too, and waits for their connections. */
  addAcceptHandles(handles: readonly NetServer[]): void {
    this.helpers.push(...handles);
  }

  get isDraining(): boolean {
    return this.started;
  }

  /**
   * Called with every request the app gets: two property checks per request; a Set entry and a
   * listener per connection ('close'; keep-alive requests add nothing) and per pipelined request
   * ('finish').
   */
  track(socket: Socket, res: ServerResponse): void {
    const c = socket as Connection;
    if (c[kTracked] !== true) {
      c[kTracked] = true;
      this.connections.add(socket);
      socket.once('close', () => this.connections.delete(socket));
    }
    if (c._httpMessage !== res) {
      const queued = (c[kQueued] ??= new Set());
      queued.add(res);
      res.once('finish', () => queued.delete(res));
    }
  }

  /** An HTTP/2 session opened: told to go away (after its first stream) if the worker is already on its way out. */
  addSession(session: Session): void {
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    session.once('stream', () => { session[kServed] = true; });
    if (this.goingAway) goAway(session);
  }

  /** Lame duck: responses close their connections and sessions go away, while the worker still accepts. */
  lameDuck(): void {
    this.closing = true;
    this.goAwayAll();
  }

  private goAwayAll(): void {
    this.goingAway = true;
    for (const session of this.sessions) goAway(session);
  }

  /** The responses the app has not ended yet on a connection, in the order they go out. */
  private pending(c: Connection): ServerResponse[] {
    const out = new Set<ServerResponse>();
    for (const res of [c._httpMessage, ...(c[kQueued] ?? [])]) if (res && !res.writableEnded) out.add(res);
    return [...out];
  }

  /** The responses the app has not ended yet, on every connection. */
  inflight(): ServerResponse[] {
    return [...this.connections].flatMap((c) => this.pending(c));
  }

  /** Starts draining; resolves when every connection has closed or `timeoutMs` elapsed. */
  start(timeoutMs: number): Promise<'drained' | 'timeout'> {
    this.started = true;
    this.closing = true;
    this.goAwayAll();
    // The last response due on each connection closes it (an earlier one would cut off the
    // responses pipelined behind it); one whose head is already out leaves it to the handler
    // (the next request on it) or to the keep-alive timeout.
    for (const c of this.connections) {
      const last = this.pending(c).at(-1);
      if (last && !last.headersSent) last.setHeader('Connection', 'close');
    }
    const closed = [...this.servers, ...this.helpers].map((s) => new Promise<void>((done) => {
      if (!s.listening) { done(); return; }
      NetServer.prototype.close.call(s, () => done());
    }));
    const info: DrainInfo = { timeoutMs };
    for (const s of this.servers) {
      try {
        s.emit(DRAIN_EVENT, info);
      } catch (err) {
        process.emitWarning(`a '${DRAIN_EVENT}' listener threw: ${(err as Error)?.stack ?? String(err)}`);
      }
    }
    return new Promise((done) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        void closeWebSockets(this.servers).then(() => done('timeout'));
      }, timeoutMs);
      void Promise.all(closed).then(() => { if (!timedOut) { clearTimeout(timer); done('drained'); } });
    });
  }
}
