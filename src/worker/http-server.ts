// The worker's HTTP servers: one http.Server per inherited listening descriptor, all serving the
// same request handler. The handler enforces Gunicorn's request limits and strict HTTP/1.1
// (strict-http.ts) before the app sees the request, counts requests, marks responses
// `Connection: close` while draining, and writes the access log when it is on. Nothing else runs
// per request.

import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import type { WorkerSettings } from '../config/settings.js';
import type { AccessEntry } from '../logging/access-log.js';
import type { Logger } from '../logging/logger.js';
import { Drain } from './drain.js';
import { HANDLER_THREW, REFUSED, type Refusal } from './refusals.js';
import { answerClientError, maxHeaderSize, screenRequest, writeRefusal } from './strict-http.js';
import { tlsOptions } from '../config/tls.js';
import { markLocalPeers, parseAllowList, type AllowList } from '../sockets/allow-list.js';
import { parseHttpProtocols } from '../config/settings.js';
import { forwardedClient } from './forwarded.js';
import { acceptProxyProtocol, type ProxyRejection } from './proxy-protocol.js';

export interface ServeOptions {
  readonly settings: WorkerSettings;
  readonly app: RequestListener;
  readonly log: Logger;
  /** Writes one access log line; null when the access log is off. */
  readonly access: ((e: AccessEntry) => void) | null;
  /** Called with the running count after each request. */
  readonly onRequest: (count: number) => void;
  /** Records request metrics; null unless metrics_bind is set. */
  readonly observe: ((req: IncomingMessage, res: ServerResponse) => void) | null;
  /** A connection closed before HTTP (proxy_protocol). */
  readonly proxyRejected: (kind: ProxyRejection, why: string) => void;
}

/** A header from writeHead()'s argument: an object, or a flat [name, value, ...] list. */
function headFromArgs(args: unknown[], name: string): string | string[] | number | undefined {
  const h = args.find((a) => typeof a === 'object' && a !== null) as Record<string, string | string[] | number> | string[] | undefined;
  if (!h) return undefined;
  if (Array.isArray(h)) {
    for (let i = 0; i < h.length; i += 2) if (String(h[i]).toLowerCase() === name) return h[i + 1];
    return undefined;
  }
  for (const k of Object.keys(h)) if (k.toLowerCase() === name) return h[k];
  return undefined;
}

/** A request node:http2 delivers (an HTTP/1 request line saying HTTP/2.0 is refused by strict-http.ts). */
function isHttp2(req: IncomingMessage): boolean {
  return (req as IncomingMessage & { stream?: unknown }).stream !== undefined;
}

function withAccessLog(res: ServerResponse, req: IncomingMessage, client: string | undefined, write: (e: AccessEntry) => void): void {
  const start = process.hrtime.bigint();
  let bytes = 0;
  let headArgs: unknown[] = [];
  const count = (chunk: unknown, encoding?: unknown): void => {
    if (typeof chunk === 'string') bytes += Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
    else if (chunk instanceof Uint8Array) bytes += chunk.byteLength;
  };
  const { write: origWrite, end: origEnd, writeHead: origWriteHead } = res;
  res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    headArgs = args;
    return (origWriteHead as (...a: unknown[]) => ServerResponse).apply(this, args);
  } as ServerResponse['writeHead'];
  res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
    count(chunk, rest[0]);
    return (origWrite as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  } as ServerResponse['write'];
  // HTTP/2's compatibility end() writes its chunk with write(), counted there.
  const endCounts = !isHttp2(req);
  res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
    if (endCounts && typeof chunk !== 'function') count(chunk, rest[0]);
    return (origEnd as (...a: unknown[]) => ServerResponse).call(this, chunk, ...rest);
  } as ServerResponse['end'];
  const outHeader = (name: string): string | string[] | number | undefined => res.getHeader(name) ?? headFromArgs(headArgs, name);
  res.once('finish', () => write({ req, res, client, start, end: process.hrtime.bigint(), when: new Date(), bytes, outHeader }));
}

/** How a worker serves HTTP/2, when it does: node:http2 loads only then. */
interface Http2Serving {
  /** Hands the server's HTTP/2 connections to the one HTTP/2 server (made at the first call). */
  route(server: Server, handler: RequestListener, drain: Drain, trusted: AllowList): void;
  /** Answers a request the rules refuse (true), before the app sees it. */
  screen(req: IncomingMessage, res: ServerResponse): boolean;
  refuse(res: ServerResponse, r: Refusal): void;
}

async function http2Serving(s: WorkerSettings, tls: boolean): Promise<Http2Serving | null> {
  const alpn = tls && parseHttpProtocols(s.http_protocols).includes('h2');
  const priorKnowledge = !tls && s.http2_cleartext === 'prior-knowledge';
  if (!alpn && !priorKnowledge) return null;
  const h2 = await import('./http2.js');
  let server: ReturnType<typeof h2.createHttp2Server> | null = null;
  return {
    route(listener, handler, drain, trusted) {
      server ??= h2.createHttp2Server(s, handler, drain);
      if (alpn) h2.routeAlpn(listener, server, parseHttpProtocols(s.http_protocols).includes('h1'));
      else h2.routePriorKnowledge(listener, server, trusted, s.header_timeout * 1000);
    },
    screen(req, res) {
      h2.dropConnectionFields(res);
      h2.hostFromAuthority(req);
      const refused = h2.checkHttp2Request(req, s);
      if (refused !== null) h2.refuseHttp2(res, refused);
      return refused !== null;
    },
    refuse: h2.refuseHttp2,
  };
}

export interface Served {
  readonly servers: Server[];
  readonly drain: Drain;
}

export async function createServers(fdCount: number, opts: ServeOptions): Promise<Served> {
  const { settings: s, app, access, onRequest, observe, log } = opts;
  const forwarded = parseAllowList('forwarded_allow_ips', s.forwarded_allow_ips);
  const proxies = s.proxy_protocol ? parseAllowList('proxy_allow_ips', s.proxy_allow_ips) : null;
  const servers: Server[] = [];
  const drain = new Drain(servers);
  drain.closing = s.keepalive === 0;
  const tls = tlsOptions(s);
  const h2 = await http2Serving(s, tls !== null);
  let requests = 0;
  const handler: RequestListener = (req, res) => {
    onRequest(++requests);
    const client = forwardedClient(req, forwarded);
    if (access) withAccessLog(res, req, client, access);
    if (observe) observe(req, res);
    const http2 = isHttp2(req);
    if (http2) {
      if (h2!.screen(req, res)) return;
    } else {
      if (screenRequest(req, res, s, log)) return;
      if (drain.closing) res.setHeader('Connection', 'close');
      drain.track(req.socket, res);
    }
    try {
      app(req, res);
    } catch (err) {
      log.error(`Error handling request ${req.method} ${req.url}: ${(err as Error)?.stack ?? String(err)}`);
      if (res.headersSent) res.destroy();
      else if (http2) h2!.refuse(res, HANDLER_THREW);
      else writeRefusal(res, HANDLER_THREW);
    }
  };
  const common: ServerOptions = {
    maxHeaderSize: maxHeaderSize(s),
    keepAliveTimeout: s.keepalive * 1000,
    headersTimeout: s.header_timeout * 1000,
    // Node checks header and request timeouts on this tick (30 s by default).
    connectionsCheckingInterval: 1000,
    // Strict llhttp even when NODE_OPTIONS has --insecure-http-parser; 400 for HTTP/1.1 without Host.
    insecureHTTPParser: false,
    requireHostHeader: true,
  };
  // node:https (and with it tls and crypto) loads only when TLS is on: ~10 ms of every worker's start.
  const https = tls ? await import('node:https') : null;
  for (let i = 0; i < fdCount; i++) {
    // An https.Server is an http.Server in every way the worker uses (Node's own types differ).
    const server = https ? (https.createServer({ ...common, ...tls }, handler) as unknown as Server) : createServer(common, handler);
    // Node answers 400 itself past maxHeadersCount; keep it above our limit so we can answer 431.
    server.maxHeadersCount = s.limit_request_fields > 0 ? Math.max(2000, s.limit_request_fields + 1) : 0;
    server.on('clientError', answerClientError);
    // An Expect other than 100-continue: Node's own 417 keeps the connection on some builds
    // (Debian's nodejs) and closes it on others; ours closes it, on every Node.
    server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => writeRefusal(res, REFUSED.expectation));
    h2?.route(server, handler, drain, forwarded);
    if (proxies) acceptProxyProtocol(server, proxies, s.header_timeout * 1000, opts.proxyRejected);
    markLocalPeers(server);
    servers.push(server);
  }
  return { servers, drain };
}
