// HTTP/2 in a worker (http_protocols, http2_cleartext): sessions a TLS handshake negotiated (ALPN
// `h2`), and cleartext sessions with prior knowledge (h2c) from trusted peers, served by the
// worker's one request handler through node:http2's compatibility API. The worker's http.Servers
// still accept every connection, so `worker_connections` counts sessions and a drain waits for
// their sockets; each connection that speaks HTTP/2 is handed from them to one http2 server that
// never listens. nghttp2 enforces the protocol (framing, HPACK, flow control) and bounds the
// known floods; what the HTTP/1.1 path enforces on top of Node (the request limits, singleton
// fields) is enforced here too, per stream: a refused request ends its stream, not the session.

import { constants, createServer, type Http2Server, type ServerHttp2Stream, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session, type ServerOptions } from 'node:http2';
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { WorkerSettings } from '../config/settings.js';
import { allowsTransportPeer, type AllowList } from '../sockets/allow-list.js';
import { goAway, type Drain } from './drain.js';
import { judgeFirstBytes, routeConnections } from './first-bytes.js';
import type { Refusal } from './refusals.js';
import { limitViolation } from './strict-http.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** Whether a connection's first bytes are the HTTP/2 preface: true, false, or undefined (too few to tell). */
export function isPreface(buf: Buffer): boolean | undefined {
  const n = Math.min(buf.length, PREFACE.length);
  if (buf.compare(PREFACE, 0, n, 0, n) !== 0) return false;
  return n === PREFACE.length ? true : undefined;
}

/**
 * Rapid reset (CVE-2023-44487): a session whose client cancels (RST_STREAM CANCEL) more than
 * MAX_RESETS streams within RESET_WINDOW_MS, and at least half the streams it opened there, is an
 * attacker: it is closed (ENHANCE_YOUR_CALM). Node alone only stops reading from such a session,
 * which then stays open until it is idle. The ratio spares a proxy's session that carries many
 * clients, some of whom give up on their requests.
 */
const MAX_RESETS = 100;
const RESET_WINDOW_MS = 1000;

/** Counts the streams a session's client opens and cancels; closes the session past MAX_RESETS and half of them in a window. */
function limitResets(session: ServerHttp2Session): void {
  let windowStart = 0;
  let opened = 0;
  let resets = 0;
  session.on('stream', (stream: ServerHttp2Stream) => {
    opened++;
    stream.once('close', () => {
      if (stream.rstCode !== constants.NGHTTP2_CANCEL) return;
      const now = Date.now();
      if (now - windowStart > RESET_WINDOW_MS) { windowStart = now; opened = 1; resets = 0; }
      if (++resets > MAX_RESETS && resets * 2 >= opened) session.destroy(new Error('rapid reset'), constants.NGHTTP2_ENHANCE_YOUR_CALM);
    });
  });
}

/** Fields a request may carry once (RFC 9110 §5.3); HTTP/2 has no framing of its own to check. */
const SINGLETONS = new Set(['host', 'content-length', 'content-type', 'authorization', 'proxy-authorization']);

/** The session options: the http2_* settings, and nghttp2's flood bounds (docs/reliability.md says why). */
function sessionOptions(s: WorkerSettings): ServerOptions {
  return {
    settings: {
      maxConcurrentStreams: s.http2_max_concurrent_streams,
      initialWindowSize: s.http2_initial_window_size,
      maxFrameSize: s.http2_max_frame_size,
      maxHeaderListSize: s.http2_max_header_list_size,
      enablePush: false,
    },
    // Above limit_request_fields (and the 4 pseudo-header fields), so that more gets our 431.
    maxHeaderListPairs: s.limit_request_fields > 0 ? Math.max(128, s.limit_request_fields + 5) : 2000,
    // Invalid frames, refused streams (rapid reset), unanswered PINGs, SETTINGS entries: past these
    // the session is closed with ENHANCE_YOUR_CALM; the other sessions are not affected.
    maxSessionInvalidFrames: 100,
    maxSessionRejectedStreams: 100,
    maxOutstandingPings: 10,
    maxSettings: 32,
    maxSessionMemory: 10,
  };
}

/**
 * What an HTTP/2 request is refused for before the app sees it, or null. The request limits
 * count the fields as HTTP/1.1 would (without the pseudo-header fields, `:path` as the target).
 */
export function checkHttp2Request(req: IncomingMessage, s: WorkerSettings): Refusal | null {
  const raw = req.rawHeaders;
  const fields: string[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.startsWith(':')) continue;
    fields.push(name, raw[i + 1]!);
    if (!SINGLETONS.has(name)) continue;
    if (seen.has(name)) return DUPLICATE;
    seen.add(name);
  }
  return limitViolation({ method: req.method, url: req.url, rawHeaders: fields } as IncomingMessage, s);
}

const DUPLICATE: Refusal = Object.freeze({ status: 400, reason: 'Bad Request', why: 'a field that may appear once appears twice' });

/**
 * Fields HTTP/2 forbids in a response (RFC 9113 §8.2.2) that apps and frameworks set for
 * HTTP/1.1: Hono's streamSSE sets Transfer-Encoding, and a proxied fetch() Response carries
 * Connection and Keep-Alive. node:http2 throws on them in writeHead() and end(), failing the
 * response and the worker with it; they mean nothing on HTTP/2, so they are dropped.
 */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings']);

function connectionSpecific(name: unknown): boolean {
  return typeof name === 'string' && CONNECTION_SPECIFIC.has(name.toLowerCase());
}

/** writeHead()'s headers without the connection-specific fields: an object, or a flat [name, value, ...] list. */
function withoutConnectionFields(headers: unknown): unknown {
  if (Array.isArray(headers)) return headers.filter((_, i, all) => !connectionSpecific(all[i - (i % 2)]));
  if (typeof headers !== 'object' || headers === null) return headers;
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !connectionSpecific(name)));
}

/** Makes `res` (an HTTP/2 response) drop the connection-specific fields it is given. */
export function dropConnectionFields(res: ServerResponse): void {
  const { setHeader, writeHead } = res;
  res.setHeader = function (this: ServerResponse, name: string, value: number | string | readonly string[]) {
    return connectionSpecific(name) ? this : setHeader.call(this, name, value);
  } as ServerResponse['setHeader'];
  res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args.map((a, i) => (i === 0 ? a : withoutConnectionFields(a))));
  } as ServerResponse['writeHead'];
}

/** Answers a refused HTTP/2 request: its stream ends, the session goes on. What the app set is dropped. */
export function refuseHttp2(res: ServerResponse, r: Refusal): void {
  try {
    for (const name of res.getHeaderNames()) res.removeHeader(name);
    res.writeHead(r.status, { 'content-type': 'text/plain' });
    res.end(`${r.reason}\n`);
  } catch {
    res.destroy(); // the stream is gone already: nothing to answer on
  }
}

/** Apps and frameworks read the authority from `Host`: an HTTP/2 request gets it from `:authority`. */
export function hostFromAuthority(req: IncomingMessage): void {
  const authority = req.headers[':authority'];
  if (req.headers.host === undefined && typeof authority === 'string') req.headers.host = authority;
}

/**
 * The worker's HTTP/2 server for `handler`. A session must send its first request within
 * header_timeout of opening (a slow client), and not reset streams at a rapid rate; an idle session is closed after `keepalive`
 * seconds with the same two-step GOAWAY a drain sends, so no request racing the close is lost.
 */
export function createHttp2Server(s: WorkerSettings, handler: RequestListener, drain: Drain): Http2Server {
  const h2 = createServer(sessionOptions(s), handler as unknown as (req: Http2ServerRequest, res: Http2ServerResponse) => void);
  h2.on('session', (session: ServerHttp2Session) => {
    drain.addSession(session);
    limitResets(session);
    const slow = setTimeout(() => session.destroy(), s.header_timeout * 1000);
    session.once('stream', () => clearTimeout(slow));
    session.once('close', () => clearTimeout(slow));
    session.setTimeout(Math.max(1, s.keepalive) * 1000, () => goAway(session));
  });
  // A session's protocol error closes that session (nghttp2 sent GOAWAY); nothing to log per client.
  h2.on('sessionError', () => { /* the session is destroyed; the others go on */ });
  return h2;
}

/** Over TLS: a connection that negotiated `h2` goes to the HTTP/2 server; others to HTTP/1.1 when offered. */
export function routeAlpn(server: Server, h2: Http2Server, http1: boolean): void {
  routeConnections(server, 'secureConnection', (socket, next) => {
    if ((socket as TLSSocket).alpnProtocol === 'h2') h2.emit('connection', socket);
    else if (http1) next(socket);
    else socket.destroy();
  });
}

/**
 * In cleartext (http2_cleartext = prior-knowledge): a connection from a trusted peer (the proxy
 * itself under the PROXY protocol, not the client it names) that opens
 * with the HTTP/2 preface goes to the HTTP/2 server, with the bytes read put back; any other
 * connection is HTTP/1.x, as without the setting.
 */
export function routePriorKnowledge(server: Server, h2: Http2Server, trusted: AllowList, timeoutMs: number): void {
  routeConnections(server, 'connection', (socket: Socket, next) => {
    if (!allowsTransportPeer(trusted, socket)) return next(socket);
    judgeFirstBytes(socket, timeoutMs, isPreface, (h2c, buf) => {
      socket.unshift(buf);
      if (h2c) {
        // The session reads what is buffered on the socket itself; resuming would lose it.
        h2.emit('connection', socket);
      } else {
        next(socket);
        socket.resume();
      }
    }, () => socket.destroy());
  });
}
